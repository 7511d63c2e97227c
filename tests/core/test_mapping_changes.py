from syncd.core.mapping_changes import plan_mapping_change
from tests.factories import mappings

M = mappings()
PROVISIONED = [("accords-locaux-acces", "app-accords-locaux-acces"), ("opim-local", "app-opim-local"),
               ("greve-declaration", "app-greve-declaration"), ("annuaire-redacteur", "app-annuaire-redacteur")]


def kinds(changes):
    return {(c.kind, c.key) for c in changes}


def test_mappings_that_match_the_directory_change_nothing():
    assert plan_mapping_change(M, PROVISIONED, ["CARSAT-RA", "CPAM-75"], {}) == []


def test_a_renamed_group_a_removed_role_and_new_entries_are_each_reported_with_the_members_touched():
    provisioned = [("accords-locaux-acces", "app-accords-old"), ("gone-role", "app-gone"),
                   ("opim-local", "APP-OPIM-LOCAL")]          # case differences are not renames
    changes = plan_mapping_change(M, provisioned, ["CARSAT-RA", "OLD-ORG"], {"accords-locaux-acces": 12, "gone-role": 3})
    assert kinds(changes) == {("group_renamed", "accords-locaux-acces"), ("role_removed", "gone-role"),
                              ("group_created", "greve-declaration"), ("group_created", "annuaire-redacteur"),
                              ("organisation_added", "CPAM-75"), ("organisation_removed", "OLD-ORG")}
    renamed = next(c for c in changes if c.kind == "group_renamed")
    assert renamed.members == 12 and "app-accords-old" in renamed.detail
