"""The portal's side of the API: submitting requests, and reading history, rights, contacts and work."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.scenarios.helpers import ADMIN, CORRESPONDENT, REQUESTER, request_row
from tests.web.conftest import SQLITE_ONLY

pytestmark = pytest.mark.slapd


def test_the_history_shows_each_request_as_the_portal_lists_it(api, routed, rt):
    api.decide(routed["request"], "accept", CORRESPONDENT)
    for ref in (routed["requester"], REQUESTER, REQUESTER.upper()):
        response = api.get(f"/api/v1/accounts/{ref}/history")
        assert response.status_code == 200, ref
        [item] = response.json()["items"]
        assert (item["description"], item["status_label"]) == ("Accords locaux - Accès organisme", "Acceptée")
        assert item["date"] == "2026-11-02T09:30:00Z" and item["deadline"] == "2026-11-12T09:30:00Z"


def test_the_history_of_a_pending_account_request_is_found_by_e_mail(api, rt):
    response = api.post("/api/v1/requests", {
        "kind": "account", "email": "jeanne.martin@assurance-maladie.fr", "civility": "Mme", "given_name": "Jeanne",
        "family_name": "Martin", "internal": True, "organisation_code": "CPAM-75", "terms_accepted": True,
        "terms_version": "2024-01"})
    assert response.status_code == 201, response.text
    history = api.get("/api/v1/accounts/jeanne.martin@assurance-maladie.fr/history").json()
    assert history["account_id"] is None
    assert [(i["description"], i["status_label"]) for i in history["items"]] == [
        ("Création de compte", "En attente validation d'un gestionnaire")]
    assert api.get("/api/v1/accounts/personne@nulle-part.fr/history").status_code == 404


def test_the_rights_synthesis_shows_an_accepted_role_then_its_application_in_ldap(api, routed, rt, daemon):
    api.decide(routed["request"], "accept", CORRESPONDENT)
    [app] = api.get(f"/api/v1/accounts/{REQUESTER}/rights").json()["applications"]
    assert app["application_label"] == "Accords locaux"
    assert [(r["label"], r["state"]) for r in app["roles"]] == [("Accords locaux - Accès organisme", "accepted")]
    daemon.run_job("apply")
    [app] = api.get(f"/api/v1/accounts/{REQUESTER}/rights").json()["applications"]
    assert app["roles"][0]["state"] == "applied"


def test_the_contacts_are_the_correspondents_of_the_organisation(api, routed):
    body = api.get(f"/api/v1/accounts/{routed['requester']}/contacts").json()
    assert (body["organisation_name"], body["central"]) == ("CARSAT Rhône-Alpes", False)
    assert body["contacts"] == [{"name": "Claire Martin", "email": CORRESPONDENT}]
    assert api.get("/api/v1/accounts/nobody/contacts").status_code == 404


def test_a_decider_reads_their_pending_requests_sorted_and_filtered(api, routed, rt, daemon):
    from tests.scenarios.helpers import habilitation
    second = habilitation(rt, role="greve-declaration")
    daemon.run_job("intake")
    body = api.get(f"/api/v1/deciders/{CORRESPONDENT}/pending?sort=-submitted&page_size=1").json()
    assert (body["total"], body["page_size"], len(body["items"])) == (2, 1, 1)
    assert body["items"][0]["requester_name"] == "Aristide Charenne"
    filtered = api.get(f"/api/v1/deciders/{CORRESPONDENT}/pending?role=greve-declaration&organisation=CARSAT-RA")
    assert [i["request_id"] for i in filtered.json()["items"]] == [second]
    assert api.get(f"/api/v1/deciders/{ADMIN}/pending").json()["total"] == 0
    bad = api.get(f"/api/v1/deciders/{CORRESPONDENT}/pending?sort=name&page=0")
    assert bad.status_code == 400 and {f["field"] for f in bad.json()["fields"]} == {"sort", "page"}
@SQLITE_ONLY
def test_the_decision_page_data_is_readable_too(api, routed):
    body = api.get(f"/api/v1/requests/{routed['request']}").json()
    assert (body["requester_name"], body["organisation_name"], body["role_label"]) == (
        "Aristide Charenne", "CARSAT Rhône-Alpes", "Accords locaux - Accès organisme")
    assert api.get("/api/v1/requests/424242").status_code == 404


def test_a_submitted_habilitation_request_is_taken_in_by_the_daemon(api, routed, rt, daemon):
    submitted = api.post("/api/v1/requests", {"kind": "habilitation", "email": REQUESTER, "role_key": "opim-local",
                                              "portal_ref": "portal-h-1"})
    assert submitted.status_code == 201, submitted.text
    request_id = submitted.json()["request_id"]
    assert request_row(rt, request_id)["status"] == "new"
    daemon.run_job("intake")
    assert request_row(rt, request_id)["status"] == "pending"


def test_a_submission_is_idempotent_by_portal_ref(api, routed, rt):
    body = {"kind": "habilitation", "email": REQUESTER, "role_key": "opim-local", "portal_ref": "portal-h-2"}
    first = api.post("/api/v1/requests", body)
    again = api.post("/api/v1/requests", body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["request_id"] == first.json()["request_id"] and again.json()["created"] is False
    other = api.post("/api/v1/requests", body | {"email": CORRESPONDENT})
    assert (other.status_code, other.json()["error"]) == (409, "portal_ref_conflict")


def test_a_submission_with_an_idempotency_key_is_not_repeated(api, routed, rt):
    body = {"kind": "habilitation", "email": REQUESTER, "role_key": "opim-local"}
    key = {"Idempotency-Key": "submit-1"}
    first = api.post("/api/v1/requests", body, headers=key)
    again = api.post("/api/v1/requests", body, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json()["request_id"] == again.json()["request_id"]


@pytest.mark.parametrize("body, field", [
    ({"kind": "habilitation", "email": REQUESTER, "role_key": "no-such-role"}, "role_key"),
    ({"kind": "habilitation", "email": "not-an-email", "role_key": "opim-local"}, "email"),
    ({"kind": "habilitation", "email": REQUESTER, "role_key": "opim-local", "portal_ref": "a\x00b"}, "portal_ref"),
    ({"kind": "account", "email": "j@assurance-maladie.fr", "given_name": "J", "family_name": "M", "internal": True,
      "organisation_code": "NOPE", "terms_accepted": True, "terms_version": "1"}, "organisation_code"),
    ({"kind": "renewal", "email": REQUESTER}, "kind"),
])
@SQLITE_ONLY
def test_a_submission_that_is_not_valid_names_the_field(api, routed, body, field):
    response = api.post("/api/v1/requests", body)
    assert response.status_code == 400, response.text
    assert field in {f["field"].split(".")[0] for f in response.json()["fields"]}
@SQLITE_ONLY
def test_a_submission_dated_in_the_future_is_refused(api, routed, rt):
    when = (rt.clock() + timedelta(hours=1)).isoformat()
    response = api.post("/api/v1/requests", {"kind": "habilitation", "email": REQUESTER, "role_key": "opim-local",
                                             "submitted_at": when})
    assert response.status_code == 400 and response.json()["fields"][0]["field"] == "submitted_at"


def test_health_readiness_and_metrics(client, api, routed, rt):
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "ldap": "ok"}
    api.decide(routed["request"], "accept", CORRESPONDENT)
    api.decide(routed["request"], "accept", CORRESPONDENT)
    client.post(f"/api/v1/requests/{routed['request']}/decision", json={})
    text = client.get("/metrics").text
    for line in ('syncd_decisions_total{channel="api",verdict="accept"} 1.0',
                 'syncd_web_decisions_refused_total{channel="api",code="already_decided"} 1.0',
                 'syncd_web_auth_failures_total{reason="missing_credentials"} 1.0',
                 'syncd_requests{status="accepted"} 1.0',
                 'syncd_requests_accepted_not_applied 1.0',
                 'syncd_database_up 1.0',
                 'route="/api/v1/requests/{request_id}/decision",status="200"'):
        assert line in text, line
    assert "/decide/" not in text.replace("/decide/{token}", ""), "no token in a label"
    from syncd.store import audit
    from syncd.store.db import transaction
    with transaction(rt.engine) as conn:
        waiting = audit.unsealed(conn)
    assert waiting >= 2, "the decision and the refused second one, among others, wait for the sealing job"
    assert re.search(r"^syncd_audit_unsealed (\S+)$", text, re.M).group(1) == f"{waiting:.1f}"


@SQLITE_ONLY
def test_readiness_fails_when_ldap_is_down(rt, routed):
    from starlette.testclient import TestClient

    from syncd.web import create_app
    from tests.web.conftest import CLIENTS
    rt.settings.ldap.urls = ["ldap://127.0.0.1:9"]   # nothing listens there
    rt.close()                                         # drop the working connections
    rt.settings.ldap.timeout_seconds = 1
    with TestClient(create_app(rt, clients=CLIENTS)) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["ldap"].startswith("unavailable")
    assert ready.json()["checks"]["database"] == "ok"


@pytest.mark.parametrize("field, value, said", [
    ("email", "jérôme.x@lassuranceretraite.fr", "L'adresse e-mail professionnelle contient « é »"),
    ("terms_version", "2026*)(uid=*", "La version des conditions générales d'utilisation ne peut contenir"),
])
def test_an_account_request_the_directory_would_refuse_is_refused_at_the_door_with_a_french_reason(
        api, rt, field, value, said):
    body = {"kind": "account", "email": "jeanne.martin@assurance-maladie.fr", "given_name": "Jeanne",
            "family_name": "Martin", "internal": True, "organisation_code": "CPAM-75", "terms_accepted": True,
            "terms_version": "2024-01", field: value}
    response = api.post("/api/v1/requests", body)
    assert response.status_code == 400, response.text
    [problem] = response.json()["fields"]
    assert problem["field"] == field and problem["message"].startswith(said)
