"""Habilitations and accounts over time: revocation, profile changes, disabling, expiry and renewal."""

from __future__ import annotations

from datetime import timedelta

from dateutil.relativedelta import relativedelta
import pytest
from sqlalchemy import select

from syncd import operator
from syncd.core.model import Verdict
from syncd.core.profile import ProfileRefused
from syncd.errors import DecisionRefused
from syncd.jobs import habilitations
from syncd.jobs.decisions import decide_request
from syncd.store.db import transaction
from syncd.store.tables import memberships, requests
from tests.scenarios.helpers import (CORRESPONDENT, REQUESTER, events, habilitation, mails_to, member_dns, people,
                                     person, request_row)

pytestmark = pytest.mark.slapd


def granted(rt, daemon, role="accords-locaux-acces", by=CORRESPONDENT):
    request_id = habilitation(rt, role=role)
    daemon.run_job("intake")
    decide_request(rt, request_id, by, Verdict.ACCEPT)
    daemon.run_job("apply")
    return request_id


def membership(rt, account_id, role):
    with transaction(rt.engine) as conn:
        return conn.execute(select(memberships).where(memberships.c.account_id == account_id,
                                                      memberships.c.role_key == role)).mappings().first()


def test_a_correspondent_revokes_one_habilitation_and_the_user_leaves_the_group_and_is_told(rt, daemon, smtp_server):
    ids = people(rt)
    request_id = granted(rt, daemon)
    habilitations.revoke(rt, REQUESTER, "accords-locaux-acces", CORRESPONDENT, "Changement de poste")
    daemon.run_job("accounts")
    daemon.run_job("deliver")
    assert person(rt, ids["requester"]) not in member_dns(rt, "accords-locaux-acces")
    assert "revoked" in events(rt, request_id)
    assert request_row(rt, request_id)["status"] == "accepted"      # history is kept
    assert any("Changement de poste" in m.get_body(("plain",)).get_content() for m in mails_to(smtp_server, REQUESTER))


def test_only_a_decider_for_the_habilitation_may_revoke_it(rt, daemon):
    people(rt)
    granted(rt, daemon)
    operator.add_account(rt, "x.other@assurance-maladie.fr", "Xavier", "Autre", "CPAM-75")
    operator.add_decider(rt, "x.other@assurance-maladie.fr", "CPAM-75")
    with pytest.raises(DecisionRefused) as refused:
        habilitations.revoke(rt, REQUESTER, "accords-locaux-acces", "x.other@assurance-maladie.fr")
    assert refused.value.code == "not_authorised"
    with pytest.raises(DecisionRefused):
        habilitations.revoke(rt, REQUESTER, "accords-locaux-acces", REQUESTER)


def test_a_profile_change_reaches_ldap(rt, daemon):
    ids = people(rt)
    habilitations.update_profile(rt, REQUESTER, {"phone": "06 74 31 00 10", "secondary_organisation": "CPAM-75"})
    daemon.run_job("accounts")
    entry = rt.directory.read_entry(person(rt, ids["requester"]), ["telephoneNumber"])
    assert entry["telephoneNumber"] == ["06 74 31 00 10"]


def test_a_director_cannot_change_fields_owned_by_the_directors_referential(rt, daemon):
    operator.add_account(rt, "d.roux@lassuranceretraite.fr", "Denis", "Roux", "CARSAT-RA", director=True)
    with pytest.raises(ProfileRefused) as refused:
        habilitations.update_profile(rt, "d.roux@lassuranceretraite.fr", {"given_name": "Denis-Paul"})
    assert "Référentiel des Agents de Direction" in refused.value.problems["given_name"]
    assert habilitations.update_profile(rt, "d.roux@lassuranceretraite.fr", {"contact_email": "D.Roux@Example.org"}) \
        == {"contact_email": "d.roux@example.org"}


def test_disabling_an_account_removes_every_membership_and_enabling_it_restores_none(rt, daemon):
    ids = people(rt)
    granted(rt, daemon)
    habilitations.set_account_status(rt, REQUESTER, "disabled")
    daemon.run_job("accounts")
    assert person(rt, ids["requester"]) not in member_dns(rt, "accords-locaux-acces")
    habilitations.set_account_status(rt, REQUESTER, "active")
    daemon.run_job("accounts")
    assert person(rt, ids["requester"]) not in member_dns(rt, "accords-locaux-acces")
    entry = rt.directory.read_entry(person(rt, ids["requester"]), ["syncdAccountStatus"])
    assert entry["syncdAccountStatus"] == ["active"]


def test_a_habilitation_with_a_validity_is_renewed_when_its_renewal_is_accepted(rt, daemon, clock, smtp_server):
    ids = people(rt)
    granted(rt, daemon, role="annuaire-redacteur")
    first_end = membership(rt, ids["requester"], "annuaire-redacteur")["expires_at"]
    assert first_end == clock() + relativedelta(months=12)          # calendar months
    clock.now = first_end - timedelta(days=29)
    daemon.run_job("expiry")
    daemon.run_job("expiry")                              # idempotent: one renewal only
    with transaction(rt.engine) as conn:
        renewals = list(conn.execute(select(requests).where(requests.c.kind == "renewal")).mappings())
    assert len(renewals) == 1 and renewals[0]["status"] == "pending"
    daemon.run_job("deliver")
    assert any("échéance" in m["Subject"] for m in mails_to(smtp_server, REQUESTER))
    decide_request(rt, renewals[0]["id"], CORRESPONDENT, Verdict.ACCEPT)
    daemon.run_job("apply")
    assert membership(rt, ids["requester"], "annuaire-redacteur")["expires_at"] == first_end + relativedelta(months=12)
    clock.now = first_end + timedelta(days=1)
    daemon.run_job("expiry")
    daemon.run_job("accounts")
    assert person(rt, ids["requester"]) in member_dns(rt, "annuaire-redacteur")


def test_an_unrenewed_habilitation_is_removed_at_its_end_and_the_user_is_told(rt, daemon, clock, smtp_server):
    ids = people(rt)
    granted(rt, daemon, role="annuaire-redacteur")
    end = membership(rt, ids["requester"], "annuaire-redacteur")["expires_at"]
    clock.now = end - timedelta(days=20)
    daemon.run_job("expiry")
    with transaction(rt.engine) as conn:
        renewal_id = conn.execute(select(requests.c.id).where(requests.c.kind == "renewal")).scalar_one()
    decide_request(rt, renewal_id, CORRESPONDENT, Verdict.REFUSE, "Plus nécessaire")
    clock.now = end
    daemon.run_job("expiry")
    daemon.run_job("accounts")
    daemon.run_job("deliver")
    assert person(rt, ids["requester"]) not in member_dns(rt, "annuaire-redacteur")
    assert membership(rt, ids["requester"], "annuaire-redacteur")["revoked_at"] == end
    assert any("expir" in m["Subject"].lower() or "retir" in m["Subject"].lower() or "échue" in m["Subject"].lower()
               for m in mails_to(smtp_server, REQUESTER))


def test_the_portal_cannot_write_a_renewal_into_the_queue(rt, daemon):
    from tests.scenarios.helpers import portal_inserts
    people(rt)
    request_id = portal_inserts(rt, kind="renewal", email=REQUESTER, role_key="annuaire-redacteur")
    daemon.run_job("intake")
    assert request_row(rt, request_id)["status"] == "rejected"


def test_plan_shows_a_renamed_group_with_its_members_before_the_mappings_are_loaded(rt, daemon):
    from syncd.commands.plan import mapping_plan
    people(rt)
    granted(rt, daemon)
    assert mapping_plan(rt, rt.mappings) == []
    apps = []
    for app in rt.mappings.applications:
        roles = tuple(r.model_copy(update={"group": "app-accords-v2"}) if r.key == "accords-locaux-acces" else r
                      for r in app.roles)
        apps.append(app.model_copy(update={"roles": roles}))
    changes = mapping_plan(rt, rt.mappings.model_copy(update={"applications": tuple(apps)}))
    assert [(c.kind, c.key, c.members) for c in changes] == [("group_renamed", "accords-locaux-acces", 1)]
