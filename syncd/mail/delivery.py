"""Deliver the outbox: pick due mails, claim each one, render, send, record the outcome.

Claiming (provisional; ``syncd.store.queue.claim_outbox`` can replace it): one optimistic
``UPDATE outbox SET attempts = attempts + 1, claimed_by = :worker, claimed_until = now + lease
WHERE id = ? AND status = 'pending' AND attempts = ? AND (claimed_until IS NULL OR claimed_until
<= now)`` per row, just before sending it. The worker whose update hits the row owns it; the
others skip it. It honours the same ``claimed_by`` / ``claimed_until`` lease columns as
``syncd.store.queue``, so both can run side by side. Because the claim itself counts the
attempt, a worker that dies between claim and outcome leaves a row that is taken again when the
lease runs out: nothing is lost, the mail is sent again (at-least-once; the SMTP sender gives it
the same Message-ID), and a mail that crashes the process every time still runs out of
attempts. Each claim and each outcome is its own short transaction: no transaction stays open
while talking to the SMTP server.

Outcomes: sent → ``status='sent'``, ``sent_at``; ``MailUnavailable`` (or an unexpected error) →
``next_attempt_at = now + backoff(attempts)``, or ``failed`` once ``attempts`` reaches
``max_attempts``; ``MailRejected`` or a template that cannot render → ``failed`` at once. Every
failure keeps its reason in ``last_error``. Once a mail is sent or failed, the context values
its ``secret_keys`` list names (a password link) are erased from the row.

One bad mail never stops the others; only when the server itself seems down
(``pause_after_unavailable`` temporary failures in a row) does the run stop early, leaving the
remaining mails untouched (their attempts are not spent) for the next run.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import structlog
from sqlalchemy import func, or_, select
from sqlalchemy.engine import Engine

from syncd.errors import MailRejected, MailUnavailable
from syncd.mail._store_errors import translate_store_errors
from syncd.mail.render import MailTemplateError, RenderedMail, render
from syncd.store.tables import outbox

log = structlog.get_logger(__name__)

MAX_ERROR_CHARS = 2000


class Sender(Protocol):
    """What delivery needs from a sender (``SmtpSender``, or a fake in tests)."""

    def send(self, outbox_id: int, recipient: str, rendered: RenderedMail) -> Any: ...


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    retried: int = 0      # temporary failure: pending again, with a later next_attempt_at
    failed: int = 0       # given up: rejected, unrenderable, or out of attempts
    deferred: int = 0     # due but not tried in this run (claimed elsewhere, or run paused)


def exponential_backoff(
    base_seconds: float = 60.0,
    cap_seconds: float = 6 * 3600.0,
    rng: Callable[[], float] = random.random,
) -> Callable[[int], float]:
    """``attempts`` → seconds: doubling from ``base_seconds``, capped, with "equal jitter"
    (between half and all of the step), so retries of many mails do not arrive together."""

    def backoff(attempts: int) -> float:
        step = min(cap_seconds, base_seconds * 2.0 ** min(max(attempts - 1, 0), 40))
        return step / 2 + rng() * step / 2

    return backoff


# 60 s, 2 min, 4 min … 6 h (halved at worst by jitter): ten attempts span about 8.5 hours.
default_backoff = exponential_backoff()


def deliver_pending(
    engine: Engine,
    sender: Sender,
    *,
    now: datetime,
    worker_id: str,
    limit: int = 100,
    max_attempts: int = 10,
    backoff: Callable[[int], float] = default_backoff,
    lease_seconds: float = 600.0,
    pause_after_unavailable: int = 3,
) -> DeliveryReport:
    """Send up to ``limit`` due mails; return what happened. See the module docstring.

    Raises ``StoreUnavailable`` / ``StoreRejected`` only when the database fails (mails sent
    before that are sent again later: at-least-once).
    """
    now = _utc(now)
    bound = log.bind(worker_id=worker_id)
    sent = retried = failed = deferred = 0
    in_a_row_unavailable = 0

    with translate_store_errors("select due mails"), engine.begin() as conn:
        rows = conn.execute(
            select(
                outbox.c.id,
                outbox.c.attempts,
                outbox.c.recipient,
                outbox.c.template,
                outbox.c.language,
                outbox.c.context,
                outbox.c.request_id,
            )
            .where(
                outbox.c.status == "pending",
                or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= now),
                or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= now),
            )
            .order_by(func.coalesce(outbox.c.next_attempt_at, outbox.c.created_at), outbox.c.id)
            .limit(limit)
        ).all()

    try:
        for index, row in enumerate(rows):
            if in_a_row_unavailable >= pause_after_unavailable:
                deferred += len(rows) - index
                bound.warning("mail_delivery_paused", left_for_next_run=len(rows) - index,
                              temporary_failures_in_a_row=in_a_row_unavailable)
                break
            attempt = row.attempts + 1
            if not _claim(engine, row.id, row.attempts, worker_id, now, lease_seconds):
                deferred += 1
                bound.info("mail_claimed_elsewhere", outbox_id=row.id)
                continue
            mlog = bound.bind(outbox_id=row.id, template=row.template, request_id=row.request_id, attempt=attempt)
            try:
                rendered = render(row.template, row.language, row.context or {})
                sender.send(row.id, row.recipient, rendered)
            except (MailRejected, MailTemplateError) as exc:
                in_a_row_unavailable = 0
                failed += 1
                reason = f"{type(exc).__name__}: {exc}"
                mlog.error("mail_failed", reason=reason)
                _finish(engine, row.id, attempt, mlog, status="failed", next_attempt_at=None,
                        last_error=_clip(reason), **_erase_secrets(row.context))
            except Exception as exc:  # MailUnavailable, or a bug: retry later, never stop the batch
                in_a_row_unavailable += 1
                if isinstance(exc, MailUnavailable):
                    reason = f"{type(exc).__name__}: {exc}"
                else:
                    reason = f"unexpected {type(exc).__name__}: {exc}"
                    mlog.exception("mail_delivery_crashed")
                if attempt >= max_attempts:
                    failed += 1
                    reason = f"{reason} (gave up after {attempt} attempts)"
                    mlog.error("mail_failed", reason=reason)
                    _finish(engine, row.id, attempt, mlog, status="failed", next_attempt_at=None,
                            last_error=_clip(reason), **_erase_secrets(row.context))
                else:
                    retried += 1
                    next_at = now + timedelta(seconds=max(0.0, float(backoff(attempt))))
                    mlog.warning("mail_retry_scheduled", reason=reason, next_attempt_at=next_at.isoformat())
                    _finish(engine, row.id, attempt, mlog, status="pending", next_attempt_at=next_at,
                            last_error=_clip(reason))
            else:
                in_a_row_unavailable = 0
                sent += 1
                mlog.info("mail_sent")
                _finish(engine, row.id, attempt, mlog, status="sent", sent_at=now, next_attempt_at=None,
                        last_error=None, **_erase_secrets(row.context))
    finally:
        close = getattr(sender, "close", None)
        if callable(close):
            close()

    report = DeliveryReport(sent=sent, retried=retried, failed=failed, deferred=deferred)
    if rows:
        bound.info("mail_delivery_finished", sent=sent, retried=retried, failed=failed, deferred=deferred)
    return report


# ---------------------------------------------------------------------------------------------


def _claim(engine: Engine, outbox_id: int, seen_attempts: int, worker_id: str, now: datetime,
           lease_seconds: float) -> bool:
    with translate_store_errors("claim a mail"), engine.begin() as conn:
        result = conn.execute(
            outbox.update()
            .where(
                outbox.c.id == outbox_id,
                outbox.c.status == "pending",
                outbox.c.attempts == seen_attempts,
                or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= now),
            )
            .values(attempts=seen_attempts + 1, claimed_by=worker_id,
                    claimed_until=now + timedelta(seconds=lease_seconds))
        )
        return result.rowcount == 1


def _finish(engine: Engine, outbox_id: int, attempt: int, mlog, **values: Any) -> None:
    with translate_store_errors("record a mail's outcome"), engine.begin() as conn:
        result = conn.execute(
            outbox.update()
            .where(outbox.c.id == outbox_id, outbox.c.status == "pending", outbox.c.attempts == attempt)
            .values(claimed_by=None, claimed_until=None, **values)
        )
    if result.rowcount != 1:
        # Our lease ran out and another worker took the mail over: its outcome wins.
        mlog.warning("mail_claim_lost", outcome=values.get("status"))


def _erase_secrets(context: Any) -> dict[str, Any]:
    """``{"context": …}`` with the values named by ``context["secret_keys"]`` set to None, or {}."""
    if not isinstance(context, dict) or not context.get("secret_keys"):
        return {}
    secret = set(context["secret_keys"])
    return {"context": {k: (None if k in secret else v) for k, v in context.items()}}


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
