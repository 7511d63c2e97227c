"""Each kind of drift, found and repaired on a real slapd, with SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from syncd.store import audit
from syncd.store.db import transaction
from syncd.store.tables import accounts, reconcile_runs
from tests.reconcile.conftest import SHARED_ROLE
from tests.reconcile.helpers import (Ldap, account, account_row, dn, entry, grant, key, members, reconcile,
                                     revoke)

pytestmark = pytest.mark.slapd

ROLE = "accords-locaux-acces"
OTHER = "opim-local"


def test_a_directory_in_line_with_the_database_has_no_drift_and_the_run_is_recorded(rt):
    a, b = account(rt, "alice"), account(rt, "bruno")
    grant(rt, a, ROLE)
    grant(rt, b, ROLE)
    grant(rt, b, SHARED_ROLE)
    outcome = reconcile(rt)
    assert outcome.plan.clean and outcome.state == "clean"
    t = outcome.plan.totals()
    assert (t["people_in_ldap"], t["accounts_expected"], t["member_values"], t["desired_memberships"]) == (2, 2, 3, 3)
    with transaction(rt.engine) as conn:
        run = conn.execute(select(reconcile_runs)).mappings().one()
    assert run["mode"] == "apply" and run["finished_at"] is not None and run["error"] is None
    assert run["summary"]["state"] == "clean" and run["summary"]["totals"]["member_values"] == 3


def test_a_missing_member_is_added_and_an_extra_one_removed_from_an_exclusive_group(rt):
    a, b, c = account(rt, "alice"), account(rt, "bruno"), account(rt, "chloe")
    grant(rt, a, ROLE)
    grant(rt, b, ROLE)
    Ldap(rt).remove_member(ROLE, dn(rt, a))            # lost from LDAP
    Ldap(rt).add_member(ROLE, dn(rt, c))               # added behind syncd's back
    Ldap(rt).add_member(ROLE, "cn=somebody,ou=elsewhere,dc=example,dc=org")

    plan = reconcile(rt, dry_run=True).plan
    [drift] = plan.groups
    assert drift.add == [a] and sorted(drift.remove) == sorted([dn(rt, c), "cn=somebody,ou=elsewhere,dc=example,dc=org"])
    assert members(rt, ROLE) == {key(rt, b), key(rt, c), "cn=somebody,ou=elsewhere,dc=example,dc=org"}, \
        "a dry run writes nothing"

    outcome = reconcile(rt)
    assert outcome.state == "applied" and outcome.applied.members_added == 1 and outcome.applied.members_removed == 2
    assert members(rt, ROLE) == {key(rt, a), key(rt, b)}
    assert reconcile(rt).plan.clean
    with transaction(rt.engine) as conn:      # every LDAP change is in the audit trail
        audit.seal(conn)
        rows = [(r["actor"], r["action"], r["detail"]["count"]) for r in audit.rows(conn) if r["actor"] == "reconcile"]
        assert sorted(rows) == [("reconcile", "ldap_members_added", 1), ("reconcile", "ldap_members_removed", 2)]
        assert audit.verify(conn) is None


def test_a_shared_group_keeps_the_members_syncd_did_not_grant(rt):
    a, b, c = account(rt, "alice"), account(rt, "bruno"), account(rt, "chloe")
    grant(rt, a, SHARED_ROLE)
    grant(rt, b, SHARED_ROLE)
    revoke(rt, b, SHARED_ROLE)                         # revoked, not yet out of LDAP
    Ldap(rt).add_member(SHARED_ROLE, dn(rt, c))        # another tool's member
    Ldap(rt).add_member(SHARED_ROLE, "cn=service,ou=apps,dc=example,dc=org")

    [drift] = reconcile(rt, dry_run=True).plan.groups
    assert drift.remove == [dn(rt, b)] and drift.add == [] and drift.kept_foreign == 2
    reconcile(rt)
    assert members(rt, SHARED_ROLE) == {key(rt, a), key(rt, c), "cn=service,ou=apps,dc=example,dc=org"}


def test_a_disabled_account_leaves_its_groups_and_its_entry_is_disabled(rt):
    a = account(rt, "alice")
    grant(rt, a, ROLE)
    with transaction(rt.engine) as conn:
        conn.execute(update(accounts).where(accounts.c.id == a).values(status="disabled"))
    plan = reconcile(rt, dry_run=True).plan
    assert [(x.kind, x.action) for x in plan.accounts] == [("disable", "update")]
    assert plan.groups[0].remove == [dn(rt, a)]
    reconcile(rt)
    assert entry(rt, a, "syncdAccountStatus")["syncdAccountStatus"] == ["disabled"]
    assert members(rt, ROLE) == set()


def test_a_missing_account_entry_is_created_with_its_memberships(rt):
    a = account(rt, "alice", phone="+33 4 72 00 00 00")
    grant(rt, a, ROLE)
    Ldap(rt).delete(dn(rt, a))        # refint takes it out of the group too
    assert members(rt, ROLE) == set()

    plan = reconcile(rt, dry_run=True).plan
    assert [(x.account_id, x.kind, x.action) for x in plan.accounts] == [(a, "missing", "create")]
    assert plan.groups[0].add == [a]
    reconcile(rt)
    got = entry(rt, a, "mail", "givenName", "sn", "cn", "telephoneNumber", "syncdPrimaryOrganisation")
    assert got["mail"] == ["alice@lassuranceretraite.fr"] and got["telephoneNumber"] == ["+33 4 72 00 00 00"]
    assert got["cn"] == ["Alice Testeur"] and got["syncdPrimaryOrganisation"]
    assert members(rt, ROLE) == {key(rt, a)}
    assert reconcile(rt).plan.clean


def test_an_entry_unknown_to_the_database_is_reported_and_disabled_only_when_configured(rt):
    account(rt, "alice")
    Ldap(rt).add_person("legacy-42", mail="legacy@example.org")
    plan = reconcile(rt, dry_run=True).plan
    [extra] = plan.accounts
    assert (extra.account_id, extra.kind, extra.action, extra.email) == ("legacy-42", "extra", "none",
                                                                           "legacy@example.org")
    assert reconcile(rt).state == "reported"          # nothing to write
    assert rt.directory.read_entry(dn(rt, "legacy-42"), ["syncdAccountStatus"])["syncdAccountStatus"] == []

    outcome = reconcile(rt, disable_extra_accounts=True)
    assert outcome.applied.accounts_disabled == 1
    assert rt.directory.read_entry(dn(rt, "legacy-42"), ["syncdAccountStatus"])["syncdAccountStatus"] == ["disabled"]
    again = reconcile(rt, disable_extra_accounts=True).plan
    assert [(x.kind, x.action, x.note) for x in again.accounts] == [("extra", "none", "already disabled")]


def test_a_renamed_account_gets_its_new_email_and_names(rt):
    a = account(rt, "alice")
    with transaction(rt.engine) as conn:   # changed in the database, the accounts job never ran
        conn.execute(update(accounts).where(accounts.c.id == a)
                     .values(email="alice.martin@lassuranceretraite.fr", family_name="Martin"))
    [drift] = reconcile(rt, dry_run=True).plan.accounts
    assert drift.kind == "renamed"
    assert drift.attributes["mail"] == (["alice@lassuranceretraite.fr"], ["alice.martin@lassuranceretraite.fr"])
    assert drift.attributes["sn"] == (["Testeur"], ["Martin"]) and drift.attributes["cn"][1] == ["Alice Martin"]
    reconcile(rt)
    assert entry(rt, a, "mail", "sn")["mail"] == ["alice.martin@lassuranceretraite.fr"]
    assert account_row(rt, a)["ldap_synced_at"] is not None
    assert reconcile(rt).plan.clean


def test_an_attribute_changed_in_ldap_is_put_back_and_external_ones_are_left_alone(rt):
    a = account(rt, "alice", phone="+33 1 00 00 00 00")
    d = account(rt, "denis", director=True, phone="+33 1 11 11 11 11")
    Ldap(rt).replace(dn(rt, a), "telephoneNumber", ["+33 9 99 99 99 99"])
    Ldap(rt).replace(dn(rt, a), "description", ["not ours"])
    Ldap(rt).replace(dn(rt, d), "telephoneNumber", ["+33 2 22 22 22 22"])   # the directors' referential's
    Ldap(rt).replace(dn(rt, d), "sn", ["Referentiel"])
    [drift] = reconcile(rt, dry_run=True).plan.accounts
    assert (drift.account_id, drift.kind) == (a, "changed")
    assert drift.attributes == {"telephoneNumber": (["+33 9 99 99 99 99"], ["+33 1 00 00 00 00"])}
    reconcile(rt)
    assert entry(rt, a, "telephoneNumber", "description") == {"telephoneNumber": ["+33 1 00 00 00 00"],
                                                              "description": ["not ours"]}
    assert entry(rt, d, "telephoneNumber", "sn") == {"telephoneNumber": ["+33 2 22 22 22 22"], "sn": ["Referentiel"]}


def test_a_missing_group_is_created_with_its_members(rt):
    a = account(rt, "alice")
    grant(rt, a, OTHER)
    Ldap(rt).delete("cn=app-opim-local," + rt.mappings.directory.groups.branch + "," + rt.mappings.directory.base_dn)
    plan = reconcile(rt, dry_run=True).plan
    [drift] = plan.groups
    assert drift.missing and drift.add == [a] and plan.totals()["groups_missing"] == 1
    outcome = reconcile(rt)
    assert outcome.applied.groups_created == 1
    assert members(rt, OTHER) == {key(rt, a)}
    assert reconcile(rt).plan.clean


def test_a_pending_account_and_a_membership_not_applied_yet_are_handled(rt):
    a = account(rt, "alice")
    grant(rt, a, ROLE, in_ldap=False)     # accepted, the apply job has not run: reconcile writes it
    paul = account(rt, "paul")
    with transaction(rt.engine) as conn:
        conn.execute(update(accounts).where(accounts.c.id == paul).values(status="pending"))
    plan = reconcile(rt, dry_run=True).plan
    assert plan.accounts == [] and plan.groups[0].add == [a]
