"""Mobility: a person moves to another organisation, decided by the new organisation's correspondent.

Accepted, the account's organisation changes in the store and in LDAP; the rights the old
organisation managed locally are withdrawn with a mail, the centrally managed ones stay.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from syncd import operator
from syncd.core.model import Verdict
from syncd.directory import names
from syncd.errors import DecisionRefused
from syncd.jobs.decisions import decide_request
from syncd.mappings import AttributeMapping
from syncd.store.queries import request_history
from syncd.store import repo
from syncd.store.db import transaction
from syncd.store.tables import request_deciders
from tests.scenarios.helpers import (ADMIN, CORRESPONDENT, REQUESTER, events, habilitation, mails_to,
                                     member_dns, people, person, portal_inserts, request_row)
from tests.scenarios.shipped_mappings import use_mappings

pytestmark = pytest.mark.slapd

NEW_CORRESPONDENT = "p.durand@assurance-maladie.fr"   # a correspondent of CPAM-75


@pytest.fixture
def daemon(rt):
    """The test mappings, with the account's organisation written to LDAP as the shipped ones do."""
    people_layout = rt.mappings.directory.people
    attributes = {**people_layout.attributes,
                  "primary_organisation": AttributeMapping(ldap="syncdPrimaryOrganisation")}
    directory = rt.mappings.directory.model_copy(
        update={"people": people_layout.model_copy(update={"attributes": attributes})})
    return use_mappings(rt, rt.mappings.model_copy(update={"directory": directory}))


def granted(rt, daemon, role, decider):
    request_id = habilitation(rt, role=role)
    daemon.run_job("intake")
    decide_request(rt, request_id, decider, Verdict.ACCEPT)
    daemon.run_job("apply")


def mobility(rt, email=REQUESTER, organisation="CPAM-75") -> int:
    return portal_inserts(rt, kind="mobility", email=email, organisation_code=organisation)


def deciders_of(rt, request_id):
    with transaction(rt.engine) as conn:
        return {r[0] for r in conn.execute(select(request_deciders.c.account_id)
                                           .where(request_deciders.c.request_id == request_id))}


def test_an_accepted_mobility_moves_the_account_and_withdraws_only_the_old_organisations_local_rights(
        rt, daemon, smtp_server):
    ids = people(rt)
    ids["new"] = operator.add_account(rt, NEW_CORRESPONDENT, "Paul", "Durand", "CPAM-75")
    operator.add_decider(rt, NEW_CORRESPONDENT, "CPAM-75")
    granted(rt, daemon, "accords-locaux-acces", CORRESPONDENT)   # managed locally by CARSAT-RA
    granted(rt, daemon, "opim-local", ADMIN)                     # managed centrally
    request_id = mobility(rt)

    daemon.run_job("intake")
    assert request_row(rt, request_id)["status"] == "pending"
    assert deciders_of(rt, request_id) == {ids["new"]}, "the new organisation's correspondent decides"
    with pytest.raises(DecisionRefused):
        decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)   # the organisation the person leaves
    decide_request(rt, request_id, NEW_CORRESPONDENT, Verdict.ACCEPT)
    with transaction(rt.engine) as conn:
        assert repo.account_by_id(conn, ids["requester"]).primary_organisation == "CPAM-75"
    daemon.run_job("apply")
    daemon.run_job("accounts")
    daemon.run_job("deliver")

    entry = rt.directory.read_entry(person(rt, ids["requester"]), ["syncdPrimaryOrganisation"])
    assert [names.normalise_dn(v) for v in entry["syncdPrimaryOrganisation"]] == [
        names.normalise_dn(names.organisation_dn(rt.mappings.directory, "CPAM-75"))]
    assert person(rt, ids["requester"]) not in member_dns(rt, "accords-locaux-acces")
    assert person(rt, ids["requester"]) in member_dns(rt, "opim-local")
    row = request_row(rt, request_id)
    assert row["status"] == "accepted" and row["applied_at"] is not None
    assert events(rt, request_id) == ["submitted", "routed", "decision_refused", "decided",
                                      "organisation_changed", "applied"]
    subjects = [m["Subject"] for m in mails_to(smtp_server, REQUESTER)]
    assert "Votre habilitation « Accords locaux - Accès organisme » a été retirée" in subjects
    assert not any("OPIM" in s and "retirée" in s for s in subjects)
    assert "Votre changement d'organisme vers CPAM de Paris a été accepté" in subjects
    with transaction(rt.engine) as conn:
        item = next(i for i in request_history(conn, ids["requester"], rt.mappings) if i.request_id == request_id)
    assert item.description == "Changement d'organisme vers CPAM de Paris"


def test_a_mobility_to_an_organisation_without_correspondent_goes_to_the_central_administrators(rt, daemon):
    ids = people(rt)
    request_id = mobility(rt)
    daemon.run_job("intake")
    assert deciders_of(rt, request_id) == {ids["admin"]}


def test_a_directors_mobility_is_rejected_because_the_referential_owns_their_organisation(
        rt, daemon, smtp_server):
    people(rt)
    director = "d.roux@lassuranceretraite.fr"
    operator.add_account(rt, director, "Denis", "Roux", "CARSAT-RA", director=True)
    request_id = mobility(rt, email=director)
    daemon.run_job("intake")
    row = request_row(rt, request_id)
    assert row["status"] == "rejected"
    assert "Référentiel des Agents de Direction" in row["reason"]


def test_a_mobility_to_the_current_organisation_is_rejected(rt, daemon):
    people(rt)
    request_id = mobility(rt, organisation="CARSAT-RA")
    daemon.run_job("intake")
    assert request_row(rt, request_id)["status"] == "rejected"


def test_a_mobility_nobody_refuses_is_accepted_tacitly_like_a_habilitation(rt, daemon, clock, smtp_server):
    ids = people(rt)
    granted(rt, daemon, "accords-locaux-acces", CORRESPONDENT)
    request_id = mobility(rt)
    daemon.run_job("intake")
    clock.advance(days=10)
    daemon.run_job("tacit")
    daemon.run_job("apply")
    daemon.run_job("accounts")
    daemon.run_job("deliver")
    assert request_row(rt, request_id)["status"] == "accepted_tacitly"
    with transaction(rt.engine) as conn:
        assert repo.account_by_id(conn, ids["requester"]).primary_organisation == "CPAM-75"
    assert person(rt, ids["requester"]) not in member_dns(rt, "accords-locaux-acces")
    assert any("changement d'organisme" in m["Subject"] for m in mails_to(smtp_server, REQUESTER))


def test_the_requests_still_undecided_move_with_the_person_to_the_new_organisations_deciders(rt, daemon):
    ids = people(rt)
    ids["new"] = operator.add_account(rt, NEW_CORRESPONDENT, "Paul", "Durand", "CPAM-75")
    operator.add_decider(rt, NEW_CORRESPONDENT, "CPAM-75")
    waiting = habilitation(rt)                       # local: routed to the CARSAT-RA correspondent
    move = mobility(rt)
    daemon.run_job("intake")
    assert deciders_of(rt, waiting) == {ids["correspondent"]}
    decide_request(rt, move, NEW_CORRESPONDENT, Verdict.ACCEPT)
    daemon.run_job("reroute")
    assert deciders_of(rt, waiting) == {ids["new"]}
    with pytest.raises(DecisionRefused):
        decide_request(rt, waiting, CORRESPONDENT, Verdict.ACCEPT)
    decide_request(rt, waiting, NEW_CORRESPONDENT, Verdict.ACCEPT)
