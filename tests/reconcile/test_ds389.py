"""Reconciliation runs on a real 389 Directory Server, syncd bound as its service account: the
paged reads, the drift found and repaired without the permissive-modify control, and the lock
of an account the database says is disabled."""

from __future__ import annotations

import pytest
from ldap3 import MODIFY_DELETE
from sqlalchemy import update

from syncd.directory import names
from syncd.directory.connection import NoSuchEntry
from syncd.jobs import provision
from syncd.reconcile.ldapread import LeanReader
from syncd.store.db import transaction
from syncd.store.tables import accounts
from tests.reconcile.conftest import reconcile_mappings
from tests.reconcile.helpers import Ldap, account, dn, entry, grant, key, members, reconcile

pytestmark = pytest.mark.ds389

ROLE = "accords-locaux-acces"


@pytest.fixture
def rt(make_ds389_runtime):
    runtime = make_ds389_runtime(reconcile_mappings("dc=example,dc=org"))
    provision.provision(runtime)
    return runtime


def test_a_directory_in_line_with_the_database_reconciles_clean(rt):
    a, b = account(rt, "alice"), account(rt, "bruno")
    grant(rt, a, ROLE)
    grant(rt, b, ROLE)
    outcome = reconcile(rt)
    assert outcome.plan.clean and outcome.state == "clean"
    t = outcome.plan.totals()
    assert (t["people_in_ldap"], t["accounts_expected"], t["member_values"]) == (2, 2, 2)


def test_drift_in_memberships_and_accounts_is_repaired_and_a_disabled_account_is_locked(rt):
    a, b, c = account(rt, "alice"), account(rt, "bruno"), account(rt, "chloe")
    grant(rt, a, ROLE)
    grant(rt, b, ROLE)
    Ldap(rt).remove_member(ROLE, dn(rt, a))            # lost from LDAP
    Ldap(rt).add_member(ROLE, dn(rt, c))               # added behind syncd's back
    with transaction(rt.engine) as conn:
        conn.execute(update(accounts).where(accounts.c.id == b).values(status="disabled"))
    rt.directory.set_password(b, "un mot de passe solide")
    assert rt.directory.can_bind(dn(rt, b), "un mot de passe solide") is True

    outcome = reconcile(rt)
    assert outcome.state == "applied"
    assert members(rt, ROLE) == {key(rt, a)}
    assert entry(rt, b, "syncdAccountStatus", "nsAccountLock") == {"syncdAccountStatus": ["disabled"],
                                                                    "nsAccountLock": ["true"]}
    assert rt.directory.can_bind(dn(rt, b), "un mot de passe solide") is False
    assert reconcile(rt).plan.clean


def test_a_missing_branch_is_no_such_entry_for_the_reader_not_an_empty_branch(ds389, ds389_directory):
    # 389-DS answers a paged search of a missing base with success and no entry
    missing = "ou=nope," + names.branch_dn(ds389_directory.layout, "people")
    with LeanReader(ds389.ldap_settings()) as reader:
        assert list(reader.search(missing, "(objectClass=*)", ["cn"], missing_ok=True)) == []
        with pytest.raises(NoSuchEntry):
            list(reader.search(missing, "(objectClass=*)", ["cn"]))
        ds389_directory.upsert_account("p1", {"sn": "x"})
        people = names.branch_dn(ds389_directory.layout, "people")
        assert [dn for dn, _ in reader.search(people, "(objectClass=*)", ["sn"])] == [
            names.person_dn(ds389_directory.layout, "p1")]


def test_a_disabled_account_whose_lock_was_lifted_behind_syncds_back_is_locked_again(rt, ds389_admin):
    # also what an upgrade finds: accounts disabled before syncd wrote nsAccountLock
    a = account(rt, "alice")
    rt.directory.set_password(a, "un mot de passe solide")
    with transaction(rt.engine) as conn:
        conn.execute(update(accounts).where(accounts.c.id == a).values(status="disabled"))
    reconcile(rt)
    assert rt.directory.can_bind(dn(rt, a), "un mot de passe solide") is False
    ds389_admin.modify(dn(rt, a), {"nsAccountLock": [(MODIFY_DELETE, [])]})
    assert rt.directory.can_bind(dn(rt, a), "un mot de passe solide") is True

    plan = reconcile(rt, dry_run=True).plan
    assert [(x.account_id, x.action) for x in plan.accounts] == [(a, "update")]
    reconcile(rt)
    assert rt.directory.can_bind(dn(rt, a), "un mot de passe solide") is False
    assert reconcile(rt).plan.clean
