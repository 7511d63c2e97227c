"""Provisioning writes LDAP (branches, organisations, role groups): each change is in the audit trail."""

from __future__ import annotations

from collections import Counter

import pytest
from ldap3 import MODIFY_REPLACE
from sqlalchemy import select

from syncd import operator
from syncd.directory import names
from syncd.jobs.provision import provision
from syncd.store.db import transaction
from syncd.store.tables import audit_log

pytestmark = pytest.mark.slapd


def _trail(rt) -> list[dict]:
    """Every audit row, sealed or not (the sealing job may or may not have run)."""
    with transaction(rt.engine, readonly=True) as conn:
        return [dict(r) for r in conn.execute(select(audit_log).order_by(audit_log.c.id)).mappings()]


def test_the_first_provisioning_records_each_creation_and_a_second_one_nothing(rt):
    layout = rt.mappings.directory

    provision(rt)

    first = _trail(rt)
    by_action = Counter(r["action"] for r in first if r["action"] != "ldap_container_created")
    groups = [role for app in rt.mappings.applications for role in app.roles]
    assert by_action == {"ldap_organisation_written": len(rt.mappings.organisations),
                         "ldap_group_created": len(groups)}, by_action
    # the three branches, under the base entry the operator made (syncd's account may not add it)
    containers = {names.normalise_dn(r["target"]) for r in first if r["action"] == "ldap_container_created"}
    branches = {names.normalise_dn(names.branch_dn(layout, b)) for b in ("people", "organisations", "groups")}
    assert containers == branches
    assert all(r["actor"] == "syncd" and r["request_id"] is None for r in first)
    targets = {names.normalise_dn(r["target"]) for r in first}
    assert {names.normalise_dn(names.group_dn(layout, role.group)) for role in groups} <= targets
    assert {names.normalise_dn(names.organisation_dn(layout, o.code)) for o in rt.mappings.organisations} <= targets
    created_group = next(r for r in first if r["action"] == "ldap_group_created")
    assert set(created_group["detail"]) == {"role_key", "application_key"}
    org = next(r for r in first if r["action"] == "ldap_organisation_written")
    assert org["detail"]["outcome"] == "created" and org["detail"]["correspondents"] == []

    provision(rt)

    assert len(_trail(rt)) == len(first), "everything in place: nothing recorded"


def test_a_change_provisioning_makes_is_recorded_with_what_it_wrote(rt):
    layout = rt.mappings.directory
    provision(rt)
    before = len(_trail(rt))

    # a correspondent appointed (an organisation entry changes), a group's description edited by hand
    account_id = operator.add_account(rt, "c.martin@lassuranceretraite.fr", "Claire", "Martin", "CARSAT-RA")
    operator.add_decider(rt, "c.martin@lassuranceretraite.fr", "CARSAT-RA")
    role = rt.mappings.role("accords-locaux-acces")
    group_dn = names.group_dn(layout, role.group)
    edited = rt.directory._modify(group_dn, {"description": [(MODIFY_REPLACE, ["changed by hand"])]})
    assert edited["result"] == 0, edited
    after_setup = len(_trail(rt))      # (adding the decider has its own audit rows, if any)

    provision(rt)

    new = _trail(rt)[after_setup:]
    assert after_setup >= before
    assert Counter(r["action"] for r in new) == {"ldap_organisation_written": 1, "ldap_group_updated": 1}
    org = next(r for r in new if r["action"] == "ldap_organisation_written")
    assert names.normalise_dn(org["target"]) == names.normalise_dn(names.organisation_dn(layout, "CARSAT-RA"))
    assert org["detail"]["outcome"] == "updated"
    assert org["detail"]["correspondents"] == [names.person_dn(layout, account_id)]
    group = next(r for r in new if r["action"] == "ldap_group_updated")
    assert names.normalise_dn(group["target"]) == names.normalise_dn(group_dn)
    assert group["detail"]["role_key"] == role.key
