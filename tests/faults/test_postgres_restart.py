"""PostgreSQL goes away under load, two ways.

* ``crash``: not the machine's PostgreSQL (other tests share it) but a throwaway cluster of this
  test's own (``initdb``/``pg_ctl``, ``private_postgres.py``), stopped with ``-m immediate`` (a
  crash: every session cut, no checkpoint, WAL replayed at start) for 5 s, then started again.
  Skipped, with the reason, where the PostgreSQL binaries are not installed (a CI service
  container, say): then only the second way runs.
* ``terminate``: on the shared test server, every session of the test's database is terminated
  (``pg_terminate_backend``) again and again for 5 s: connections die mid-query and new ones
  die as soon as they are seen (what a pooler restart or a fail-over looks like to clients).

Meanwhile the portal and the deciders (the test) keep writing, and fail too. The daemon must
neither die nor give anything up; afterwards the backlog drains and ``World.verify`` holds.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from syncd.errors import StoreUnavailable
from syncd.store.migrate import upgrade
from tests.faults.harness import given_up, load_during, start_with_work, wait_for
from tests.faults.private_postgres import PrivatePostgres, PrivatePostgresUnavailable

pytestmark = [pytest.mark.slapd, pytest.mark.postgres]

DOWN_SECONDS = 5


class Crash:
    def __init__(self):
        try:
            self.pg = PrivatePostgres()
        except PrivatePostgresUnavailable as exc:
            pytest.skip(f"cannot run a private PostgreSQL cluster ({exc}); the 'terminate' variant runs instead")
        upgrade(self.pg.url)
        self.url = self.pg.url

    def down(self) -> None:
        self.pg.stop("immediate")

    def up(self) -> None:
        self.pg.start()

    def close(self) -> None:
        self.pg.destroy()


class Terminate:
    """Kill every session of the test database but our own, every 20 ms, until ``up()``."""

    def __init__(self, url: str):
        self.url = url
        self.killer = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.killed = 0

    def _loop(self) -> None:
        with self.killer.connect() as conn:
            while not self.stop.is_set():
                self.killed += conn.execute(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
                time.sleep(0.02)

    def down(self) -> None:
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def up(self) -> None:
        self.stop.set()
        self.thread.join(10)

    def close(self) -> None:
        self.killer.dispose()


@pytest.fixture(params=["crash", "terminate"])
def outage(request):
    if request.param == "crash":
        fault = Crash()
    else:
        fault = Terminate(request.getfixturevalue("postgres_url"))
    yield fault
    fault.close()


def test_postgresql_going_away_under_load_loses_nothing(make_world, slapd, outage, rng):
    world = make_world(outage.url, slapd, name="p", lease_seconds=5,
                       log_level=os.environ.get("SYNCD_FAULT_LOG_LEVEL", "info"))
    daemon = start_with_work(world, rng)
    wait_for(lambda: world.counts()["unapplied"] < 20, 20, what="apply to begin")
    outage.down()
    down_at = time.monotonic()
    load_during(world, rng, DOWN_SECONDS, tolerate=(StoreUnavailable,))
    assert daemon.alive(), "a database outage never kills the daemon"
    outage.up()
    back_at = time.monotonic()
    written = load_during(world, rng, 2)
    # What the daemon had claimed when the server went waits for its lease (5 s here,
    # database.lease_seconds; mails too since 02099df, see test_regressions.py).
    claimed = world.claimed()
    drained_in = world.drain(rng, timeout=60)
    assert daemon.terminate() == 0
    assert given_up(daemon) == []
    backoffs = [e for e in daemon.events() if e.get("event") == "job_backing_off"]
    assert backoffs and all("Store" in e["error"] for e in backoffs)
    figures = world.verify()
    killed = f", {outage.killed} sessions terminated" if isinstance(outage, Terminate) else ""
    print(f"\nPostgreSQL {type(outage).__name__.lower()}: down {back_at - down_at:.1f} s{killed}; "
          f"{len(backoffs)} job back-offs; {written} requests written after; claimed when it came back: "
          f"{claimed}; drained {drained_in:.1f} s after its return; {figures}")
