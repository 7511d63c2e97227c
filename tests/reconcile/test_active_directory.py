"""Reconciliation on a real Samba AD domain controller (``directory.kind: active_directory``): a
domain in line with the database reconciles clean (AD's spelling of DNs, ``displayName`` for the
full name, the disable bit among the domain's own bits), and drift in memberships and accounts is
repaired, member lists being read by ranges."""

from __future__ import annotations

import pytest
from ldap3 import MODIFY_REPLACE
from sqlalchemy import update

from syncd.jobs import provision
from syncd.store.db import transaction
from syncd.store.tables import accounts
from tests.reconcile.conftest import reconcile_mappings
from tests.reconcile.helpers import Ldap, account, dn, entry, grant, key, members, reconcile

pytestmark = pytest.mark.samba_ad

ROLE = "accords-locaux-acces"
PASSWORD = "Un mot de passe solide 42"


@pytest.fixture
def rt(make_ad_runtime):
    runtime = make_ad_runtime(reconcile_mappings("dc=example,dc=org"))
    provision.provision(runtime)
    return runtime


def test_a_domain_in_line_with_the_database_reconciles_clean(rt):
    a, b = account(rt, "alice"), account(rt, "bruno")
    grant(rt, a, ROLE)
    grant(rt, b, ROLE)
    outcome = reconcile(rt)
    assert outcome.plan.clean and outcome.state == "clean"
    t = outcome.plan.totals()
    assert (t["people_in_ldap"], t["accounts_expected"], t["member_values"]) == (2, 2, 2)


def test_drift_in_memberships_and_accounts_is_repaired_and_a_disabled_account_is_disabled(rt, ad_admin):
    a, b, c = account(rt, "alice"), account(rt, "bruno"), account(rt, "chloe")
    grant(rt, a, ROLE)
    grant(rt, b, ROLE)
    Ldap(rt).remove_member(ROLE, dn(rt, a))            # lost from AD
    Ldap(rt).add_member(ROLE, dn(rt, c))               # added behind syncd's back
    ad_admin.modify(dn(rt, a), {"displayName": [(MODIFY_REPLACE, ["Quelqu'un d'autre"])]})
    with transaction(rt.engine) as conn:
        conn.execute(update(accounts).where(accounts.c.id == b).values(status="disabled"))
    rt.directory.set_password(b, PASSWORD)
    assert rt.directory.can_bind(dn(rt, b), PASSWORD) is True

    outcome = reconcile(rt)
    assert outcome.state == "applied"
    assert members(rt, ROLE) == {key(rt, a)}
    assert entry(rt, a, "displayName") == {"displayName": ["Alice Testeur"]}
    assert entry(rt, b, "msDS-cloudExtensionAttribute1")["msDS-cloudExtensionAttribute1"] == ["disabled"]
    assert int(entry(rt, b, "userAccountControl")["userAccountControl"][0]) & 0x2
    assert rt.directory.can_bind(dn(rt, b), PASSWORD) is False
    assert reconcile(rt).plan.clean
