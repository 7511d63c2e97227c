from syncd.core.planner import Guard, exceeds_guard, plan_group


def test_an_exclusive_group_gets_missing_members_added_and_extra_ones_removed():
    change = plan_group("g", desired={"a", "b"}, actual={"b", "c"})
    assert change.add == ("a",) and change.remove == ("c",)


def test_a_shared_group_keeps_members_that_syncd_did_not_grant():
    change = plan_group("g", desired={"a"}, actual={"a", "manual", "old"}, ownership="shared",
                        granted_by_syncd={"old"})
    assert change.remove == ("old",)


def test_groups_already_in_line_produce_no_change():
    assert plan_group("g", {"a"}, {"a"}).size == plan_group("h", set(), set()).size == 0


def test_a_plan_that_empties_the_directory_trips_the_guard_whatever_the_limits():
    changes = [plan_group("g", set(), {"a", "b"})]
    assert exceeds_guard(changes, 2, Guard()) is not None


def test_the_guard_counts_absolute_and_relative_limits():
    changes = [plan_group("g", {"a", "b", "c"}, {"z"} | {f"x{i}" for i in range(99)})]
    assert exceeds_guard(changes, 100, Guard(max_changes=50)) is not None
    assert exceeds_guard(changes, 100, Guard(max_percent=10)) is not None
    assert exceeds_guard([plan_group("g", {"a"}, set())], 100, Guard(max_changes=5, max_percent=5)) is None
