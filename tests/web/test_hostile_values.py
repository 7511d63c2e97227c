"""Every route, every field a client fills, every hostile value: never a 5xx.

The corpus is ``tests/web/hostile_values.py``. Each value goes, in turn, into each JSON field of
each API body (signed, so that it reaches the endpoint), each path and query parameter (signed and
not), each header a client sets, and each form field of the pages - with a genuine link and form
token, so that it reaches the decision and the password checks; raw bytes that are not UTF-8 go
where no decoding has happened yet. The routes walked are checked against the app's: a new route
that this test does not walk fails it.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from syncd.web import api as api_module
from syncd.web import decision_page, desk_page, desk_reviews, desk_rights, password_page
from syncd.mail import desk_links
from syncd.mail.links import decision_link
from tests.scenarios.helpers import CORRESPONDENT, REQUESTER, habilitation, request_row
from tests.web.conftest import SignedClient
from tests.web.hostile_values import ALL, RAW, TEXT, percent, utf8

pytestmark = [pytest.mark.slapd, pytest.mark.long(135)]

ROLE = "accords-locaux-acces"
DECISION = {"verdict": "refuse", "decider": CORRESPONDENT, "comment": "Poste sans lien"}
ACCOUNT = {"kind": "account", "email": "j.martin@assurance-maladie.fr", "civility": "Mme", "given_name": "Jeanne",
           "family_name": "Martin", "internal": True, "organisation_code": "CPAM-75", "terms_accepted": True,
           "terms_version": "2024-01", "portal_ref": "P-1", "submitted_at": "2026-11-02T09:30:00Z"}
HABILITATION = {"kind": "habilitation", "email": REQUESTER, "role_key": ROLE, "portal_ref": "P-2"}
PENDING_QUERY = {"sort": "deadline", "page": "1", "page_size": "20", "organisation": "CARSAT-RA", "role": ROLE,
                 "kind": "habilitation"}
CLIENT_HEADERS = ["X-Syncd-Client", "X-Syncd-Timestamp", "X-Syncd-Nonce", "X-Syncd-Signature", "Idempotency-Key",
                  "Accept-Language", "Content-Type", "Content-Length", "X-Forwarded-For", "Host"]
APP_ROUTES = {"/healthz", "/readyz", "/metrics", "/openapi.json"}


class Walk:
    """Sends the calls and keeps every answer of 500 or more (with what caused it)."""

    def __init__(self, client: TestClient, signed: SignedClient):
        self.client, self.signed = client, signed
        self.failures: list[str] = []
        self.calls = 0

    def done(self, routes: set[str], walked: set[str]) -> None:
        """Every route of the app was walked, and none answered a 5xx."""
        assert routes <= walked, f"routes not walked: {sorted(routes - walked)}"
        print(f"{self.calls} calls")
        assert not self.failures, f"{len(self.failures)} answers of 5xx:\n" + "\n".join(self.failures[:40])

    def _check(self, what: str, send) -> httpx.Response | None:
        self.calls += 1
        try:
            response = send()
        except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeError, ValueError):
            return None   # the client cannot even send it (e.g. CR LF in a header): no server sees it
        if response.status_code >= 500:
            self.failures.append(f"{response.status_code} {what}: {response.text[:200]!r}")
        return response

    def raw(self, what: str, method: str, target: str, *, body: bytes = b"", headers: dict | None = None):
        return self._check(what, lambda: self.client.request(method, target, content=body, headers=headers or {}))

    def sign(self, what: str, method: str, target: str, body: bytes = b"", headers: dict | None = None):
        def send():
            sent = {"Content-Type": "application/json"} if body else {}
            sent |= self.signed.headers(method, target, body) | (headers or {})
            return self.client.request(method, target, content=body, headers=sent)
        return self._check(what, send)


@pytest.fixture
def walk(app, clock):
    with TestClient(app, base_url="https://habilitations.example.org", raise_server_exceptions=False) as c:
        yield Walk(c, SignedClient(c, clock))


def reset_token(rt, account_id: str) -> str:
    """A fresh, usable « mot de passe oublié » token, stored as ``request_reset`` stores it (its mail
    is not what the walk is about)."""
    import secrets
    from datetime import timedelta

    from sqlalchemy import insert

    from syncd.jobs import passwords
    from syncd.store.db import transaction
    from syncd.store.tables import password_resets
    token, now = secrets.token_urlsafe(32), rt.clock()
    with transaction(rt.engine) as conn:
        conn.execute(insert(password_resets).values(account_id=account_id, token_hash=passwords.token_hash(token),
                                                    created_at=now, expires_at=now + timedelta(hours=1)))
    return token


def _json(values: dict) -> bytes:
    return json.dumps(values).encode()   # lone surrogates travel as \ud800 escapes, as JSON allows


def _form(values: dict[str, bytes], encode: bool = True) -> bytes:
    return b"&".join(k.encode() + b"=" + (percent(v).encode() if encode else v) for k, v in values.items())


FORM = {"Content-Type": "application/x-www-form-urlencoded"}
READS = {"/api/v1/requests/{request_id}": "/api/v1/requests/{}",
         "/api/v1/accounts/{account}/history": "/api/v1/accounts/{}/history",
         "/api/v1/accounts/{account}/rights": "/api/v1/accounts/{}/rights",
         "/api/v1/accounts/{account}/contacts": "/api/v1/accounts/{}/contacts",
         "/api/v1/deciders/{decider}/pending": "/api/v1/deciders/{}/pending"}


def _routes() -> set[str]:
    return {r.path for router in (api_module.router, decision_page.router, password_page.router, desk_page.router,
                                  desk_rights.router, desk_reviews.router)
            for r in router.routes} | APP_ROUTES


@pytest.mark.timeout(600)
def test_no_hostile_value_in_any_api_call_gets_a_5xx(walk, routed, rt, daemon):
    request_id = routed["request"]

    def pending_request() -> int:
        """A request the correspondent can decide: each accepted refusal uses one up."""
        nonlocal request_id
        if request_row(rt, request_id)["status"] != "pending":
            request_id = habilitation(rt)
            daemon.run_job("intake")
        return request_id

    for name, value in TEXT:                                    # each JSON field, signed
        for field in DECISION:
            walk.sign(f"decision {field}={name}", "POST", f"/api/v1/requests/{pending_request()}/decision",
                      _json(DECISION | {field: value}))
        for template in (ACCOUNT, HABILITATION):
            for field in template:
                walk.sign(f"submit {template['kind']} {field}={name}", "POST", "/api/v1/requests",
                          _json(template | {field: value, "portal_ref": f"{name}-{field}"[:100]}))
    for name, value in RAW:                                     # bytes that are not UTF-8, in a body
        walk.sign(f"decision raw body {name}", "POST", f"/api/v1/requests/{pending_request()}/decision", value)
        walk.sign(f"decision raw comment {name}", "POST", f"/api/v1/requests/{pending_request()}/decision",
                  b'{"verdict": "refuse", "decider": "' + CORRESPONDENT.encode() + b'", "comment": "' + value + b'"}')
    for name, value in ALL:                                     # paths, queries, headers
        for template in READS.values():
            walk.sign(f"GET {template} {name}", "GET", template.format(percent(value)))
        walk.sign(f"HEAD request {name}", "HEAD", f"/api/v1/requests/{percent(value)}")
        walk.raw(f"unsigned GET {name}", "GET", f"/api/v1/accounts/{percent(value)}/history")
        walk.sign(f"POST decision path {name}", "POST", f"/api/v1/requests/{percent(value)}/decision",
                  _json(DECISION | {"verdict": "accept", "decider": "nobody@example.org"}))
        for param in PENDING_QUERY:
            query = "&".join(f"{k}={percent(value) if k == param else v}" for k, v in PENDING_QUERY.items())
            walk.sign(f"pending ?{param}={name}", "GET", f"/api/v1/deciders/{CORRESPONDENT}/pending?{query}")
        for header in CLIENT_HEADERS:
            walk.sign(f"signed GET, header {header}={name}", "GET", "/api/v1/requests/1", headers={header: utf8(value)})
        for header in ("Idempotency-Key", "Content-Type", "Content-Length"):
            walk.sign(f"signed POST, header {header}={name}", "POST", "/api/v1/requests", _json(HABILITATION),
                      headers={header: utf8(value)})
    walk.done({r for r in _routes() if r.startswith("/api/")},
              set(READS) | {"/api/v1/requests/{request_id}/decision", "/api/v1/requests"})


@pytest.mark.timeout(600)
def test_no_hostile_value_in_any_page_or_other_route_gets_a_5xx(walk, routed, rt, daemon):
    request_id = routed["request"]

    def link() -> str:
        """A link the correspondent can decide with: each accepted refusal uses its request up."""
        nonlocal request_id
        if request_row(rt, request_id)["status"] != "pending":
            request_id = habilitation(rt)
            daemon.run_job("intake")
        return urlsplit(decision_link(rt, request_id, routed["correspondent"], rt.clock())).path

    def hidden(page: str, name: str) -> bytes:
        found = re.search(rf'name="{name}" value="([^"]+)"', page)
        return found.group(1).encode() if found else b""

    token = reset_token(rt, routed["requester"])
    walk.client.get(urlsplit(desk_links.desk_url(rt.settings, routed["correspondent"], rt.clock())).path)
    desk_csrf = hidden(walk.client.get("/desk").text, "csrf")    # bound to the session, which the walk keeps
    for name, value in ALL:
        for method in ("GET", "HEAD", "POST"):
            walk.raw(f"{method} /decide/{{token}} token={name}", method, f"/decide/{percent(value)}")
        walk.raw(f"GET /decisions/{{id}} {name}", "GET", f"/decisions/{percent(value)}")
        walk.raw(f"GET /decide query {name}", "GET", f"{link()}?verdict={percent(value)}")
        for field in ("verdict", "comment", "csrf"):           # a genuine link and form token, one field hostile
            for encode in (True, False):
                path = link()
                form = {"verdict": b"refuse", "comment": b"Poste sans lien",
                        "csrf": hidden(walk.client.get(path).text, "csrf")} | {field: utf8(value)}
                walk.raw(f"POST /decide/{{token}} {field}={name}", "POST", path, body=_form(form, encode), headers=FORM)
        walk.raw(f"GET /password/reset token={name}", "GET", f"/password/reset?token={percent(value)}")
        walk.raw(f"HEAD /password/reset token={name}", "HEAD", f"/password/reset?token={percent(value)}")
        for field in ("token", "csrf", "password", "confirmation"):
            walk.client.app.state.password_reset_limit = None   # the walk's failures are not a guesser's
            page = walk.client.get(f"/password/reset?token={token}")
            if page.status_code != 200:                         # a hostile password was good enough: used up
                token = reset_token(rt, routed["requester"])
                page = walk.client.get(f"/password/reset?token={token}")
            form = {"token": hidden(page.text, "token"), "csrf": hidden(page.text, "csrf"),
                    "password": b"un cheval sur la colline", "confirmation": b"un cheval sur la colline"}
            form[field] = utf8(value)
            if field == "password":
                form["confirmation"] = utf8(value)
            walk.raw(f"POST /password/reset {field}={name}", "POST", "/password/reset", body=_form(form), headers=FORM)
        for path in sorted(APP_ROUTES):
            walk.raw(f"GET {path}?{name}", "GET", f"{path}?x={percent(value)}")
            walk.raw(f"GET {path}, Accept-Language {name}", "GET", path, headers={"Accept-Language": utf8(value)})
        walk_desk(walk, routed, name, value, desk_csrf)
    walk.done({r for r in _routes() if not r.startswith("/api/")},
              {"/decide/{token}", "/decisions/{request_id}", "/password/reset", "/desk/open/{token}", "/desk",
               "/desk/decide", "/desk/rights", "/desk/withdraw", "/desk/logout", "/desk/reviews"} | APP_ROUTES)


def walk_desk(walk: Walk, routed, name: str, value, csrf: bytes) -> None:
    """The desk's routes: a hostile link token, cookie, query and form field, with a genuine session."""
    walk.raw(f"GET /desk/open/{{token}} token={name}", "GET", f"/desk/open/{percent(value)}")
    walk.raw(f"GET /desk cookie={name}", "GET", "/desk/rights", headers={"Cookie": b"syncd_desk=" + utf8(value)})
    walk.raw(f"GET /desk ?status={name}", "GET", f"/desk?status={percent(value)}&application={percent(value)}")
    walk.raw(f"GET /desk/rights ?application={name}", "GET", f"/desk/rights?application={percent(value)}")
    request_id = str(routed["request"]).encode()     # refused once, then reported as already decided
    for field in ("request", "verdict", "comment", "csrf", "application"):
        form = {"request": request_id, "verdict": b"refuse", "comment": b"Poste sans lien", "csrf": csrf,
                "application": b"", "status": b""} | {field: utf8(value)}
        walk.raw(f"POST /desk/decide {field}={name}", "POST", "/desk/decide", body=_form(form), headers=FORM)
    for field in ("right", "reason"):
        form = {"right": f"{routed['requester']}:{ROLE}".encode(), "reason": b"Fin de mission", "csrf": csrf,
                "application": b""} | {field: utf8(value)}
        walk.raw(f"POST /desk/withdraw {field}={name}", "POST", "/desk/withdraw", body=_form(form), headers=FORM)
    walk.raw(f"GET /desk/open/{{token}} ?tab={name}", "GET", f"/desk/open/x?tab={percent(value)}")
    walk.raw(f"GET /desk/reviews ?{name}", "GET", f"/desk/reviews?x={percent(value)}")
    for field in ("item", "action", "reason", "csrf"):
        form = {"item": b"1", "action": b"withdraw", "reason": b"Fin de mission", "csrf": csrf} | {field: utf8(value)}
        walk.raw(f"POST /desk/reviews {field}={name}", "POST", "/desk/reviews", body=_form(form), headers=FORM)
    walk.raw(f"POST /desk/logout csrf={name}", "POST", "/desk/logout", body=_form({"csrf": utf8(value)}), headers=FORM)
