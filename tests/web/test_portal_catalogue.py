"""The catalogue with its padlocks, the organisations of the sign-up list and the e-mail check,
driven as the portal does; the e-mail check is compared with what intake decides later."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from syncd import operator
from syncd.core import intake
from syncd.directory import names
from syncd.store.db import transaction
from syncd.store.tables import requests
from tests.scenarios.helpers import CORRESPONDENT, REQUESTER, habilitation, mails_to, people, person, request_row

pytestmark = pytest.mark.slapd

EXTERNAL = "prestataire@example.com"


def states(api, ref=REQUESTER):
    body = api.get(f"/api/v1/accounts/{ref}/catalogue").json()
    return {r["role_key"]: r for app in body["applications"] for r in app["roles"]}


def test_the_catalogue_lists_every_application_with_its_roles_management_and_restrictions(api, rt):
    apps = {a["application_key"]: a for a in api.get("/api/v1/applications").json()["applications"]}
    assert list(apps) == [a.key for a in rt.mappings.applications]
    assert apps["opim"]["management"] == "central"
    [greve] = apps["greve"]["roles"]
    assert (greve["label"], greve["restriction"], greve["management"]) == (
        "Grève - Déclaration des mouvements", "internal_only", "local")
    assert apps["annuaire"]["roles"][0]["validity_months"] == 12


def test_each_role_shows_its_padlock_state_for_one_person_as_requests_move(api, rt, daemon):
    people(rt, admin=False)       # no central administrator: a centrally managed request waits
    fresh = states(api)
    assert {r["state"] for r in fresh.values()} == {"may_request"}
    submitted = api.post("/api/v1/requests", {"kind": "habilitation", "email": REQUESTER,
                                              "role_key": "accords-locaux-acces"})
    local = submitted.json()["request_id"]
    central = habilitation(rt, role="opim-local")
    parked = habilitation(rt, role="annuaire-redacteur")
    now = states(api)["accords-locaux-acces"]
    assert (now["state"], now["request_status"], now["request_id"]) == ("requested", "new", local)
    daemon.run_job("intake")
    with transaction(rt.engine) as conn:
        conn.execute(update(requests).where(requests.c.id == parked).values(parked_at=rt.clock(),
                                                                          parked_reason="test"))
    now = states(api)
    assert (now["accords-locaux-acces"]["request_status"], now["accords-locaux-acces"]["state_label"]) == (
        "pending", "En attente validation d'un gestionnaire")
    assert request_row(rt, central)["status"] == "awaiting_decider"
    assert (now["opim-local"]["state"], now["opim-local"]["request_status"]) == ("requested", "awaiting_decider")
    assert now["annuaire-redacteur"]["parked"] is True and now["accords-locaux-acces"]["parked"] is False
    assert api.decide(local, "accept", CORRESPONDENT).status_code == 200
    body = api.get(f"/api/v1/accounts/{REQUESTER}/catalogue").json()
    accords = next(a for a in body["applications"] if a["application_key"] == "accords-locaux")
    assert accords["held"] is True and accords["roles"][0]["state"] == "held"
    assert states(api)["greve-declaration"]["state"] == "may_request"


def test_an_internal_only_role_is_not_available_to_an_external_account(api, rt, daemon):
    operator.add_account(rt, EXTERNAL, "Eve", "Externe", "CPAM-75", internal=False)
    external = states(api, EXTERNAL)
    assert external["greve-declaration"]["state"] == "not_available"
    assert external["accords-locaux-acces"]["state"] == "may_request"
    assert api.get("/api/v1/accounts/nobody/catalogue").status_code == 404


def test_the_organisations_of_the_sign_up_list(api, rt):
    body = api.get("/api/v1/organisations").json()
    assert body["organisations"] == [{"code": "CARSAT-RA", "name": "CARSAT Rhône-Alpes", "branch": "retraite"},
                                     {"code": "CPAM-75", "name": "CPAM de Paris", "branch": "maladie"}]


ADDRESSES = [("jeanne.martin@assurance-maladie.fr", True), ("Jeanne.Martin@IDF.URSSAF.FR", True),
             ("jeanne@gmail.com", True), ("jeanne@gmail.com", False), ("pas-une-adresse", False),
             ("josé@assurance-maladie.fr", True), ("a@b", False), ("x@assurance-maladie.fr.evil.com", True)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_e_mail_check_answers_what_intake_decides_later_for_the_same_address(api, rt, daemon, smtp_server):
    people(rt, correspondent=False, admin=False)
    for n, (email, internal) in enumerate(ADDRESSES):
        check = api.post("/api/v1/email-check", {"email": email, "internal": internal})
        assert check.status_code == 200, check.text
        answer = check.json()
        submitted = api.post("/api/v1/requests", {
            "kind": "account", "email": email, "given_name": "Jeanne", "family_name": "Martin", "internal": internal,
            "organisation_code": "CPAM-75", "terms_accepted": True, "terms_version": "2026-01",
            "portal_ref": f"signup-{n}"})
        if submitted.status_code == 400:     # refused at the door already: the check said so too
            assert not answer["acceptable"], email
            continue
        daemon.run_job("intake")
        row = request_row(rt, submitted.json()["request_id"])
        if answer["acceptable"]:
            assert row["status"] != "rejected", (email, row["reason"])
            assert answer["email"] == email.lower()
        else:
            assert (row["status"], row["reason"]) == ("rejected", answer["problems"][0]["message"]), email
    # An existing account's address is acceptable to the check (no enumeration); intake rejects it.
    assert api.post("/api/v1/email-check", {"email": REQUESTER, "internal": True}).json()["acceptable"] is True
    assert intake.email_rejection(REQUESTER, True, rt.mappings) == (REQUESTER, None)


def test_each_role_group_in_ldap_carries_its_applications_label_beside_its_own(rt, daemon):
    for app in rt.mappings.applications:
        for role in app.roles:
            entry = rt.directory.read_entry(names.group_dn(rt.mappings.directory, role.group),
                                            ["description", "syncdApplicationLabel"])
            assert entry == {"description": [role.label], "syncdApplicationLabel": [app.label]}


def test_the_sign_up_screen_from_the_list_to_the_account_in_ldap_and_its_first_password_mail(
        api, rt, daemon, smtp_server):
    people(rt, admin=False)
    new = "jeanne.martin@lassuranceretraite.fr"
    [org] = [o for o in api.get("/api/v1/organisations").json()["organisations"] if o["name"] == "CARSAT Rhône-Alpes"]
    assert api.post("/api/v1/email-check", {"email": new, "internal": True}).json()["acceptable"] is True
    submitted = api.post("/api/v1/requests", {
        "kind": "account", "email": new, "civility": "Mme", "given_name": "Jeanne", "family_name": "Martin",
        "internal": True, "organisation_code": org["code"], "terms_accepted": True, "terms_version": "2026-01",
        "portal_ref": "signup-jeanne"})
    assert submitted.status_code == 201, submitted.text
    daemon.run_job("intake")
    assert api.decide(submitted.json()["request_id"], "accept", CORRESPONDENT).status_code == 200
    daemon.run_job("apply")
    daemon.run_job("deliver")
    account_id = request_row(rt, submitted.json()["request_id"])["account_id"]
    entry = rt.directory.read_entry(person(rt, account_id), ["mail", "givenName"])
    assert entry == {"mail": [new], "givenName": ["Jeanne"]}
    assert any("/password/reset?token=" in m.get_body(("plain",)).get_content() for m in mails_to(smtp_server, new))
    # The new account's catalogue: every padlock closed, ready for its first request.
    assert {r["state"] for r in states(api, new).values()} == {"may_request"}
