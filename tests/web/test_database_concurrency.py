"""The web process runs at most ``web.database_concurrency`` database calls at once, and never
more than ``database.pool_size``.

Calls beyond that wait their turn in the process: they neither open connections past the pool
(a new PostgreSQL backend each) nor fail. Connections are slowed down on purpose (each checkout
holds its connection 30 ms longer), so that calls overlap however fast the machine is.
"""

from __future__ import annotations

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
