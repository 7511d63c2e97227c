"""The guards refuse: too many changes, too large a share, an emptied group, an empty database."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from syncd.errors import TemporaryError
from syncd.runtime import Runtime
from syncd.reconcile import guards
from syncd.reconcile.config import ReconcileConfig
from syncd.reconcile.model import GroupDrift, Plan
from syncd.settings import Settings
from syncd.store.db import make_engine, transaction
from syncd.store.tables import accounts, memberships, reconcile_runs
from tests.reconcile.conftest import reconcile_mappings
from tests.reconcile.helpers import Ldap, account, dn, grant, key, members, reconcile
ROLE = "accords-locaux-acces"


def _plan(**totals) -> Plan:
    plan = Plan("full", people_in_ldap=totals.pop("people", 1000), accounts_in_db=1000,
                member_values=totals.pop("values", 9000), desired_memberships=9000)
    plan.groups.append(GroupDrift("r", "g", "cn=g", "exclusive", add=[f"a{i}" for i in range(totals.pop("add", 0))],
                                  remove=[f"r{i}" for i in range(totals.pop("remove", 0))], current=5000))
    return plan


def test_the_guard_limits_count_adds_and_removes_in_absolute_and_relative_terms():
    config = ReconcileConfig(max_changes=1000, max_percent=5.0)
    assert guards.check(_plan(add=300, remove=200), config).ok
    assert "exceed the limit of 1000" in guards.check(_plan(add=900, remove=200), config).reason
    assert "above 5.0%" in guards.check(_plan(add=400, remove=200, values=8000), ReconcileConfig(max_changes=None)).reason
    assert guards.check(_plan(add=400, remove=200, values=8000), ReconcileConfig(max_changes=None)).forceable


def test_one_account_runs_are_not_held_to_the_percentage():
    plan = Plan("account:x", people_in_ldap=1, accounts_in_db=1, member_values=1, desired_memberships=0)
    plan.groups.append(GroupDrift("r", "g", "cn=g", "exclusive", remove=["uid=x"], current=1))
    assert guards.check(plan, ReconcileConfig()).ok


def _some_members(rt, n):
    ids = [account(rt, f"user{i}") for i in range(n)]
    for a in ids:
        grant(rt, a, ROLE)
    return ids


def test_a_plan_above_the_limit_writes_nothing_without_force_and_everything_with_it(rt):
    ids = _some_members(rt, 4)
    for a in ids[:3]:
        Ldap(rt).remove_member(ROLE, dn(rt, a))
    outcome = reconcile(rt, max_changes=2)
    assert outcome.refused and outcome.applied is None and "3 changes exceed the limit of 2" in outcome.verdict.reason
    assert members(rt, ROLE) == {key(rt, ids[3])}
    with transaction(rt.engine) as conn:
        run = conn.execute(select(reconcile_runs)).mappings().one()
    assert "exceed the limit" in run["error"] and run["summary"]["state"] == "refused"

    outcome = reconcile(rt, max_changes=2, force=True)
    assert outcome.state == "applied" and outcome.applied.members_added == 3
    assert members(rt, ROLE) == {key(rt, a) for a in ids}


def test_a_plan_above_the_share_of_the_directory_is_refused(rt):
    ids = _some_members(rt, 4)
    Ldap(rt).remove_member(ROLE, dn(rt, ids[0]))
    outcome = reconcile(rt, max_percent=5.0)
    assert outcome.refused and "above 5.0%" in outcome.verdict.reason


def test_emptying_a_group_that_holds_members_needs_force(rt):
    _some_members(rt, 3)
    with transaction(rt.engine) as conn:
        conn.execute(delete(memberships).where(memberships.c.role_key == ROLE))
    outcome = reconcile(rt, min_group_for_emptying_guard=3)
    assert outcome.refused and "would lose all of its 3 members" in outcome.verdict.reason
    assert len(members(rt, ROLE)) == 3
    outcome = reconcile(rt, group=ROLE)
    assert outcome.refused and "removes every one" in outcome.verdict.reason


def test_an_empty_database_never_empties_the_directory_not_even_with_force(rt):
    _some_members(rt, 3)
    with transaction(rt.engine) as conn:     # the database lost its data
        conn.execute(delete(memberships))
        conn.execute(delete(accounts))
    outcome = reconcile(rt, force=True, disable_extra_accounts=True, max_changes=None)
    assert outcome.refused and not outcome.verdict.forceable and "empty the directory" in outcome.verdict.reason
    assert len(members(rt, ROLE)) == 3
    assert all(e["syncdAccountStatus"] == ["active"] for e in
               [rt.directory.read_entry(dn(rt, k), ["syncdAccountStatus"]) for k in
                [m.split(",")[0].split("=")[1] for m in members(rt, ROLE)]])


@pytest.mark.parametrize("db_url", ["postgresql+psycopg://postgres@127.0.0.1:1/nowhere"])
def test_an_unreachable_database_plans_nothing_and_writes_nothing(db_url, ldap_settings, ldap_layout, clock,
                                                                   directory):
    settings = Settings(database={"url": db_url}, ldap=ldap_settings.model_dump())
    rt = Runtime(settings, reconcile_mappings(ldap_layout.base_dn), make_engine(db_url), clock=clock)
    try:
        directory.ensure_group("app-accords-locaux-acces", ROLE, "accords-locaux")
        directory.add_members("app-accords-locaux-acces", ["uid=someone,ou=people," + ldap_layout.base_dn])
        with pytest.raises(TemporaryError):
            reconcile(rt, force=True)
        assert directory.members_of_group("app-accords-locaux-acces") == {
            "uid=someone,ou=people," + ldap_layout.base_dn.lower()}
    finally:
        rt.close()
