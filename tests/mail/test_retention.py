"""Retention: mails sent or given up on lose their content after ``smtp.keep_content_days``.

What stays (recipient, template, dates, status, dedupe key) still shows that a mail went out and
still stops the same mail from being queued again; what goes (the context rendered into the mail,
the reason a send failed) is personal data the outbox no longer needs.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from syncd.jobs import retention
from syncd.jobs.runtime import Runtime
from syncd.mail.outbox import enqueue
from syncd.store.outbox import failed, retry_failed
from syncd.settings import Settings
from syncd.store.db import make_engine, transaction
from syncd.store.tables import outbox
from tests.factories import mappings
from tests.fixtures_runtime import Clock
from tests.mail.samples import SAMPLE_CONTEXTS

KEEP_DAYS = 30


@pytest.fixture
def rt(db_url):
    runtime = Runtime(Settings(database={"url": db_url}, smtp={"keep_content_days": KEEP_DAYS}), mappings(),
                      make_engine(db_url), clock=Clock(), worker_id="t")
    yield runtime
    runtime.close()


def _mail(rt, key: str, *, status: str, age_days: float) -> int:
    with transaction(rt.engine) as conn:
        mail_id = enqueue(conn, recipient="a.charenne@lassuranceretraite.fr", template="request_refused",
                          context=SAMPLE_CONTEXTS["request_refused"], now=rt.clock() - timedelta(days=age_days),
                          dedupe_key=key)
        conn.execute(update(outbox).where(outbox.c.id == mail_id).values(
            status=status, last_error="550 5.1.1 <a.charenne@lassuranceretraite.fr>: unknown" if status == "failed"
            else None, sent_at=rt.clock() if status == "sent" else None))
    return mail_id


def _rows(rt) -> dict[int, dict]:
    with transaction(rt.engine, readonly=True) as conn:
        return {r["id"]: dict(r) for r in conn.execute(select(outbox)).mappings()}


def test_old_sent_and_failed_mails_lose_their_content_and_nothing_else(rt):
    old_sent = _mail(rt, "old-sent", status="sent", age_days=KEEP_DAYS + 1)
    old_failed = _mail(rt, "old-failed", status="failed", age_days=KEEP_DAYS + 5)
    before = _rows(rt)

    assert retention.erase_old_mail_content(rt) == 2

    after = _rows(rt)
    for mail_id in (old_sent, old_failed):
        assert after[mail_id]["context"] == {} and after[mail_id]["last_error"] is None
        assert after[mail_id]["content_erased_at"] == rt.clock()
        kept = ("recipient", "template", "created_at", "sent_at", "status", "dedupe_key", "attempts")
        assert {k: after[mail_id][k] for k in kept} == {k: before[mail_id][k] for k in kept}


def test_recent_mails_and_mails_still_waiting_keep_their_content(rt):
    recent = _mail(rt, "recent", status="sent", age_days=KEEP_DAYS - 1)
    waiting = _mail(rt, "waiting", status="pending", age_days=KEEP_DAYS * 3)   # the relay has been down for long
    assert retention.erase_old_mail_content(rt) == 0
    rows = _rows(rt)
    assert rows[recent]["context"] == rows[waiting]["context"] != {}
    assert rows[recent]["content_erased_at"] is None and rows[waiting]["content_erased_at"] is None


def test_an_erased_mail_still_stops_the_same_mail_from_being_queued_again(rt):
    _mail(rt, "request:42:request_refused", status="sent", age_days=KEEP_DAYS + 1)
    retention.erase_old_mail_content(rt)
    with transaction(rt.engine) as conn:
        assert enqueue(conn, recipient="a.charenne@lassuranceretraite.fr", template="request_refused",
                       context=SAMPLE_CONTEXTS["request_refused"], now=rt.clock(),
                       dedupe_key="request:42:request_refused") is None
    assert len(_rows(rt)) == 1


def test_a_second_pass_finds_nothing_left_and_a_large_backlog_goes_in_several_transactions(rt, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 2)
    for i in range(5):
        _mail(rt, f"old-{i}", status="sent", age_days=KEEP_DAYS + 1)
    assert retention.erase_old_mail_content(rt) == 5
    assert retention.erase_old_mail_content(rt) == 0
    rt.clock.advance(days=1)   # erased rows are not erased again later either
    assert retention.erase_old_mail_content(rt) == 0


def test_a_failed_mail_whose_content_was_erased_cannot_be_sent_again(rt):
    erased = _mail(rt, "old-failed", status="failed", age_days=KEEP_DAYS + 1)
    recent = _mail(rt, "recent-failed", status="failed", age_days=1)
    retention.erase_old_mail_content(rt)
    with transaction(rt.engine) as conn:
        listed = {m["id"]: m["resendable"] for m in failed(conn)}
        again, left = retry_failed(conn, None, rt.clock())
    assert listed == {erased: False, recent: True}
    assert (again, left) == ([recent], [erased])
    assert _rows(rt)[erased]["status"] == "failed"
