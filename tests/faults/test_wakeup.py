"""Wake-up hints: a decision taken elsewhere reaches LDAP at once, even when the daemon polls
rarely (PostgreSQL: LISTEN/NOTIFY; SQLite: a datagram socket beside the database file)."""

from __future__ import annotations

import time

import pytest

from syncd.core.model import Verdict
from syncd.jobs.decisions import decide_request
from syncd.store import repo
from syncd.store.db import transaction
from tests.faults.harness import given_up, wait_for

pytestmark = [pytest.mark.slapd]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db_url(request):
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_engine").url)
    return request.getfixturevalue("postgres_url")


def test_a_decision_wakes_a_daemon_that_polls_every_30_seconds(make_world, slapd, any_db_url, rng):
    world = make_world(any_db_url, slapd, name="w",
                       jobs={"wake_poll_seconds": 30, "apply_seconds": 60, "intake_seconds": 60,
                             "outbox_seconds": 60, "tacit_seconds": 60})
    world.seed(3, rng)
    [request_id] = world.submit(habilitations=1)
    daemon = world.spawn("exec")
    wait_for(daemon.started, 30, what="the daemon")
    wait_for(lambda: world.counts().get("requests_pending"), 20, what="the intake of its first pass")
    time.sleep(1.0)          # the first pass is over: the loop now sleeps until the next poll
    with transaction(world.rt.engine) as conn:
        decider = repo.routed_to(conn, request_id)[0]
    decided_at = time.monotonic()
    decide_request(world.rt, request_id, decider, Verdict.ACCEPT, channel="web")

    def applied() -> bool:
        with transaction(world.rt.engine) as conn:
            return repo.get_request(conn, request_id).applied_at is not None

    wait_for(applied, 5, 0.05, "the decision to reach LDAP")
    took = time.monotonic() - decided_at
    assert daemon.terminate() == 0 and given_up(daemon) == []
    print(f"\ndecision to LDAP in {took:.2f} s with a 30 s poll")
    assert took < 3
