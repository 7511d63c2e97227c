"""The web hook wired to real servers: slapd, SQLite or PostgreSQL, an in-process SMTP server.

``rt`` is the shared runtime (``tests/fixtures_runtime.py``) with a signing key and a
``web_base_url`` a test may override; ``client`` is the app behind Starlette's in-process test
client, and ``api`` signs each call the way a registered client does.
"""

from __future__ import annotations

import json as jsonlib
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx

import pytest
from starlette.testclient import TestClient

from syncd.web import create_app
from syncd.store.migrate import upgrade
from syncd.web.auth import signed_headers
from tests.fixtures_runtime import WEB_BASE_URL
from tests.fixtures_smtp import free_port
from tests.scenarios.helpers import habilitation, people

SIGNING_KEY = "test-signing-key-" + "0123456789abcdef" * 2
CLIENT = "portal"
SECRET = "portal-secret-" + "fedcba9876543210" * 2
CLIENTS = {CLIENT: SECRET.encode()}
OTHER_CORRESPONDENT = "p.durand@assurance-maladie.fr"   # correspondent of CPAM-75, not of CARSAT-RA
# For tests whose outcome does not depend on the database engine (no SQL of their own is at stake).
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
LINK = re.compile(r"https?://[^\s]+/decide/[A-Za-z0-9_.\-]+")
REPO = Path(__file__).resolve().parents[2]


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


@contextmanager
def syncd_web_process(tmp_path, secret: str = SECRET):
    """``syncd web`` as an operator starts it (a real uvicorn process, SQLite, the API client
    ``portal`` from a file): yields ``(base_url, process)`` once ``/healthz`` answers, then stops
    it with SIGTERM."""
    url = f"sqlite:///{tmp_path / 'syncd.db'}"
    upgrade(url)
    config = tmp_path / "syncd.yaml"
    config.write_text(f"mappings: {REPO / 'mappings'}\ndatabase:\n  url: {url}\n"
                      f"web:\n  base_url: http://127.0.0.1\nlog:\n  format: json\n", encoding="utf-8")
    (tmp_path / "clients.json").write_text(jsonlib.dumps({CLIENT: secret}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env |= {"SYNCD_CONFIG": str(config), "SYNCD_WEB__CLIENTS_FILE": str(tmp_path / "clients.json"),
            "SYNCD_WEB__SIGNING_KEY": "k" * 40}
    for attempt in range(3):   # another process on the machine may take the free port first
        port = free_port()
        log = tmp_path / f"web-{attempt}.log"   # a file, not a pipe: nobody reads a pipe while it serves
        with log.open("w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "syncd", "web", "--port", str(port)], env=env,
                                    stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        if proc.poll() is None and time.monotonic() < deadline:
            break
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        output = log.read_text()
        if attempt == 2 or "address already in use" not in output:
            pytest.fail(f"syncd web did not start:\n{output}")
    try:
        yield base, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
