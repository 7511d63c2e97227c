"""Two daemons on one PostgreSQL database, over many requests: each request is taken in, accepted
and applied exactly once, and each notification is sent exactly once.

The requests are written as the portal writes them, most with a submission date past the tacit
deadline (the daemons take them in, accept them tacitly, apply them and mail the requester with
nobody deciding), some close to it (a "D-3" reminder is due: both daemons' ``remind`` jobs see
it). Both daemons start together on the same backlog.

10,000 requests were asked for; they do not fit CI's budget, so the suite runs
``SYNCD_FAULT_TWO_DAEMONS_N``, 5,000 by default: 104-124 s of pytest over three runs on a 2-core
machine shared with other test runs (2026-11-27; 6,000 took 147 s), the most that fits in about
2 minutes. The 10,000 run is a manual one::

    SYNCD_FAULT_TWO_DAEMONS_N=10000 .venv/bin/pytest tests/faults/test_two_daemons.py -s

measured on the same machine (2026-11-27): **pass**, 247 s of pytest (476 s while the machine
was busier), 223 s from the daemons' start to the last mail; 10,000 routed by 133 s (the intake,
one transaction per request, shares its thread with mail delivery), 9,852 memberships applied
by 140 s, 20,647 mails by 223 s (10,400 / 10,247 per daemon, no claim lost), 647 D-3 reminders,
each recorded once. The same run with the former one-by-one mail claim, just before: 324 s of
pytest, mail done at 298 s, 16,898 mail claims lost to the other daemon.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from syncd.runtime import system_clock
from syncd.store.db import transaction
from syncd.store.tables import request_events, requests
from tests.faults.harness import given_up, wait_for

pytestmark = [pytest.mark.slapd, pytest.mark.postgres, pytest.mark.long(190)]

N = int(os.environ.get("SYNCD_FAULT_TWO_DAEMONS_N", "5000"))
# A guard against a hang, not a target: measured 104-124 s for 5,000, 247-476 s for 10,000 (2 cores).
TIMEOUT = max(120, int(60 + N * 0.12))


@pytest.mark.timeout(TIMEOUT)
def test_two_daemons_apply_each_request_once_and_send_each_mail_once(make_world, slapd, postgres_url, rng,
                                                                    smtp_server):
    # No minimum decision window (policy.decision_window_business_days: 0): the backlog past its
    # deadline is what two daemons must accept tacitly exactly once, within the test's minutes.
    world = make_world(postgres_url, slapd, name="t", jobs={"batch_size": 100, "apply_batch_size": 100, "tacit_seconds": 1},
                       policy={"decision_window_business_days": 0})
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
    wait_for(lambda: world.counts().get("requests_new", 0) == 0, 60 + N / 5, 0.5, what="the intake")
    # the reminded ones are decided by people once the reminders went out (those still pending:
    # a role with a 5-day delay is past its deadline already, and accepted tacitly)
    wait_for(lambda: _reminders_out(world, reminded), 60 + N / 50, 0.5, what="the D-3 reminders")
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
    logs = [d.events() for d in daemons]
    per_daemon = [sum(1 for e in log if e.get("event") == "request_routed") for log in logs]
    applied = [sum(e.get("count", 0) for e in log if e.get("event") == "requests_applied") for log in logs]
    mailed = [sum(1 for e in log if e.get("event") == "mail_sent") for log in logs]
    claims_lost = sum(1 for log in logs for e in log if e.get("event") == "mail_claimed_elsewhere")
    twice = sum(1 for n in reminders.values() if n > 1)
    print(f"\n{N} requests, two daemons: {took:.1f} s in all ({drained_in:.1f} s drain); taken in {per_daemon}, "
          f"applied {applied}, mailed {mailed} ({claims_lost} mail claims lost to the other); "
          f"reminders recorded twice: {twice} of {len(reminders)}; {figures}")
    assert all(per_daemon) and all(applied) and all(mailed), "both daemons did part of the work"
    # Batched claims (FOR UPDATE SKIP LOCKED): the daemons take disjoint batches of mail; a claim is
    # lost only when a batch outlives its lease (the one-by-one claim lost about half of them).
    assert claims_lost <= figures["mails"] // 100, f"{claims_lost} mail claims lost to the other daemon"
    assert reminders, "D-3 reminders went out"
    assert twice == 0, "a D-n reminder is recorded once (fixed in 02099df)"


def _reminders_out(world, reminded: list[int]) -> bool:
    """Every one of ``reminded`` still pending has its reminder recorded."""
    with transaction(world.rt.engine, readonly=True) as conn:
        pending = set(conn.execute(select(requests.c.id).where(
            requests.c.id.in_(reminded), requests.c.status == "pending")).scalars())
        done = set(conn.execute(select(request_events.c.request_id).where(
            request_events.c.request_id.in_(reminded), request_events.c.event == "reminded")).scalars())
    return pending <= done
