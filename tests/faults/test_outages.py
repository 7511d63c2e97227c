"""Servers going away under load: the directory (stopped, then frozen) and the mail server.

The daemon (``syncd run``, exec'd) keeps working while the test writes requests and decides
them; the server goes away; nothing may be given up for good, the daemon may not die or hang,
and once the server is back the backlog drains and ``World.verify`` holds.

Shortened for the suite's time budget: slapd is stopped for 10 s (not 30 s), and the daemon
runs with ``jobs.max_backoff_seconds: 4`` (the default is 300 s: in production the backlog
drains within 5 minutes of the directory's return, not seconds).
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from syncd.jobs.runtime import system_clock
from syncd.store.db import transaction
from syncd.store.tables import outbox, requests
from tests.faults.harness import given_up, load_during, start_with_work, wait_for

pytestmark = pytest.mark.slapd

OUTAGE_SECONDS = float(os.environ.get("SYNCD_FAULT_OUTAGE_SECONDS", "10"))


def test_slapd_stopped_under_load_nothing_fails_for_good_and_the_backlog_drains(make_world, own_slapd, sqlite_engine,
                                                                                rng):
    world = make_world(str(sqlite_engine.url), own_slapd, name="o")
    daemon = start_with_work(world, rng)
    own_slapd.stop()
    down_at = time.monotonic()
    written = load_during(world, rng, OUTAGE_SECONDS)
    assert daemon.alive()
    with transaction(world.rt.engine) as conn:
        waiting = conn.execute(select(requests.c.last_error).where(
            requests.c.status == "accepted", requests.c.applied_at.is_(None))).scalars().all()
    assert waiting and any(e and "unreachable" in e for e in waiting), "apply tried and is waiting"
    own_slapd.start()
    back_at = time.monotonic()
    drained_in = world.drain(rng, timeout=60)
    assert daemon.terminate() == 0
    assert given_up(daemon) == []
    backoffs = [e for e in daemon.events() if e.get("event") == "job_backing_off"]
    figures = world.verify()
    print(f"\nslapd down {back_at - down_at:.1f} s, {written} requests written meanwhile, "
          f"{len(backoffs)} job back-offs; drained {drained_in:.1f} s after its return; {figures}")


def test_slapd_frozen_under_load_the_daemon_times_out_instead_of_hanging(make_world, own_slapd, sqlite_engine, rng):
    """SIGSTOP: the server accepts connections (the kernel does) but never answers."""
    world = make_world(str(sqlite_engine.url), own_slapd, name="z")
    daemon = start_with_work(world, rng)
    pid = own_slapd._proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        written = load_during(world, rng, OUTAGE_SECONDS)
        assert daemon.alive()
        # Measured, not asserted: the daemon runs its jobs one after the other in one thread, so
        # a job waiting on the frozen server (up to 2 x ldap.timeout_seconds: the operation, then
        # one reconnect) holds intake and mail back meanwhile; they are delayed, not lost.
        sent_while_frozen = world.counts().get("mail_sent", 0)
    finally:
        os.kill(pid, signal.SIGCONT)
    drained_in = world.drain(rng, timeout=60)
    assert daemon.terminate() == 0
    assert given_up(daemon) == []
    figures = world.verify()
    print(f"\nslapd frozen {OUTAGE_SECONDS:.0f} s, {written} requests written meanwhile, {sent_while_frozen} mails "
          f"sent by then; drained {drained_in:.1f} s after; {figures}")


def test_smtp_down_the_outbox_keeps_the_mail_and_delivers_it_later(make_world, slapd, sqlite_engine, rng,
                                                                   smtp_server):
    world = make_world(str(sqlite_engine.url), slapd, name="m")
    smtp_server.stop()
    daemon = start_with_work(world, rng)
    load_during(world, rng, 5)
    wait_for(lambda: world.counts().get("mail_pending", 0) and not world.counts()["unapplied"], 30,
             what="everything but the mail to be done")
    now = system_clock()
    with transaction(world.rt.engine) as conn:
        mails = [dict(r) for r in conn.execute(select(outbox)).mappings()]
    assert mails and all(m["status"] == "pending" for m in mails), "kept, none given up"
    tried = [m for m in mails if m["attempts"]]
    assert tried, "delivery was tried"
    settled = [m for m in tried if m["last_error"] is not None]      # (not the one in flight, if any)
    assert len(settled) >= len(tried) - 1
    assert all("connect" in m["last_error"] for m in settled), {m["last_error"] for m in settled}
    # first retry 30-60 s later (60 s base, halved at worst by jitter)
    assert all(m["next_attempt_at"] is None or
               timedelta(seconds=20) < _utc(m["next_attempt_at"]) - now < timedelta(seconds=61) for m in tried)
    assert max(m["attempts"] for m in mails) <= 2
    paused = [e for e in daemon.events() if e.get("event") == "mail_delivery_paused"]
    assert paused, "a run stops early instead of spending every mail's attempts"

    smtp_server.start()
    retried_now = world.retry_mail_now()     # instead of waiting the 30-60 s back-off
    drained_in = world.drain(rng, timeout=60)
    assert daemon.terminate() == 0
    figures = world.verify()
    assert figures["mail_duplicates"] == 0
    print(f"\nSMTP down: {len(mails)} mails kept ({len(tried)} tried, {len(paused)} paused runs); "
          f"{retried_now} made due; drained {drained_in:.1f} s after the server came back; {figures}")


def _utc(moment):
    from datetime import timezone
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
