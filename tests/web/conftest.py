"""The web hook wired to real servers: slapd, SQLite or PostgreSQL, an in-process SMTP server.

``rt`` is the shared runtime (``tests/fixtures_runtime.py``) with a signing key and a
``web_base_url`` a test may override; ``client`` is the app behind Starlette's in-process test
client, and ``api`` signs each call the way a registered client does.
"""

from __future__ import annotations

import json as jsonlib
import re
from datetime import datetime

import pytest
from starlette.testclient import TestClient

from syncd.web import create_app
from syncd.web.auth import signed_headers
from tests.fixtures_runtime import WEB_BASE_URL
from tests.scenarios.helpers import habilitation, people

SIGNING_KEY = "test-signing-key-" + "0123456789abcdef" * 2
CLIENT = "portal"
SECRET = "portal-secret-" + "fedcba9876543210" * 2
CLIENTS = {CLIENT: SECRET.encode()}
OTHER_CORRESPONDENT = "p.durand@assurance-maladie.fr"   # correspondent of CPAM-75, not of CARSAT-RA
# For tests whose outcome does not depend on the database engine (no SQL of their own is at stake).
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
LINK = re.compile(r"https?://[^\s]+/decide/[A-Za-z0-9_.\-]+")


@pytest.fixture
def web_base_url() -> str:
    return WEB_BASE_URL


@pytest.fixture
def rt(make_runtime, web_base_url):
    return make_runtime(web={"base_url": web_base_url, "signing_key": SIGNING_KEY})


@pytest.fixture
def app(rt):
    return create_app(rt, clients=CLIENTS, rate_per_second=None)


@pytest.fixture
def client(app):
    with TestClient(app, base_url="https://habilitations.example.org") as c:
        yield c


class SignedClient:
    """Calls the API as the registered client ``portal`` does: each call signed anew."""

    def __init__(self, client: TestClient, clock, name: str = CLIENT, secret: str = SECRET):
        self.client, self.clock, self.name, self.secret = client, clock, name, secret

    def headers(self, method: str, target: str, body: bytes = b"", *, now: datetime | None = None,
                nonce: str | None = None) -> dict[str, str]:
        return signed_headers(self.name, self.secret, method, target, body, now=now or self.clock(), nonce=nonce)

    def call(self, method: str, target: str, json=None, *, headers: dict[str, str] | None = None,
             now: datetime | None = None, nonce: str | None = None, body: bytes | None = None):
        if body is None:
            body = b"" if json is None else jsonlib.dumps(json).encode()
        sent = {"Content-Type": "application/json"} if body else {}
        sent |= self.headers(method, target, body, now=now, nonce=nonce)
        sent |= headers or {}
        return self.client.request(method, target, content=body, headers=sent)

    def get(self, target: str, **kwargs):
        return self.call("GET", target, **kwargs)

    def post(self, target: str, json=None, **kwargs):
        return self.call("POST", target, json, **kwargs)

    def decide(self, request_id: int, verdict: str, decider: str, comment: str | None = None, **kwargs):
        body = {"verdict": verdict, "decider": decider}
        if comment is not None:
            body["comment"] = comment
        return self.post(f"/api/v1/requests/{request_id}/decision", body, **kwargs)


@pytest.fixture
def api(client, clock) -> SignedClient:
    return SignedClient(client, clock)


@pytest.fixture
def routed(rt, daemon):
    """The scenarios' people, and a habilitation request routed to the CARSAT-RA correspondent."""
    from syncd import operator
    ids = people(rt)
    ids["other_correspondent"] = operator.add_account(rt, OTHER_CORRESPONDENT, "Paul", "Durand", "CPAM-75")
    operator.add_decider(rt, OTHER_CORRESPONDENT, "CPAM-75")
    request_id = habilitation(rt)
    daemon.run_job("intake")
    ids["request"] = request_id
    return ids


def links_in(message) -> list[str]:
    return LINK.findall(message.get_body(("plain",)).get_content())
