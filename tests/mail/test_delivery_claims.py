"""Delivery's batched claim: deliverers share the outbox without sending a mail twice or losing one.

``deliver_pending`` leases a batch with ``syncd.store.queue.claim_outbox`` (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), then counts each attempt and renews its lease just before sending.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from syncd.mail.delivery import DeliveryReport, deliver_pending
from syncd.mail.outbox import enqueue
from syncd.store.queue import claim_outbox
from syncd.store.tables import outbox

from .conftest import _postgres_engine
from .samples import SAMPLE_CONTEXTS


def _enqueue_many(engine, n: int, now: datetime) -> list[int]:
    with engine.begin() as conn:
        return [enqueue(conn, recipient=f"agent{i}@lassuranceretraite.fr", template="request_accepted",
                        context=SAMPLE_CONTEXTS["request_accepted"], now=now) for i in range(n)]


def _rows(engine) -> dict[int, dict]:
    with engine.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(select(outbox)).mappings()}


class Recording:
    """A sender that records what it was given (thread-safe), taking ``delay`` per mail."""

    def __init__(self, delay: float = 0.0, dies_on_first: bool = False):
        self.sent: list[int] = []
        self.delay = delay
        self.dies_on_first = dies_on_first
        self.lock = threading.Lock()

    def send(self, outbox_id, recipient, rendered):
        if self.dies_on_first:
            self.dies_on_first = False
            raise Died(outbox_id)
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.sent.append(outbox_id)


class Died(BaseException):
    """The process dying mid-send (not an ``Exception``: delivery must not catch it)."""


@pytest.mark.postgres
def test_two_deliverers_racing_on_postgresql_send_every_mail_exactly_once():
    engine, drop = _postgres_engine()
    try:
        start = datetime.now(timezone.utc)
        ids = _enqueue_many(engine, 400, start)
        senders = {"mailer-a": Recording(delay=0.001), "mailer-b": Recording(delay=0.001)}
        reports: dict[str, list[DeliveryReport]] = {w: [] for w in senders}
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(senders))

        def run(worker: str) -> None:
            try:
                barrier.wait()
                while True:
                    report = deliver_pending(engine, senders[worker], now=datetime.now(timezone.utc),
                                             worker_id=worker, limit=25, lease_seconds=60,
                                             clock=lambda: datetime.now(timezone.utc))
                    reports[worker].append(report)
                    if report == DeliveryReport():
                        return
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(w,)) for w in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        assert not any(t.is_alive() for t in threads)

        sent = Counter(i for s in senders.values() for i in s.sent)
        assert sorted(sent) == ids, "no mail lost"
        assert max(sent.values()) == 1, f"sent twice: {[i for i, n in sent.items() if n > 1][:10]}"
        rows = _rows(engine)
        assert all(r["status"] == "sent" and r["attempts"] == 1 and r["claimed_by"] is None for r in rows.values())
        # Disjoint batches (SKIP LOCKED): no claim was lost to the other deliverer, and both worked.
        assert all(r.deferred == 0 for rs in reports.values() for r in rs)
        assert all(len(s.sent) >= 50 for s in senders.values()), {w: len(s.sent) for w, s in senders.items()}
    finally:
        drop()


def test_a_mail_claimed_but_not_sent_is_sent_by_another_deliverer_once_the_lease_runs_out(mail_engine, now):
    ids = _enqueue_many(mail_engine, 3, now)
    lease = 300

    # The first deliverer claims the batch, starts the first mail and dies while sending it.
    with pytest.raises(Died):
        deliver_pending(mail_engine, Recording(dies_on_first=True), now=now, worker_id="dead", lease_seconds=lease)
    rows = _rows(mail_engine)
    assert rows[ids[0]]["claimed_by"] == "dead" and rows[ids[0]]["attempts"] == 1     # in flight: kept
    assert all(rows[i]["claimed_by"] is None and rows[i]["attempts"] == 0 for i in ids[1:])  # untried: released

    other = Recording()
    early = deliver_pending(mail_engine, other, now=now + timedelta(seconds=lease - 1), worker_id="other",
                            lease_seconds=lease)
    assert early == DeliveryReport(sent=2) and other.sent == ids[1:]

    late = deliver_pending(mail_engine, other, now=now + timedelta(seconds=lease), worker_id="other",
                           lease_seconds=lease)
    assert late == DeliveryReport(sent=1) and other.sent == [*ids[1:], ids[0]]
    rows = _rows(mail_engine)
    assert rows[ids[0]]["status"] == "sent" and rows[ids[0]]["attempts"] == 2


def test_a_batch_claimed_by_a_killed_deliverer_comes_back_whole_when_its_lease_runs_out(mail_engine, now):
    """kill -9 right after the batch claim: nothing is released, the lease gives it all back."""
    ids = _enqueue_many(mail_engine, 5, now)
    assert claim_outbox(mail_engine, worker_id="killed", now=now, lease_seconds=60, limit=10) == ids

    other = Recording()
    assert deliver_pending(mail_engine, other, now=now + timedelta(seconds=59), worker_id="other") == DeliveryReport()
    assert deliver_pending(mail_engine, other, now=now + timedelta(seconds=60), worker_id="other") == \
        DeliveryReport(sent=5)
    assert other.sent == ids


def test_a_mail_whose_batch_lease_ran_out_and_was_taken_over_is_left_to_the_new_holder(mail_engine, now):
    """A slow batch: its lease runs out before the last mail, and another deliverer re-claims it."""
    ids = _enqueue_many(mail_engine, 2, now)
    clock = iter([now + timedelta(seconds=5), now + timedelta(seconds=61)])
    taken_over: list[int] = []

    class Slow(Recording):
        def send(self, outbox_id, recipient, rendered):
            super().send(outbox_id, recipient, rendered)
            if not taken_over:   # meanwhile, the batch's lease ran out and "other" claimed what was left
                taken_over.extend(claim_outbox(mail_engine, worker_id="other", now=now + timedelta(seconds=60),
                                               lease_seconds=60, limit=10))

    slow = Slow()
    report = deliver_pending(mail_engine, slow, now=now, worker_id="slow", lease_seconds=60,
                             clock=lambda: next(clock))
    assert taken_over == ids[1:]
    assert report == DeliveryReport(sent=1, deferred=1) and slow.sent == ids[:1]
    row = _rows(mail_engine)[ids[1]]
    assert row["claimed_by"] == "other" and row["attempts"] == 0 and row["status"] == "pending"


def test_each_attempt_renews_its_lease_from_the_clock(mail_engine, now):
    ids = _enqueue_many(mail_engine, 2, now)
    moments = iter([now + timedelta(seconds=10), now + timedelta(seconds=50)])
    seen = {}

    class Peeking(Recording):
        def send(self, outbox_id, recipient, rendered):
            seen[outbox_id] = _rows(mail_engine)[outbox_id]["claimed_until"]
            super().send(outbox_id, recipient, rendered)

    deliver_pending(mail_engine, Peeking(), now=now, worker_id="w", lease_seconds=30, clock=lambda: next(moments))

    naive = [seen[i].replace(tzinfo=None) for i in ids]
    assert naive == [(now + timedelta(seconds=40)).replace(tzinfo=None), (now + timedelta(seconds=80)).replace(tzinfo=None)]
    assert [_rows(mail_engine)[i]["sent_at"].replace(tzinfo=None) for i in ids] == \
        [(now + timedelta(seconds=10)).replace(tzinfo=None), (now + timedelta(seconds=50)).replace(tzinfo=None)]
