"""Two daemons on one PostgreSQL database, over many requests: each request is taken in, accepted
and applied exactly once, and each notification is sent exactly once.

The requests are written as the portal writes them, most with a submission date past the tacit
deadline (the daemons take them in, accept them tacitly, apply them and mail the requester with
nobody deciding), some close to it (a "D-3" reminder is due: both daemons' ``remind`` jobs see
it). Both daemons start together on the same backlog. 10,000 requests were asked for; the suite
runs ``SYNCD_FAULT_TWO_DAEMONS_N`` (default 600) to stay within CI's time, and the figures
of bigger runs are in docs/reliability.md.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from syncd.jobs.runtime import system_clock
from syncd.store.db import transaction
from syncd.store.tables import request_events, requests
from tests.faults.harness import given_up, wait_for

pytestmark = [pytest.mark.slapd, pytest.mark.postgres]

N = int(os.environ.get("SYNCD_FAULT_TWO_DAEMONS_N", "600"))


def test_two_daemons_apply_each_request_once_and_send_each_mail_once(make_world, slapd, postgres_url, rng,
                                                                    smtp_server):
    world = make_world(postgres_url, slapd, name="t", jobs={"batch_size": 100, "apply_batch_size": 100, "tacit_seconds": 1})
    world.seed(N // 3 + 1, rng)
    now = system_clock()
    late = N * 9 // 10
    for start in range(0, late, 500):                           # past the deadline: accepted tacitly
        ids = world.submit(habilitations=min(500, late - start), submitted_at=now - timedelta(days=11))
        world.expected.update({i: "accepted_tacitly" for i in ids})
    reminded = world.submit(habilitations=N - late, submitted_at=now - timedelta(days=8, hours=12))  # D-3 due
    started = time.monotonic()
    daemons = [world.spawn("exec"), world.spawn("exec")]
    wait_for(lambda: all(d.started() for d in daemons), 30, what="both daemons")
    # the reminded ones are decided by people once the reminders went out
    wait_for(lambda: world.counts().get("requests_new", 0) == 0, 60 + N / 5, 0.5, what="the intake")
    drained_in = world.drain(rng, timeout=120 + N / 5)
    took = time.monotonic() - started
    for d in daemons:
        assert d.terminate() == 0
        assert given_up(d) == []
    figures = world.verify()

    # exactly once: the history, the mail
    with transaction(world.rt.engine, readonly=True) as conn:
        events = Counter((r.request_id, r.event) for r in conn.execute(select(request_events.c.request_id,
                                                                               request_events.c.event)))
        reminders = Counter((r.request_id, (r.detail or {}).get("days_before")) for r in conn.execute(
            select(request_events.c.request_id, request_events.c.detail).where(request_events.c.event == "reminded")))
        total = conn.execute(select(func.count()).select_from(requests)).scalar()
    assert total == N
    for event in ("routed", "applied", "tacitly_accepted"):
        repeated = [k for k, n in events.items() if k[1] == event and n > 1]
        assert not repeated, f"{len(repeated)} requests have '{event}' more than once"
    sent = Counter(m["Message-ID"] for m in smtp_server.messages)
    assert max(sent.values()) == 1, "every mail sent exactly once"
    assert figures["mail_duplicates"] == 0
    per_daemon = [sum(1 for e in d.events() if e.get("event") == "request_routed") for d in daemons]
    applied = [sum(e.get("count", 0) for e in d.events() if e.get("event") == "requests_applied") for d in daemons]
    twice = sum(1 for n in reminders.values() if n > 1)
    print(f"\n{N} requests, two daemons: {took:.1f} s in all ({drained_in:.1f} s drain); taken in {per_daemon}, "
          f"applied {applied}; reminders recorded twice: {twice} of {len(reminders)}; {figures}")
    assert all(per_daemon) and all(applied), "both daemons did part of the work"
    assert twice == 0, "a D-n reminder is recorded once (fixed in 02099df)"
