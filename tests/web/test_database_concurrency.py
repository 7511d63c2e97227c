"""The web process runs at most ``web.database_concurrency`` database calls at once, and never
more than ``database.pool_size``.

Calls beyond that wait their turn in the process: they neither open connections past the pool
(a new PostgreSQL backend each) nor fail. Connections are slowed down on purpose (each checkout
holds its connection 30 ms longer), so that calls overlap however fast the machine is.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event
from starlette.testclient import TestClient

from syncd.web import create_app
from tests.web.conftest import CLIENTS, SIGNING_KEY, SignedClient

pytestmark = pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                                     indirect=True)

CALLS = 12


class Usage:
    """How many connections the engine opened, and how many were checked out at most at once."""

    def __init__(self, engine):
        self.opened = self.out = self.most_out = 0
        self._lock = threading.Lock()
        event.listen(engine, "connect", self._connected)
        event.listen(engine, "checkout", self._taken)
        event.listen(engine, "checkin", self._returned)

    def _connected(self, *_):
        with self._lock:
            self.opened += 1

    def _taken(self, *_):
        with self._lock:
            self.out += 1
            self.most_out = max(self.most_out, self.out)
        time.sleep(0.03)

    def _returned(self, *_):
        with self._lock:
            self.out -= 1


@pytest.mark.parametrize(("pool_size", "concurrency", "at_once"), [
    pytest.param(5, 2, 2, id="the-concurrency-setting"),
    pytest.param(2, 3, 2, id="never-more-than-the-pool"),
])
def test_calls_beyond_the_limit_wait_their_turn_instead_of_opening_connections(make_runtime, routed, clock, db_url,
                                                                               pool_size, concurrency, at_once):
    rt = make_runtime(database={"url": db_url, "pool_size": pool_size},
                      web={"base_url": "https://habilitations.example.org", "signing_key": SIGNING_KEY,
                           "database_concurrency": concurrency})
    usage = Usage(rt.engine)
    app = create_app(rt, clients=CLIENTS, rate_per_second=None)
    with TestClient(app, base_url="https://habilitations.example.org") as client:
        api = SignedClient(client, clock)
        with ThreadPoolExecutor(CALLS) as pool:
            answers = list(pool.map(lambda _: api.get(f"/api/v1/requests/{routed['request']}").status_code,
                                    range(CALLS)))
    assert answers == [200] * CALLS
    assert usage.most_out == at_once     # they did overlap, up to the limit
    assert usage.opened == at_once


class BlackHole:
    """A TCP server that accepts connections and never answers: an LDAP server that hangs."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        self.server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                self.accepted.append(self.server.accept()[0])
            except OSError:
                continue

    def close(self):
        self._stop.set()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.server.close()


def test_readiness_probes_stuck_on_a_hanging_directory_do_not_hold_up_decisions(make_runtime, routed, clock, db_url):
    hole = BlackHole()
    rt = make_runtime(web={"base_url": "https://habilitations.example.org", "signing_key": SIGNING_KEY},
                      ldap={"urls": [f"ldap://127.0.0.1:{hole.port}"], "timeout_seconds": 3,
                            "bind_password": "unused"})
    app = create_app(rt, clients=CLIENTS, rate_per_second=None)
    try:
        with TestClient(app, base_url="https://habilitations.example.org") as client:
            api = SignedClient(client, clock)
            with ThreadPoolExecutor(8) as pool:
                probes = [pool.submit(client.get, "/readyz") for _ in range(5)]
                time.sleep(0.3)                    # the probes are waiting on the directory now
                started = time.monotonic()
                answer = api.get(f"/api/v1/requests/{routed['request']}")
                took = time.monotonic() - started
                assert [p.result().status_code for p in probes] == [503] * 5
        assert answer.status_code == 200
        assert took < 1.5, f"a read waited {took:.1f} s behind readiness probes"
    finally:
        hole.close()
