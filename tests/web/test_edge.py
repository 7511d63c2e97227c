"""The web edge (issue 11, "What was found" 5 and 6): each case as it was reproduced, then fixed.

Control characters refused the same way by the page and the API; HEAD answers as GET and changes
nothing; a body on a GET is refused before it is read; a replayed ``portal_ref`` that differs is
409; a withdrawn or expired right says so; API messages are French (English on request).
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import update

from syncd.store.db import transaction
from syncd.store.tables import memberships
from tests.scenarios.helpers import CORRESPONDENT, REQUESTER, events, mails_to, request_row
from tests.web.conftest import SQLITE_ONLY, links_in

pytestmark = pytest.mark.slapd

ROLE = "accords-locaux-acces"
# Refused by the API's rule, and so by the page's: C0, DEL, C1, bidirectional overrides.
CONTROLS = ["\x00", "\x07", "\x1b[31m", "\x7f", "\x85", "\x9b", "\u202e", "\u2066"]


@pytest.fixture
def link(routed, daemon, smtp_server) -> str:
    daemon.run_job("deliver")
    return urlsplit(links_in(mails_to(smtp_server, CORRESPONDENT)[-1])[0]).path


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


# --- one rule for control characters --------------------------------------------------------------

def test_a_nul_in_the_refusal_reason_on_the_page_is_the_form_again_with_a_french_error(link, client, routed, rt):
    csrf = csrf_of(client.get(link).text)
    response = client.post(link, data={"verdict": "refuse", "comment": "Poste\x00 sans lien", "csrf": csrf})
    assert response.status_code == 400
    shown = html.unescape(response.text)
    assert "caractère non autorisé (U+0000" in shown and 'role="alert"' in response.text
    assert 'id="comment-error"' in response.text and 'aria-invalid="true"' in response.text
    assert request_row(rt, routed["request"])["status"] == "pending"
    done = client.post(link, data={"verdict": "refuse", "comment": "Poste sans lien", "csrf": csrf_of(response.text)})
    assert done.status_code == 200, "the link is still usable"


@SQLITE_ONLY
@pytest.mark.parametrize("control", CONTROLS, ids=["NUL", "BEL", "ESC", "DEL", "NEL", "CSI", "RLO", "LRI"])
def test_the_page_and_the_api_refuse_the_same_control_characters(link, client, api, routed, rt, control):
    comment = f"Poste {control} sans lien"
    by_api = api.decide(routed["request"], "refuse", CORRESPONDENT, comment)
    assert by_api.status_code == 400, by_api.text
    assert [f["field"] for f in by_api.json()["fields"]] == ["comment"]
    by_page = client.post(link, data={"verdict": "refuse", "comment": comment, "csrf": csrf_of(client.get(link).text)})
    assert by_page.status_code == 400 and 'id="comment-error"' in by_page.text
    assert request_row(rt, routed["request"])["status"] == "pending"


@SQLITE_ONLY
def test_line_breaks_and_tabs_stay_allowed_in_a_refusal_reason(link, client, routed, rt):
    comment = "Poste sans lien\r\n\tavec les accords"
    done = client.post(link, data={"verdict": "refuse", "comment": comment, "csrf": csrf_of(client.get(link).text)})
    assert done.status_code == 200
    assert request_row(rt, routed["request"])["comment"] == comment


# --- HEAD ------------------------------------------------------------------------------------------

@SQLITE_ONLY
def test_head_on_the_decision_link_answers_as_get_without_a_body_and_changes_nothing(link, client, routed, rt):
    got = client.get(link)
    for _ in range(3):
        head = client.head(link)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == got.headers["content-length"]
        assert head.headers["content-security-policy"] == got.headers["content-security-policy"]
    assert request_row(rt, routed["request"])["status"] == "pending"
    assert "decided" not in events(rt, routed["request"])
    assert client.post(link, data={"verdict": "accept", "csrf": csrf_of(got.text)}).status_code == 200


@SQLITE_ONLY
def test_head_on_the_api_is_signed_as_head_and_answers_as_get(api, routed, rt):
    target = f"/api/v1/requests/{routed['request']}"
    got = api.get(target)
    head = api.call("HEAD", target)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == got.headers["content-length"]
    assert api.client.head(target).status_code == 401, "unsigned, as GET"
    assert request_row(rt, routed["request"])["status"] == "pending"


# --- bodies on reads -------------------------------------------------------------------------------

def chunked_scope(method: str, path: str) -> dict:
    """The ASGI scope of a request with a chunked body, as uvicorn passes it to the app."""
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"testserver"), (b"transfer-encoding", b"chunked")],
            "client": ("127.0.0.1", 1), "server": ("testserver", 80)}


@SQLITE_ONLY
@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_a_body_on_a_read_is_refused_before_it_is_read(app, rt, method):
    """Called as the server would: the app may pull one chunk of a 64 MB chunked body, no more."""
    import anyio
    pulled, sent = [], []

    async def receive():
        pulled.append(1)
        return {"type": "http.request", "body": b"x" * 65536, "more_body": len(pulled) < 1024}

    async def send(message):
        sent.append(message)

    for path in ("/api/v1/requests/1", "/healthz", "/decide/abc"):
        pulled.clear()
        sent.clear()
        anyio.run(app, chunked_scope(method, path), receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        assert start["status"] == 400 and (b"connection", b"close") in start["headers"]
        assert len(pulled) <= 1, f"{method} {path} read {len(pulled)} chunks"


@SQLITE_ONLY
def test_a_read_whose_chunked_body_is_empty_is_served(app, rt):
    import anyio
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    anyio.run(app, chunked_scope("GET", "/healthz"), receive, send)
    assert next(m for m in sent if m["type"] == "http.response.start")["status"] == 200


@SQLITE_ONLY
def test_a_get_with_a_declared_body_is_refused_and_one_with_an_empty_body_served(client, api):
    refused = client.request("GET", "/api/v1/requests/1", content=b"{}")
    assert (refused.status_code, refused.json()["error"]) == (400, "body_not_allowed")
    assert client.get("/healthz", headers={"Content-Length": "0"}).status_code == 200


# --- idempotency -----------------------------------------------------------------------------------

@SQLITE_ONLY
def test_a_portal_ref_replayed_for_another_role_is_409_and_the_same_one_is_returned(api, routed, rt):
    first = {"kind": "habilitation", "email": REQUESTER, "role_key": ROLE, "portal_ref": "P-1"}
    created = api.post("/api/v1/requests", first)
    assert created.status_code == 201
    again = api.post("/api/v1/requests", first | {"email": REQUESTER.upper()})
    assert (again.status_code, again.json()["created"]) == (200, False)
    other = api.post("/api/v1/requests", first | {"role_key": "greve-declaration"})
    assert (other.status_code, other.json()["error"]) == (409, "portal_ref_conflict")
    assert [f["field"] for f in other.json()["fields"]] == ["role_key"]
    assert api.get(f"/api/v1/requests/{created.json()['request_id']}").json()["role_key"] == ROLE


@SQLITE_ONLY
def test_an_account_request_replayed_with_another_name_is_409(api, rt, daemon):
    first = {"kind": "account", "email": "j.martin@assurance-maladie.fr", "civility": "Mme", "given_name": "Jeanne",
             "family_name": "Martin", "internal": True, "organisation_code": "CPAM-75", "terms_accepted": True,
             "terms_version": "2024-01", "portal_ref": "P-2"}
    assert api.post("/api/v1/requests", first).status_code == 201
    daemon.run_job("intake")   # intake normalises the stored row: a faithful replay still matches
    assert api.post("/api/v1/requests", first | {"given_name": " Jeanne "}).status_code == 200
    assert api.post("/api/v1/requests", first | {"given_name": "Jeannette"}).status_code == 409
    assert api.post("/api/v1/requests", first | {"internal": False}).status_code == 409


@SQLITE_ONLY
def test_an_idempotency_key_replayed_with_another_body_is_409(api, routed):
    path = f"/api/v1/requests/{routed['request']}/decision"
    body = {"verdict": "refuse", "decider": CORRESPONDENT, "comment": "Non"}
    assert api.post(path, body, headers={"Idempotency-Key": "k-1"}).status_code == 200
    reused = api.post(path, body | {"comment": "Autre"}, headers={"Idempotency-Key": "k-1"})
    assert (reused.status_code, reused.json()["error"]) == (409, "idempotency_key_reused")


# --- what people are told --------------------------------------------------------------------------

def _accepted_and_applied(api, routed, daemon):
    assert api.decide(routed["request"], "accept", CORRESPONDENT).status_code == 200
    daemon.run_job("apply")


def test_a_withdrawn_right_reads_retiree_with_its_date_in_the_history_and_the_rights(api, routed, rt, daemon, clock):
    from syncd.jobs import habilitations
    _accepted_and_applied(api, routed, daemon)
    clock.advance(days=3)
    habilitations.revoke(rt, REQUESTER, ROLE, by=CORRESPONDENT, reason="Départ du service")
    [item] = api.get(f"/api/v1/accounts/{REQUESTER}/history").json()["items"]
    day = (rt.clock()).strftime("%d/%m/%Y")
    assert (item["status"], item["ended"], item["status_label"]) == ("accepted", "revoked", f"Retirée le {day}")
    rights = api.get(f"/api/v1/accounts/{REQUESTER}/rights").json()
    assert rights["applications"] == []
    [ended] = rights["ended"]
    assert (ended["role_key"], ended["status"], ended["status_label"]) == (ROLE, "revoked", f"Retirée le {day}")


@SQLITE_ONLY
def test_an_expired_right_reads_expiree_with_its_date_before_and_after_the_expiry_job(api, routed, rt, daemon, clock):
    _accepted_and_applied(api, routed, daemon)
    expiry = rt.clock() + timedelta(days=1)
    with transaction(rt.engine) as conn:
        conn.execute(update(memberships).values(expires_at=expiry))
    clock.advance(days=2)
    label = f"Expirée le {expiry.strftime('%d/%m/%Y')}"
    for _ in range(2):
        [item] = api.get(f"/api/v1/accounts/{REQUESTER}/history").json()["items"]
        assert (item["ended"], item["status_label"]) == ("expired", label)
        [ended] = api.get(f"/api/v1/accounts/{REQUESTER}/rights").json()["ended"]
        assert (ended["status"], ended["status_label"]) == ("expired", label)
        daemon.run_job("expiry")


@SQLITE_ONLY
def test_api_errors_are_french_and_english_on_request(api, routed):
    missing = api.get("/api/v1/requests/999999")
    assert missing.json() == {"error": "not_found", "message": missing.json()["message"]}
    assert "Introuvable" in missing.json()["message"]
    english = api.get("/api/v1/requests/999999", headers={"Accept-Language": "en-GB,en;q=0.9,fr;q=0.5"})
    assert english.json()["error"] == "not_found" and english.json()["message"].startswith("There is no request")
    invalid = api.decide(routed["request"], "peut-être", CORRESPONDENT)
    assert invalid.json()["error"] == "invalid_request"
    assert invalid.json()["message"] == "La requête n'est pas valide : voir « fields »."
    assert invalid.json()["fields"] == [{"field": "verdict", "message": "Valeur non permise."}]
    unsigned = api.client.get("/api/v1/requests/1")
    assert (unsigned.json()["error"], unsigned.json()["message"]) == (
        "missing_credentials", "En-têtes d'authentification manquants (X-Syncd-Client, X-Syncd-Timestamp, "
                               "X-Syncd-Nonce, X-Syncd-Signature).")
