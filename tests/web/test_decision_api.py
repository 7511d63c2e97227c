"""The decision API: who may decide what, and every way a call is refused without changing anything."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from syncd.web import create_app
from tests.scenarios.helpers import ADMIN, CORRESPONDENT, REQUESTER, events, habilitation, request_row
from tests.web.conftest import CLIENTS, OTHER_CORRESPONDENT, SQLITE_ONLY, SignedClient

pytestmark = pytest.mark.slapd


def decision_path(request_id: int) -> str:
    return f"/api/v1/requests/{request_id}/decision"


def assert_untouched(rt, request_id):
    row = request_row(rt, request_id)
    assert (row["status"], row["decided_at"], row["decided_by"]) == ("pending", None, None)
    assert "decided" not in events(rt, request_id)


# --- happy paths ---------------------------------------------------------------------------------

def test_the_correspondent_accepts_a_request_through_the_signed_api(api, routed, rt):
    response = api.decide(routed["request"], "accept", CORRESPONDENT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["status_label"], body["decided_by"]) == ("accepted", "Acceptée",
                                                                          routed["correspondent"])
    row = request_row(rt, routed["request"])
    assert row["status"] == "accepted" and row["applied_at"] is None, "LDAP is the daemon's job"
    assert events(rt, routed["request"])[-1] == "decided"


def test_the_correspondent_refuses_with_a_comment_and_the_requester_is_told(api, routed, rt, daemon, smtp_server):
    response = api.decide(routed["request"], "refuse", routed["correspondent"], "Poste sans lien avec les accords")
    assert response.status_code == 200, response.text
    assert response.json()["comment"] == "Poste sans lien avec les accords"
    daemon.run_job("deliver")
    mail = [m for m in smtp_server.messages if REQUESTER in m["To"]][-1]
    assert "Poste sans lien avec les accords" in mail.get_body(("plain",)).get_content()


# --- the authorisation matrix: each refused, nothing changes ------------------------------------------

@pytest.mark.parametrize("decider, status, code", [
    (OTHER_CORRESPONDENT, 403, "not_authorised"),   # a correspondent of another organisation
    (ADMIN, 403, "not_authorised"),                 # the central administrator, for a local role with a correspondent
    (REQUESTER, 403, "own_request"),                # nobody decides their own request
    ("nobody@example.org", 403, "not_authorised"),  # no such account
])
def test_a_decider_who_may_not_decide_is_refused(api, routed, rt, decider, status, code):
    response = api.decide(routed["request"], "accept", decider)
    assert (response.status_code, response.json()["error"]) == (status, code)
    assert_untouched(rt, routed["request"])
    assert events(rt, routed["request"])[-1] == "decision_refused", "the attempt is in the history"


def test_a_correspondent_who_left_the_organisation_can_no_longer_decide(api, routed, rt):
    from syncd import operator
    operator.remove_decider(rt, CORRESPONDENT, "CARSAT-RA")
    response = api.decide(routed["request"], "accept", CORRESPONDENT)
    assert (response.status_code, response.json()["error"]) == (403, "not_authorised")
    assert_untouched(rt, routed["request"])


def test_a_refusal_without_a_comment_is_400_and_changes_nothing(api, routed, rt):
    response = api.decide(routed["request"], "refuse", CORRESPONDENT, "   ")
    assert (response.status_code, response.json()["error"]) == (400, "comment_required")
    assert_untouched(rt, routed["request"])


def test_a_request_decided_already_is_409(api, routed, rt):
    assert api.decide(routed["request"], "accept", CORRESPONDENT).status_code == 200
    response = api.decide(routed["request"], "refuse", CORRESPONDENT, "Finalement non")
    assert (response.status_code, response.json()["error"]) == (409, "already_decided")
    assert request_row(rt, routed["request"])["status"] == "accepted"


def test_a_refusal_after_the_deadline_is_409_and_tacit_acceptance_stands(api, routed, rt, clock, daemon):
    clock.advance(days=10)
    response = api.decide(routed["request"], "refuse", CORRESPONDENT, "Trop tard", now=clock())
    assert (response.status_code, response.json()["error"]) == (409, "deadline_passed")
    daemon.run_job("tacit")
    response = api.decide(routed["request"], "refuse", CORRESPONDENT, "Trop tard")
    assert (response.status_code, response.json()["error"]) == (409, "already_tacitly_accepted")
    assert request_row(rt, routed["request"])["status"] == "accepted_tacitly"


def test_an_unknown_request_is_404(api, rt, routed):
    response = api.decide(987654, "accept", CORRESPONDENT)
    assert (response.status_code, response.json()["error"]) == (404, "not_found")


# --- authentication: each refused with 401, nothing changes -----------------------------------------

def body_of(decider=CORRESPONDENT, verdict="accept") -> bytes:
    return json.dumps({"verdict": verdict, "decider": decider}).encode()
@SQLITE_ONLY
def test_a_call_without_signature_is_401(client, routed, rt):
    response = client.post(decision_path(routed["request"]), content=body_of(),
                           headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["error"]) == (401, "missing_credentials")
    assert response.headers["WWW-Authenticate"] == "Syncd-HMAC"
    assert_untouched(rt, routed["request"])
@SQLITE_ONLY
def test_a_tampered_body_does_not_match_its_signature(api, client, routed, rt):
    path = decision_path(routed["request"])
    headers = api.headers("POST", path, body_of(decider=OTHER_CORRESPONDENT))
    response = client.post(path, content=body_of(), headers=headers | {"Content-Type": "application/json"})
    assert (response.status_code, response.json()["error"]) == (401, "bad_signature")
    assert_untouched(rt, routed["request"])
@SQLITE_ONLY
def test_a_signature_for_another_path_or_method_is_refused(api, client, routed, rt):
    path = decision_path(routed["request"])
    body = body_of()
    for headers in (api.headers("POST", decision_path(routed["request"] + 1), body),
                    api.headers("PUT", path, body),
                    api.headers("POST", path + "?x=1", body)):
        response = client.post(path, content=body, headers=headers | {"Content-Type": "application/json"})
        assert (response.status_code, response.json()["error"]) == (401, "bad_signature")
    assert_untouched(rt, routed["request"])
@SQLITE_ONLY
def test_a_wrong_secret_and_an_unknown_client_are_refused_alike(client, routed, rt, clock):
    for name, secret in (("portal", "x" * 40), ("intruder", "x" * 40)):
        intruder = SignedClient(client, clock, name=name, secret=secret)
        response = intruder.decide(routed["request"], "accept", CORRESPONDENT)
        assert (response.status_code, response.json()["error"]) == (401, "bad_signature")
    assert_untouched(rt, routed["request"])


@SQLITE_ONLY
@pytest.mark.parametrize("skew", [timedelta(seconds=-301), timedelta(seconds=301)])
def test_a_stale_or_future_timestamp_is_refused(api, routed, rt, clock, skew):
    response = api.decide(routed["request"], "accept", CORRESPONDENT, now=clock() + skew)
    assert (response.status_code, response.json()["error"]) == (401, "stale_timestamp")
    assert_untouched(rt, routed["request"])
    assert api.decide(routed["request"], "accept", CORRESPONDENT,
                      now=clock() - timedelta(seconds=299)).status_code == 200, "inside the window is fine"


def test_a_replayed_call_with_the_same_nonce_is_refused(api, client, routed, rt):
    path = decision_path(routed["request"])
    body = body_of(verdict="refuse")
    headers = api.headers("POST", path, body) | {"Content-Type": "application/json"}
    first = client.post(path, content=body, headers=headers)
    assert first.json()["error"] == "comment_required"      # signed right, refused for what it says
    replay = client.post(path, content=body, headers=headers)
    assert (replay.status_code, replay.json()["error"]) == (401, "replayed_nonce")
    assert events(rt, routed["request"]).count("decision_refused") == 1, "the replay never reached the decision"
@SQLITE_ONLY
def test_a_nonce_that_is_too_short_is_refused(api, routed, rt):
    response = api.decide(routed["request"], "accept", CORRESPONDENT, nonce="short")
    assert (response.status_code, response.json()["error"]) == (401, "bad_nonce")
    assert_untouched(rt, routed["request"])


# --- idempotency, limits, validation ------------------------------------------------------------------

def test_a_retry_with_the_same_idempotency_key_gets_the_first_answer_again(api, routed, rt):
    key = {"Idempotency-Key": "portal-decision-0001"}
    first = api.decide(routed["request"], "accept", CORRESPONDENT, headers=key)
    retry = api.decide(routed["request"], "accept", CORRESPONDENT, headers=key)   # signed anew: a new nonce
    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json() and retry.headers["Idempotent-Replayed"] == "true"
    assert events(rt, routed["request"]).count("decided") == 1
    assert "decision_refused" not in events(rt, routed["request"]), "the retry did not run again"
    other = api.decide(routed["request"], "refuse", CORRESPONDENT, "autre", headers=key)
    assert (other.status_code, other.json()["error"]) == (409, "idempotency_key_reused")
@SQLITE_ONLY
def test_a_refusal_is_replayed_too(api, routed):
    key = {"Idempotency-Key": "k-refused"}
    first = api.decide(routed["request"], "refuse", CORRESPONDENT, headers=key)
    again = api.decide(routed["request"], "refuse", CORRESPONDENT, headers=key)
    assert first.status_code == again.status_code == 400 and again.headers["Idempotent-Replayed"] == "true"
@SQLITE_ONLY
def test_a_body_over_16_kib_is_413(api, routed, rt):
    response = api.decide(routed["request"], "refuse", CORRESPONDENT, "x" * (17 * 1024))
    assert (response.status_code, response.json()["error"]) == (413, "body_too_large")
    assert_untouched(rt, routed["request"])
@SQLITE_ONLY
def test_a_field_that_is_not_valid_is_named_in_a_400(api, routed, rt):
    response = api.post(decision_path(routed["request"]), {"verdict": "maybe", "decider": CORRESPONDENT,
                                                          "extra": 1})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert {f["field"] for f in body["fields"]} == {"verdict", "extra"}
    response = api.post(decision_path(routed["request"]), body=b"{not json")
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    assert_untouched(rt, routed["request"])
@SQLITE_ONLY
def test_a_client_over_its_rate_is_told_to_wait(rt, routed):
    ticks = [1000.0]
    app = create_app(rt, clients=CLIENTS, rate_per_second=1, burst=2, monotonic=lambda: ticks[0])
    with TestClient(app) as client:
        api = SignedClient(client, rt.clock)
        target = f"/api/v1/requests/{routed['request']}"
        assert [api.get(target).status_code for _ in range(3)] == [200, 200, 429]
        limited = api.get(target)
        assert limited.json()["error"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
        ticks[0] += 1.0
        assert api.get(target).status_code == 200
@SQLITE_ONLY
def test_a_get_never_decides(api, client, routed, rt):
    path = decision_path(routed["request"])
    assert client.get(path).status_code == 405
    assert api.get(path + "?verdict=accept&decider=" + CORRESPONDENT).status_code == 405
    assert_untouched(rt, routed["request"])


# --- the nonce, written with the decision ----------------------------------------------------------------

def used_keys(rt) -> set[str]:
    from sqlalchemy import select

    from syncd.store.db import transaction
    from syncd.store.tables import used_tokens
    with transaction(rt.engine) as conn:
        return set(conn.execute(select(used_tokens.c.key)).scalars())


def test_a_decision_and_its_nonce_are_one_write_transaction(api, routed, rt):
    from sqlalchemy import event
    commits = []

    def committed(conn):
        commits.append(conn)

    path = decision_path(routed["request"])
    headers = api.headers("POST", path, body_of()) | {"Content-Type": "application/json"}
    event.listen(rt.engine, "commit", committed)
    try:
        response = api.client.post(path, content=body_of(), headers=headers)
    finally:
        event.remove(rt.engine, "commit", committed)
    assert response.status_code == 200, response.text
    assert len(commits) == 1
    assert f"nonce:portal:{headers['X-Syncd-Nonce']}" in used_keys(rt)


def test_a_replayed_decision_that_was_accepted_is_refused_as_a_replay_and_records_nothing(api, client, routed, rt):
    path = decision_path(routed["request"])
    headers = api.headers("POST", path, body_of()) | {"Content-Type": "application/json"}
    assert client.post(path, content=body_of(), headers=headers).status_code == 200
    replay = client.post(path, content=body_of(), headers=headers)
    assert (replay.status_code, replay.json()["error"]) == (401, "replayed_nonce")
    assert "decision_refused" not in events(rt, routed["request"]), "not an attempt at deciding again"


@SQLITE_ONLY
def test_a_call_that_never_reaches_the_decision_still_uses_its_nonce_up(api, client, routed, rt):
    path = decision_path(routed["request"])
    for body in (b"{not json", json.dumps({"verdict": "maybe", "decider": CORRESPONDENT}).encode()):
        headers = api.headers("POST", path, body) | {"Content-Type": "application/json"}
        assert client.post(path, content=body, headers=headers).status_code == 400
        replay = client.post(path, content=body, headers=headers)
        assert (replay.status_code, replay.json()["error"]) == (401, "replayed_nonce")
    assert_untouched(rt, routed["request"])


@SQLITE_ONLY
def test_a_decision_on_an_unknown_request_uses_its_nonce_up(api, client, routed, rt):
    path = decision_path(987654)
    headers = api.headers("POST", path, body_of()) | {"Content-Type": "application/json"}
    assert client.post(path, content=body_of(), headers=headers).status_code == 404
    replay = client.post(path, content=body_of(), headers=headers)
    assert (replay.status_code, replay.json()["error"]) == (401, "replayed_nonce")


@SQLITE_ONLY
def test_a_retry_with_an_idempotency_key_and_a_used_nonce_is_a_replay(api, client, routed, rt):
    path = decision_path(routed["request"])
    headers = api.headers("POST", path, body_of()) | {"Content-Type": "application/json",
                                                      "Idempotency-Key": "portal-decision-0002"}
    assert client.post(path, content=body_of(), headers=headers).status_code == 200
    replay = client.post(path, content=body_of(), headers=headers)
    assert (replay.status_code, replay.json()["error"]) == (401, "replayed_nonce")
    assert events(rt, routed["request"]).count("decided") == 1


# --- the lean path --------------------------------------------------------------------------------------

@pytest.fixture
def lean_taken(monkeypatch) -> list[bool]:
    """For each decision call, whether ``api.lean_decision`` answered it (False: left to FastAPI)."""
    from syncd.web import api as api_module
    lean, taken = api_module.lean_decision, []

    async def counted(request):
        response = await lean(request)
        taken.append(response is not None)
        return response

    monkeypatch.setattr(api_module.DecisionRoute, "lean", staticmethod(counted))
    return taken


@SQLITE_ONLY
def test_the_lean_path_answers_as_fastapi_does(api, routed, rt, daemon, monkeypatch, lean_taken):
    """The usual call is answered by ``api.lean_decision``; the same call through FastAPI's own
    parsing and answer validation gives the same status, headers and body shape."""
    from syncd.web import api as api_module
    other = habilitation(rt, "annuaire-redacteur")
    daemon.run_job("intake")
    leaned = api.decide(routed["request"], "refuse", CORRESPONDENT, "Hors périmètre")
    assert lean_taken == [True], "the usual call took the lean path"
    monkeypatch.setattr(api_module.DecisionRoute, "lean", None)
    framework = api.decide(other, "refuse", CORRESPONDENT, "Hors périmètre")
    assert leaned.status_code == framework.status_code == 200, (leaned.text, framework.text)
    assert leaned.headers["content-type"] == framework.headers["content-type"] == "application/json"
    one, two = leaned.json(), framework.json()
    assert list(one) == list(two) and one.pop("request_id") != two.pop("request_id")
    assert one.pop("decided_at")[-1] == two.pop("decided_at")[-1] == "Z"
    assert one == two


@SQLITE_ONLY
def test_the_usual_call_skips_fastapis_routing_and_keeps_its_answers(api, routed, rt, monkeypatch, lean_taken):
    """``app.DecisionLane`` hands the usual call to the route's handler past FastAPI's layers; the
    metrics still name its route, and an error the handler lets through gets the app's answer."""
    from syncd.errors import StoreRejected
    from syncd.web import api as api_module
    seen = []
    counted = api_module.DecisionRoute.lean

    async def watched(request):
        seen.append("fastapi_middleware_astack" in request.scope)   # set by FastAPI's own layers
        return await counted(request)

    monkeypatch.setattr(api_module.DecisionRoute, "lean", staticmethod(watched))
    assert api.decide(routed["request"], "accept", CORRESPONDENT).status_code == 200
    assert (lean_taken, seen) == ([True], [False])
    metrics = api.client.app.state.syncd.metrics
    assert metrics.http_requests.labels("POST", "/api/v1/requests/{request_id}/decision", "200")._value.get() == 1
    svc = api.client.app.state.syncd

    def refused(client):
        raise StoreRejected("refused")

    monkeypatch.setattr(svc.buckets, "take", refused)   # outside the handler's own catch
    other = habilitation(rt, "annuaire-redacteur")
    answers = [api.decide(other, "accept", CORRESPONDENT)]
    monkeypatch.setattr(api_module.DecisionRoute, "lean", None)   # FastAPI's way, for comparison
    answers.append(api.decide(other, "accept", CORRESPONDENT))
    assert [(a.status_code, a.json()) for a in answers] == [(400, answers[1].json())] * 2
    assert answers[0].json()["error"] == "invalid_request"


@SQLITE_ONLY
@pytest.mark.parametrize("headers, body", [
    ({"Content-Type": "application/merge-patch+json"}, None),    # JSON all the same, for FastAPI
    ({}, b'["accept"]'),                                          # not an object
    ({}, b'{"verdict": "accept", "decider": 5}'),                 # refused by the model
    ({}, b"[" * 5000 + b"]" * 5000),                              # nested deeper than json.loads goes
])
def test_calls_the_lean_path_does_not_take_are_answered_by_fastapi(api, routed, lean_taken, headers, body):
    body = body if body is not None else json.dumps({"verdict": "accept", "decider": CORRESPONDENT}).encode()
    response = api.call("POST", decision_path(routed["request"]), body=body, headers=headers)
    assert lean_taken == [False]
    if body.startswith(b"[["):
        assert response.status_code == 400, response.text
    elif body.startswith(b"["):
        assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    elif b"5}" in body:
        assert (response.status_code, [f["field"] for f in response.json()["fields"]]) == (400, ["decider"])
    else:
        assert response.status_code == 200, response.text     # FastAPI accepts it as it always did
