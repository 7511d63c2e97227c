"""``--account`` and ``--group``: one object reconciled, everything else left as it is."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from syncd.reconcile.planning import UnknownObject
from syncd.store.db import transaction
from syncd.store.tables import accounts
from tests.reconcile.conftest import SHARED_ROLE
from tests.reconcile.helpers import Ldap, account, dn, entry, grant, key, members, reconcile, revoke

pytestmark = pytest.mark.slapd

ROLE, OTHER = "accords-locaux-acces", "opim-local"


def test_one_account_is_reconciled_by_id_or_email_and_the_others_are_left_alone(rt):
    a, b = account(rt, "alice", phone="+33 1 00 00 00 00"), account(rt, "bruno")
    grant(rt, a, ROLE)
    grant(rt, a, SHARED_ROLE)
    grant(rt, b, ROLE)
    revoke(rt, a, SHARED_ROLE)
    Ldap(rt).replace(dn(rt, a), "telephoneNumber", ["+33 9 99 99 99 99"])
    Ldap(rt).remove_member(ROLE, dn(rt, a))
    Ldap(rt).add_member(OTHER, dn(rt, a))            # exclusive group, no row: not syncd's grant
    Ldap(rt).remove_member(ROLE, dn(rt, b))           # drift on another account: not this run's business

    plan = reconcile(rt, account="alice@lassuranceretraite.fr", dry_run=True).plan
    assert plan.scope == f"account:{a}"
    assert [(x.kind, list(x.attributes)) for x in plan.accounts] == [("changed", ["telephoneNumber"])]
    assert {(g.role_key, tuple(g.add), tuple(g.remove)) for g in plan.groups} == {
        (ROLE, (a,), ()), (OTHER, (), (dn(rt, a),)), (SHARED_ROLE, (), (dn(rt, a),))}

    reconcile(rt, account=a)
    assert entry(rt, a, "telephoneNumber")["telephoneNumber"] == ["+33 1 00 00 00 00"]
    assert members(rt, ROLE) == {key(rt, a)}, "bruno's drift is untouched"
    assert key(rt, a) not in members(rt, OTHER) and key(rt, a) not in members(rt, SHARED_ROLE)
    assert reconcile(rt, account=a).plan.clean


def test_one_account_unknown_to_the_database_is_reported_and_an_unknown_name_refused(rt):
    Ldap(rt).add_person("legacy-1", mail="legacy@example.org")
    plan = reconcile(rt, account="legacy-1", dry_run=True).plan
    assert [(x.kind, x.action) for x in plan.accounts] == [("extra", "none")]
    with pytest.raises(UnknownObject):
        reconcile(rt, account="nobody@example.org")


def test_one_account_missing_in_ldap_is_created(rt):
    a = account(rt, "alice")
    grant(rt, a, ROLE)
    Ldap(rt).delete(dn(rt, a))
    outcome = reconcile(rt, account=a)
    assert outcome.applied.accounts_created == 1 and outcome.applied.members_added == 1
    assert members(rt, ROLE) == {key(rt, a)}


def test_one_group_is_reconciled_and_the_others_are_left_alone(rt):
    a, b = account(rt, "alice"), account(rt, "bruno")
    grant(rt, a, ROLE)
    grant(rt, b, OTHER)
    Ldap(rt).remove_member(ROLE, dn(rt, a))
    Ldap(rt).remove_member(OTHER, dn(rt, b))
    with transaction(rt.engine) as conn:
        conn.execute(update(accounts).where(accounts.c.id == b).values(family_name="Autre"))
    plan = reconcile(rt, group=ROLE).plan
    assert plan.scope == f"group:{ROLE}" and plan.accounts == [] and [g.add for g in plan.groups] == [[a]]
    assert members(rt, ROLE) == {key(rt, a)}
    assert members(rt, OTHER) == set()
    assert entry(rt, b, "sn")["sn"] == ["Testeur"]
    with pytest.raises(UnknownObject):
        reconcile(rt, group="no-such-role")
