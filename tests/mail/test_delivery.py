from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from syncd.errors import MailUnavailable
from syncd.mail.delivery import DeliveryReport, deliver_pending, exponential_backoff
from syncd.mail.outbox import enqueue
from syncd.store.outbox import pending_count
from syncd.mail.smtp import SmtpSender
from syncd.store.tables import outbox

from .samples import SAMPLE_CONTEXTS

RECIPIENT = "a.charenne@lassuranceretraite.fr"


def _enqueue(engine, now, template="request_accepted", recipient=RECIPIENT, **kwargs):
    with engine.begin() as conn:
        return enqueue(conn, recipient=recipient, template=template, context=SAMPLE_CONTEXTS[template],
                       now=now, **kwargs)


def _row(engine, outbox_id):
    with engine.connect() as conn:
        return conn.execute(select(outbox).where(outbox.c.id == outbox_id)).one()


def _deliver(engine, server_or_settings, now, **kwargs):
    settings = server_or_settings.settings() if hasattr(server_or_settings, "settings") else server_or_settings
    kwargs.setdefault("backoff", lambda attempts: 60 * attempts)
    return deliver_pending(engine, SmtpSender(settings), now=now, worker_id="test-worker", **kwargs)


def test_a_mail_enqueued_is_delivered_to_the_smtp_server_with_the_french_subject_and_body(
    mail_engine, smtp_server, now
):
    outbox_id = _enqueue(mail_engine, now, request_id=None)

    report = _deliver(mail_engine, smtp_server, now)

    assert report == DeliveryReport(sent=1)
    [received] = smtp_server.messages
    assert received["Subject"] == (
        "Votre demande d'habilitation « Egap - Guides d'administration du personnel » a été acceptée"
    )
    body = received.get_body(("plain",)).get_content()
    assert "Bonjour Aristide Charenne," in body
    assert "formulée le 02/03/2026 13:33, a été acceptée le 05/03/2026 09:15." in body
    assert received["X-Syncd-Outbox-Id"] == str(outbox_id)
    row = _row(mail_engine, outbox_id)
    assert row.status == "sent" and row.attempts == 1 and row.last_error is None
    assert row.sent_at.replace(tzinfo=None) == now.replace(tzinfo=None)
    with mail_engine.connect() as conn:
        assert pending_count(conn) == 0


def test_the_same_dedupe_key_enqueued_twice_sends_one_mail(mail_engine, smtp_server, now):
    _enqueue(mail_engine, now, dedupe_key="request:1:accepted")
    _enqueue(mail_engine, now + timedelta(minutes=1), dedupe_key="request:1:accepted")

    first = _deliver(mail_engine, smtp_server, now + timedelta(minutes=2))
    second = _deliver(mail_engine, smtp_server, now + timedelta(minutes=3))

    assert first.sent == 1 and second == DeliveryReport()
    assert len(smtp_server.messages) == 1


def test_smtp_down_keeps_the_mail_pending_with_a_retry_time_and_it_goes_when_the_server_is_back(
    mail_engine, smtp_server, now
):
    outbox_id = _enqueue(mail_engine, now)
    smtp_server.stop()  # the port is closed now

    down = _deliver(mail_engine, smtp_server, now)

    assert down == DeliveryReport(retried=1)
    row = _row(mail_engine, outbox_id)
    assert row.status == "pending" and row.attempts == 1
    assert row.next_attempt_at.replace(tzinfo=None) == (now + timedelta(seconds=60)).replace(tzinfo=None)
    assert "connect" in row.last_error

    smtp_server.start()
    too_early = _deliver(mail_engine, smtp_server, now + timedelta(seconds=59))
    back = _deliver(mail_engine, smtp_server, now + timedelta(seconds=60))

    assert too_early == DeliveryReport() and back == DeliveryReport(sent=1)
    assert [m["X-Syncd-Outbox-Id"] for m in smtp_server.messages] == [str(outbox_id)]
    row = _row(mail_engine, outbox_id)
    assert row.status == "sent" and row.attempts == 2 and row.last_error is None and row.next_attempt_at is None


def test_a_550_marks_the_mail_failed_with_the_reason_and_the_others_still_go(mail_engine, smtp_server, now):
    smtp_server.refuse_recipient("gone@example.org", "550 5.1.1 No such user here")
    first = _enqueue(mail_engine, now, recipient="first@example.org")
    bad = _enqueue(mail_engine, now, recipient="gone@example.org")
    last = _enqueue(mail_engine, now, recipient="last@example.org")

    report = _deliver(mail_engine, smtp_server, now)

    assert report == DeliveryReport(sent=2, failed=1)
    assert sorted(e.rcpt_tos[0] for e in smtp_server.envelopes) == ["first@example.org", "last@example.org"]
    row = _row(mail_engine, bad)
    assert row.status == "failed" and row.attempts == 1
    assert "550 5.1.1 No such user here" in row.last_error
    assert {_row(mail_engine, i).status for i in (first, last)} == {"sent"}
    assert _deliver(mail_engine, smtp_server, now + timedelta(days=1)) == DeliveryReport()  # never retried


def test_a_451_is_retried_with_backoff_and_fails_after_max_attempts(mail_engine, smtp_server, now):
    smtp_server.refuse_all_recipients("451 4.3.0 Try again later")
    outbox_id = _enqueue(mail_engine, now)

    moment = now
    reports = []
    for _ in range(3):
        reports.append(_deliver(mail_engine, smtp_server, moment, max_attempts=3))
        moment += timedelta(hours=1)

    assert reports == [DeliveryReport(retried=1), DeliveryReport(retried=1), DeliveryReport(failed=1)]
    row = _row(mail_engine, outbox_id)
    assert row.status == "failed" and row.attempts == 3
    assert "451 4.3.0 Try again later" in row.last_error and "gave up after 3 attempts" in row.last_error


def test_a_mail_that_cannot_render_fails_alone(mail_engine, smtp_server, now):
    good = _enqueue(mail_engine, now)
    with mail_engine.begin() as conn:
        broken = enqueue(conn, recipient=RECIPIENT, template="request_accepted", now=now,
                         context={**SAMPLE_CONTEXTS["request_accepted"], "kind": "promotion"})

    report = _deliver(mail_engine, smtp_server, now)

    assert report == DeliveryReport(sent=1, failed=1)
    assert _row(mail_engine, good).status == "sent"
    row = _row(mail_engine, broken)
    assert row.status == "failed" and "MailTemplateError" in row.last_error and "promotion" in row.last_error


def test_a_sender_that_crashes_on_one_mail_does_not_stop_the_others(mail_engine, now):
    class Flaky:
        def __init__(self):
            self.sent = []

        def send(self, outbox_id, recipient, rendered):
            if recipient == "crash@example.org":
                raise RuntimeError("bug in a sender")
            self.sent.append(outbox_id)

    crash = _enqueue(mail_engine, now, recipient="crash@example.org")
    fine = _enqueue(mail_engine, now)
    sender = Flaky()

    with capture_logs() as logs:
        report = deliver_pending(mail_engine, sender, now=now, worker_id="w", backoff=lambda n: 30)

    assert report == DeliveryReport(sent=1, retried=1) and sender.sent == [fine]
    assert "unexpected RuntimeError: bug in a sender" in _row(mail_engine, crash).last_error
    assert "mail_delivery_crashed" in [e["event"] for e in logs]


def test_when_the_server_seems_down_the_run_pauses_without_spending_the_other_mails_attempts(mail_engine, now):
    class Down:
        calls = 0

        def send(self, outbox_id, recipient, rendered):
            Down.calls += 1
            raise MailUnavailable("connect: ConnectionRefusedError")

    ids = [_enqueue(mail_engine, now) for _ in range(5)]

    report = deliver_pending(mail_engine, Down(), now=now, worker_id="w", pause_after_unavailable=2)

    assert report == DeliveryReport(retried=2, deferred=3) and Down.calls == 2
    assert [_row(mail_engine, i).attempts for i in ids] == [1, 1, 0, 0, 0]


def test_only_due_mails_are_picked_oldest_first_up_to_the_limit(mail_engine, smtp_server, now):
    later = _enqueue(mail_engine, now)
    with mail_engine.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.id == later).values(next_attempt_at=now + timedelta(hours=1)))
    first = _enqueue(mail_engine, now - timedelta(minutes=2))
    second = _enqueue(mail_engine, now - timedelta(minutes=1))

    report = _deliver(mail_engine, smtp_server, now, limit=1)

    assert report == DeliveryReport(sent=1)
    assert [m["X-Syncd-Outbox-Id"] for m in smtp_server.messages] == [str(first)]
    assert _deliver(mail_engine, smtp_server, now) == DeliveryReport(sent=1)
    assert _row(mail_engine, second).status == "sent" and _row(mail_engine, later).status == "pending"


def test_a_mail_claimed_by_another_worker_is_left_to_it(mail_engine, now, monkeypatch):
    from syncd.mail import delivery

    outbox_id = _enqueue(mail_engine, now)
    original_claim = delivery._claim

    def another_worker_claims_first(engine, row_id, seen_attempts, *args):
        with engine.begin() as conn:  # the other worker's claim lands between our select and ours
            conn.execute(outbox.update().where(outbox.c.id == row_id).values(
                attempts=seen_attempts + 1, claimed_by="other", claimed_until=now + timedelta(minutes=10)))
        return original_claim(engine, row_id, seen_attempts, *args)

    class Recording:
        sent: list[int] = []

        def send(self, outbox_id, recipient, rendered):
            self.sent.append(outbox_id)

    monkeypatch.setattr(delivery, "_claim", another_worker_claims_first)
    report = deliver_pending(mail_engine, Recording(), now=now, worker_id="w")

    assert report == DeliveryReport(deferred=1) and Recording.sent == []
    assert _row(mail_engine, outbox_id).status == "pending"


def test_a_worker_that_died_after_claiming_leaves_the_mail_due_again_after_the_lease(mail_engine, smtp_server, now):
    outbox_id = _enqueue(mail_engine, now)
    with mail_engine.begin() as conn:  # what a claim does; then the worker died
        conn.execute(outbox.update().where(outbox.c.id == outbox_id)
                     .values(attempts=1, claimed_by="dead-worker", claimed_until=now + timedelta(seconds=600)))

    assert _deliver(mail_engine, smtp_server, now + timedelta(seconds=599)) == DeliveryReport()
    assert _deliver(mail_engine, smtp_server, now + timedelta(seconds=600)) == DeliveryReport(sent=1)
    assert _row(mail_engine, outbox_id).attempts == 2


def test_the_delivery_logs_stable_events_without_the_recipient_address(mail_engine, smtp_server, now):
    _enqueue(mail_engine, now)
    with capture_logs() as logs:
        _deliver(mail_engine, smtp_server, now)
    events = [e["event"] for e in logs]
    assert "mail_sent" in events and "mail_delivery_finished" in events
    assert RECIPIENT not in repr(logs)
    assert all(e.get("worker_id") == "test-worker" for e in logs if e["event"].startswith("mail_"))


def test_the_default_backoff_grows_exponentially_with_jitter_and_a_cap():
    low = exponential_backoff(base_seconds=60, cap_seconds=3600, rng=lambda: 0.0)
    high = exponential_backoff(base_seconds=60, cap_seconds=3600, rng=lambda: 0.999999)
    assert [low(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert [round(high(n)) for n in (1, 2, 3, 4)] == [60, 120, 240, 480]
    assert high(50) <= 3600 and low(1000) == 1800


@pytest.mark.parametrize("attempts", range(1, 12))
def test_the_default_backoff_is_always_positive_and_bounded(attempts):
    from syncd.mail.delivery import default_backoff

    assert 30 <= default_backoff(attempts) <= 6 * 3600


def test_a_password_link_named_in_secret_keys_is_erased_once_the_mail_is_sent_or_failed(
    mail_engine, smtp_server, now
):
    smtp_server.refuse_recipient("gone@example.org")
    context = {**SAMPLE_CONTEXTS["password_reset"], "secret_keys": ["reset_url"]}
    ids = []
    for recipient in (RECIPIENT, "gone@example.org"):
        with mail_engine.begin() as conn:
            ids.append(enqueue(conn, recipient=recipient, template="password_reset", context=context, now=now))

    assert _deliver(mail_engine, smtp_server, now) == DeliveryReport(sent=1, failed=1)

    assert "token=xyz" in smtp_server.messages[0].get_body(("plain",)).get_content()
    for outbox_id in ids:
        stored = _row(mail_engine, outbox_id).context
        assert stored["reset_url"] is None and stored["requester_name"] == "Aristide Charenne"


def test_a_claim_is_visible_as_the_worker_holding_the_mail_and_cleared_with_the_outcome(mail_engine, now):
    outbox_id = _enqueue(mail_engine, now)
    seen = {}

    class Peeking:
        def send(self, outbox_id, recipient, rendered):
            row = _row(mail_engine, outbox_id)
            seen.update(claimed_by=row.claimed_by, claimed_until=row.claimed_until, attempts=row.attempts)

    deliver_pending(mail_engine, Peeking(), now=now, worker_id="mailer-1", lease_seconds=120)

    assert seen["claimed_by"] == "mailer-1" and seen["attempts"] == 1
    assert seen["claimed_until"].replace(tzinfo=None) == (now + timedelta(seconds=120)).replace(tzinfo=None)
    row = _row(mail_engine, outbox_id)
    assert row.status == "sent" and row.claimed_by is None and row.claimed_until is None


def test_a_mail_held_by_the_store_queue_claim_is_not_sent_twice(mail_engine, smtp_server, now):
    claim_outbox = pytest.importorskip("syncd.store.queue").claim_outbox

    outbox_id = _enqueue(mail_engine, now)
    assert claim_outbox(mail_engine, worker_id="queue-worker", now=now, lease_seconds=300, limit=10) == [outbox_id]

    assert _deliver(mail_engine, smtp_server, now) == DeliveryReport()
    assert _deliver(mail_engine, smtp_server, now + timedelta(seconds=300)) == DeliveryReport(sent=1)
