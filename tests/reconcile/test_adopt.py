"""``syncd adopt``: a directory filled by someone else becomes syncd's desired state; nobody is removed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from syncd.directory import names
from syncd.reconcile.adopt import adopt
from syncd.store.db import transaction
from syncd.store.tables import accounts, deciders, memberships
from tests.reconcile.conftest import SHARED_ROLE
from tests.reconcile.helpers import Ldap, key, members, reconcile

pytestmark = pytest.mark.slapd

ROLE, OTHER = "accords-locaux-acces", "opim-local"


def _legacy_directory(rt):
    """People, memberships and a correspondent written by a previous tool, plus things that do not fit."""
    layout = rt.mappings.directory
    ldap = Ldap(rt)
    org = names.organisation_dn(layout, "CARSAT-RA")
    for uid, given, family, mail in (("jdupont", "Jean", "Dupont", "Jean.Dupont@lassuranceretraite.fr"),
                                     ("mcurie", "Marie", "Curie", "marie.curie@assurance-maladie.fr"),
                                     ("ext1", "Ed", "Extern", "ed@example.org")):
        ldap.add_person(uid, givenName=given, sn=family, cn=f"{given} {family}", mail=mail,
                        syncdPrimaryOrganisation=org, syncdInternal="FALSE" if uid == "ext1" else "TRUE",
                        syncdAccountStatus="active")
    ldap.add_person("nomail", givenName="No", sn="Mail", cn="No Mail", syncdPrimaryOrganisation=org)
    ldap.add_person("elsewhere", givenName="Al", sn="Ailleurs", cn="Al Ailleurs", mail="al@example.org",
                    syncdPrimaryOrganisation=names.organisation_dn(layout, "OLD-ORG"))
    for uid in ("jdupont", "mcurie"):
        ldap.add_member(ROLE, names.person_dn(layout, uid))
    ldap.add_member(OTHER, names.person_dn(layout, "ext1"))
    ldap.add_member(OTHER, "cn=batch,ou=services,dc=example,dc=org")
    ldap.add_member(SHARED_ROLE, names.person_dn(layout, "mcurie"))
    ldap.replace(org, "syncdCorrespondent", [names.person_dn(layout, "jdupont")])
    return {uid: key(rt, uid) for uid in ("jdupont", "mcurie", "ext1")}


def _count(rt, table):
    with transaction(rt.engine) as conn:
        return len(conn.execute(select(table)).all())


def test_adopt_records_what_ldap_holds_reports_what_does_not_fit_and_removes_nobody(rt):
    keys = _legacy_directory(rt)
    before = {r: members(rt, r) for r in (ROLE, OTHER, SHARED_ROLE)}

    dry = adopt(rt, dry_run=True)
    assert (dry.accounts_adopted, dry.memberships_adopted, dry.correspondents_adopted) == (3, 3, 1)
    assert _count(rt, accounts) == 0 and _count(rt, memberships) == 0, "a dry run records nothing"

    report = adopt(rt)
    assert (report.accounts_adopted, report.memberships_adopted, report.correspondents_adopted) == (3, 3, 1)
    assert report.shared_members_left == 1
    reasons = report.skipped_by_reason
    assert reasons["person: no valid e-mail address"] == 1
    assert any(r.startswith("person: no primary organisation known") for r in reasons)
    assert reasons["member: not an account of the people branch syncd knows"] == 1
    with transaction(rt.engine) as conn:
        rows = {r["id"]: r for r in conn.execute(select(accounts)).mappings()}
        assert rows["jdupont"]["email"] == "jean.dupont@lassuranceretraite.fr"
        assert rows["jdupont"]["primary_organisation"] == "CARSAT-RA" and rows["jdupont"]["internal"]
        assert rows["ext1"]["internal"] is False and rows["ext1"]["status"] == "active"
        assert conn.execute(select(deciders.c.account_id, deciders.c.organisation_code)).all() == [
            ("jdupont", "CARSAT-RA")]

    again = adopt(rt)
    assert (again.accounts_adopted, again.accounts_known, again.memberships_known) == (0, 3, 3)

    # What a reconciliation would do now: no account disabled, no person taken out of a group.
    plan = reconcile(rt, dry_run=True).plan
    assert sorted((a.account_id, a.kind, a.action, tuple(a.attributes)) for a in plan.accounts) == [
        ("elsewhere", "extra", "none", ()),
        ("jdupont", "renamed", "update", ("mail",)),          # syncd keeps e-mails lower-cased
        ("nomail", "extra", "none", ())]
    assert [(g.role_key, g.add, g.remove) for g in plan.groups] == [
        (OTHER, [], ["cn=batch,ou=services,dc=example,dc=org"])], \
        "only the value that is no person goes (reported by adopt; make the role shared to keep it)"
    for role, values in before.items():
        assert values <= members(rt, role), "adopt removed nobody"
    assert set(keys.values()) <= members(rt, ROLE) | members(rt, OTHER)
