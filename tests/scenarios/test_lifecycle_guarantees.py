"""Lifecycle behaviours that worked without a test: each one end to end, as a user would see it.

SQLite and PostgreSQL (``db_url``), a real slapd, the in-process SMTP server.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import select, update

from syncd import operator
from syncd.core.model import Verdict
from syncd.core.profile import ProfileRefused
from syncd.directory import names
from syncd.errors import DecisionRefused
from syncd.jobs import habilitations, passwords
from syncd.jobs.decisions import decide_request
from syncd.store import repo
from syncd.store.db import transaction
from syncd.store.tables import accounts, memberships, metadata, outbox, password_resets, requests
from tests.scenarios.helpers import (ADMIN, CORRESPONDENT, REQUESTER, habilitation, mails_to, people, person,
                                     portal_inserts, request_row)
from tests.scenarios.shipped_mappings import shipped_mappings, use_mappings

pytestmark = pytest.mark.slapd


def body(mail) -> str:
    return mail.get_body(("plain",)).get_content()


def history(rt, request_id, event) -> list[dict]:
    with transaction(rt.engine) as conn:
        return [dict(e) for e in repo.events_of(conn, request_id) if e["event"] == event]


def routed_to(rt, request_id) -> tuple[str, ...]:
    with transaction(rt.engine) as conn:
        return repo.routed_to(conn, request_id)


# -- intake ---------------------------------------------------------------------------------------------

def test_a_habilitation_request_for_a_role_the_account_already_holds_is_rejected_with_its_reason(
        rt, daemon, smtp_server):
    ids = people(rt)
    first = habilitation(rt)
    daemon.run_job("intake")
    decide_request(rt, first, CORRESPONDENT, Verdict.ACCEPT)
    daemon.run_job("apply")
    granted = request_row(rt, first)
    assert granted["status"] == "accepted" and granted["applied_at"] is not None, "granted, not just pending"

    again = habilitation(rt)
    daemon.run_job("intake")
    daemon.run_job("deliver")
    row = request_row(rt, again)
    assert row["status"] == "rejected"
    assert row["reason"] == "Cette habilitation est déjà accordée ou déjà demandée."
    assert [e["detail"]["code"] for e in history(rt, again, "rejected")] == ["duplicate"]
    assert any(row["reason"] in body(m) for m in mails_to(smtp_server, REQUESTER))
    assert routed_to(rt, again) == ()
    assert person(rt, ids["requester"]) in rt.directory.members_of_group("app-accords-locaux-acces")



# -- routing --------------------------------------------------------------------------------------------

def test_when_an_organisation_loses_its_only_correspondent_its_pending_requests_go_to_the_central_administrators(
        rt, daemon, smtp_server):
    ids = people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    assert routed_to(rt, request_id) == (ids["correspondent"],)
    daemon.run_job("deliver")
    assert not mails_to(smtp_server, ADMIN)

    operator.remove_decider(rt, CORRESPONDENT, "CARSAT-RA")
    assert daemon.run_job("reroute") == 1
    assert daemon.run_job("reroute") == 0, "re-routed once"
    daemon.run_job("deliver")

    assert routed_to(rt, request_id) == (ids["admin"],)
    [rerouted] = history(rt, request_id, "rerouted")
    assert rerouted["detail"] == {"deciders": [ids["admin"]], "previous": [ids["correspondent"]],
                                  "reason": "no_correspondent"}
    [mail] = mails_to(smtp_server, ADMIN)
    assert f"/decisions/{request_id}" in body(mail) and "Aristide Charenne" in body(mail)
    with pytest.raises(DecisionRefused) as refused:
        decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    assert refused.value.code == "not_authorised"
    decide_request(rt, request_id, ADMIN, Verdict.ACCEPT)
    assert request_row(rt, request_id)["status"] == "accepted"


# -- renewal --------------------------------------------------------------------------------------------

def test_the_renewal_opened_before_expiry_reaches_the_deciders_by_mail(rt, daemon, clock, smtp_server):
    ids = people(rt)
    first = habilitation(rt, role="annuaire-redacteur")            # validity_months: 12, decided locally
    daemon.run_job("intake")
    decide_request(rt, first, CORRESPONDENT, Verdict.ACCEPT)
    daemon.run_job("apply")
    daemon.run_job("deliver")
    before = len(mails_to(smtp_server, CORRESPONDENT))
    with transaction(rt.engine) as conn:
        end = conn.execute(select(memberships.c.expires_at).where(
            memberships.c.account_id == ids["requester"])).scalar_one()
    assert end == clock() + relativedelta(months=12)

    clock.now = end - relativedelta(days=30)                        # the 30-day renewal notice
    daemon.run_job("expiry")
    daemon.run_job("deliver")
    with transaction(rt.engine) as conn:
        [renewal] = conn.execute(select(requests).where(requests.c.kind == "renewal")).mappings().all()
    assert renewal["status"] == "pending" and routed_to(rt, renewal["id"]) == (ids["correspondent"],)
    new = mails_to(smtp_server, CORRESPONDENT)[before:]
    assert len(new) == 1
    assert f"/decisions/{renewal['id']}" in body(new[0]) and "Annuaire Organisme - Rédacteur" in body(new[0])
    assert not [m for m in mails_to(smtp_server, ADMIN) if f"/decisions/{renewal['id']}" in body(m)]


# -- passwords ------------------------------------------------------------------------------------------

def _first_password(rt, daemon):
    request_id = portal_inserts(rt, kind="account", email="b.durand@lassuranceretraite.fr", civility="Mme",
                                given_name="Béatrice", family_name="Durand", internal=True,
                                organisation_code="CARSAT-RA", terms_accepted=True, terms_version="2026-01")
    daemon.run_job("intake")
    decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    daemon.run_job("apply")
    return "b.durand@lassuranceretraite.fr"


def _forgotten_password(rt, daemon):
    passwords.request_reset(rt, REQUESTER)
    return REQUESTER


@pytest.mark.parametrize("issue", [_forgotten_password, _first_password], ids=["reset", "first-password"])
def test_a_password_token_is_stored_only_hashed_and_appears_nowhere_in_the_database_once_mailed(
        rt, daemon, smtp_server, issue):
    people(rt)
    recipient = issue(rt, daemon)
    daemon.run_job("deliver")
    token = re.search(r"token=([A-Za-z0-9_\-]+)", body(mails_to(smtp_server, recipient)[-1])).group(1)

    with transaction(rt.engine) as conn:
        hashes = list(conn.execute(select(password_resets.c.token_hash)).scalars())
        assert hashlib.sha256(token.encode()).hexdigest() in hashes
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                assert token not in repr(dict(row)), f"the raw token is stored in {table.name}"
        sent = conn.execute(select(outbox.c.status)).scalars().all()
    assert sent and set(sent) == {"sent"}


# -- profile and ownership ----------------------------------------------------------------------------

@pytest.fixture
def shipped(rt, ldap_layout, tmp_path):
    return use_mappings(rt, shipped_mappings(tmp_path, ldap_layout.base_dn))


def organisation_dn(rt, code):
    return names.normalise_dn(names.organisation_dn(rt.mappings.directory, code))


def test_a_profile_change_of_the_secondary_organisation_reaches_ldap_and_so_does_clearing_it(rt, shipped):
    daemon = shipped
    ids = people(rt)
    habilitations.update_profile(rt, REQUESTER, {"secondary_organisation": "CPAM-75"})
    daemon.run_job("accounts")
    entry = rt.directory.read_entry(person(rt, ids["requester"]), ["syncdSecondaryOrganisation"])
    assert [names.normalise_dn(v) for v in entry["syncdSecondaryOrganisation"]] == [organisation_dn(rt, "CPAM-75")]

    habilitations.update_profile(rt, REQUESTER, {"secondary_organisation": ""})
    daemon.run_job("accounts")
    assert rt.directory.read_entry(person(rt, ids["requester"]), ["syncdSecondaryOrganisation"]) \
        ["syncdSecondaryOrganisation"] == []


ADD_WRITES = {"givenName": ["Denis-Paul"], "sn": ["Roux-Martin"], "syncdBirthName": ["Martin"],
              "telephoneNumber": ["04 72 00 00 01"]}


def test_the_fields_the_directors_referential_owns_including_the_phone_are_never_overwritten(rt, shipped):
    daemon = shipped
    director_id = operator.add_account(rt, "d.roux@lassuranceretraite.fr", "Denis", "Roux", "CARSAT-RA",
                                       director=True)
    dn = person(rt, director_id)
    # The Référentiel des Agents de Direction writes its fields in LDAP ...
    rt.directory.upsert_account(director_id, {**ADD_WRITES, "syncdPrimaryOrganisation": [
        names.organisation_dn(rt.mappings.directory, "CPAM-75")]}, rt.mappings.directory.people.object_classes)
    # ... the portal refuses a director's change to them, the phone included ...
    with pytest.raises(ProfileRefused) as refused:
        habilitations.update_profile(rt, "d.roux@lassuranceretraite.fr", {"phone": "06 00 00 00 00"})
    assert "Référentiel des Agents de Direction" in refused.value.problems["phone"]
    # ... and whatever the database says, syncd's writes of the account leave them alone.
    with transaction(rt.engine) as conn:
        conn.execute(update(accounts).where(accounts.c.id == director_id).values(
            given_name="Denis", family_name="Roux", birth_name="Roux", phone="06 00 00 00 00",
            primary_organisation="CARSAT-RA", version=accounts.c.version + 1))
    habilitations.update_profile(rt, "d.roux@lassuranceretraite.fr", {"contact_email": "denis@example.org"})
    daemon.run_job("accounts")

    entry = rt.directory.read_entry(dn, [*ADD_WRITES, "syncdPrimaryOrganisation", "syncdContactMail"])
    assert {k: entry[k] for k in ADD_WRITES} == ADD_WRITES
    assert [names.normalise_dn(v) for v in entry["syncdPrimaryOrganisation"]] == [organisation_dn(rt, "CPAM-75")]
    assert entry["syncdContactMail"] == ["denis@example.org"], "the fields syncd owns are still written"


def test_a_phone_owned_externally_in_the_mappings_is_never_written_for_anybody(rt, ldap_layout, tmp_path):
    daemon = use_mappings(rt, shipped_mappings(tmp_path, ldap_layout.base_dn, attributes={
        "phone": "{ ldap: telephoneNumber, owner: external }"}))
    ids = people(rt)
    dn = person(rt, ids["requester"])
    rt.directory.upsert_account(ids["requester"], {"telephoneNumber": ["04 72 00 00 02"]},
                                rt.mappings.directory.people.object_classes)
    with pytest.raises(ProfileRefused) as refused:
        habilitations.update_profile(rt, REQUESTER, {"phone": "06 00 00 00 00"})
    assert refused.value.problems["phone"] == ("Ce champ est géré par un autre référentiel : "
                                               "il ne peut pas être modifié ici."), "not the directors' message"
    with transaction(rt.engine) as conn:
        conn.execute(update(accounts).where(accounts.c.id == ids["requester"]).values(
            phone="06 00 00 00 00", version=accounts.c.version + 1))
    habilitations.update_profile(rt, REQUESTER, {"given_name": "Aristide-Jean"})
    daemon.run_job("accounts")
    entry = rt.directory.read_entry(dn, ["telephoneNumber", "givenName"])
    assert entry == {"telephoneNumber": ["04 72 00 00 02"], "givenName": ["Aristide-Jean"]}
