"""Deliver the outbox: claim a batch of due mails, then render, send and record each one.

Claiming, in two steps:

1. **The batch**: ``syncd.store.queue.claim_outbox`` leases up to ``limit`` due mails to this
   worker in one short transaction (``claimed_by`` = the worker, ``claimed_until`` = now +
   ``lease_seconds``). On PostgreSQL it selects with ``FOR UPDATE SKIP LOCKED``: two daemons
   delivering at once take disjoint batches instead of queueing behind each other or racing
   for the same rows (with the former one-row-at-a-time optimistic claim, about half of all
   claims were lost to the other daemon). On SQLite the claimers take turns on the write lock.
2. **Each mail**, just before it is sent: one ``UPDATE outbox SET attempts = attempts + 1,
   claimed_until = now + lease WHERE id = ? AND status = 'pending' AND attempts = ? AND
   claimed_by = :worker``. It counts the attempt and renews the lease from the moment of
   sending (``clock``), so a long batch does not send its last mails on an old lease. If the
   batch's lease ran out meanwhile and another worker re-claimed the mail, ``claimed_by`` is
   no longer ours: the mail is left to it (``mail_claimed_elsewhere``).

Because the attempt is counted before sending, a worker that dies between that and the outcome
leaves a row that is taken again when the lease runs out: nothing is lost, the mail is sent
again (at-least-once; the SMTP sender gives it the same Message-ID and ``X-Syncd-Outbox-Id``,
which receivers and the tests deduplicate on), and a mail that crashes the process every time
still runs out of attempts. Mails claimed in the batch but not tried (the run paused, or the
database failed half-way) are released at the end of the run, their attempts unspent; if even
that fails, their lease runs out by itself. Each claim and each outcome is its own short
transaction: no transaction stays open while talking to the SMTP server.

Outcomes: sent → ``status='sent'``, ``sent_at``; ``MailUnavailable`` (or an unexpected error) →
``next_attempt_at = now + backoff(attempts)``, or ``failed`` once ``attempts`` reaches
``max_attempts``; ``MailRejected`` or a template that cannot render → ``failed`` at once. Every
failure keeps its reason in ``last_error``. Once a mail is sent or failed, the context values
its ``secret_keys`` list names (a password link) are erased from the row.

One bad mail never stops the others; only when the server itself seems down
(``pause_after_unavailable`` temporary failures in a row) does the run stop early, releasing the
remaining mails (their attempts are not spent) for the next run.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from syncd.errors import MailRejected, MailUnavailable
from syncd.mail.outbox import utc
from syncd.mail.render import MailTemplateError, RenderedMail, render
from syncd.store import outbox
from syncd.store.db import Engine
from syncd.store.queue import claim_outbox, release
from syncd.store.tables import outbox as outbox_table

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
    deferred: int = 0     # claimed but not tried in this run (taken over elsewhere, or run paused)


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
    clock: Callable[[], datetime] | None = None,
) -> DeliveryReport:
    """Send up to ``limit`` due mails; return what happened. See the module docstring.

    ``now`` is when the batch is claimed; ``clock`` (default: always ``now``) gives the time of
    each attempt, from which its lease, ``sent_at`` and its retry time are counted.

    Raises ``StoreUnavailable`` / ``StoreRejected`` only when the database fails (mails sent
    before that are sent again later: at-least-once).
    """
    now = utc(now)
    moment_of = (lambda: utc(clock())) if clock is not None else (lambda: now)
    bound = log.bind(worker_id=worker_id)
    sent = retried = failed = deferred = 0
    in_a_row_unavailable = 0
    rows: list[Any] = []
    untried: list[int] = []     # claimed in the batch, not tried yet: released at the end

    try:
        ids = claim_outbox(engine, worker_id=worker_id, now=now, lease_seconds=lease_seconds, limit=limit)
        if ids:
            untried = list(ids)
            rows = outbox.claimed(engine, ids, worker_id)
        for index, row in enumerate(rows):
            if in_a_row_unavailable >= pause_after_unavailable:
                deferred += len(rows) - index
                bound.warning("mail_delivery_paused", left_for_next_run=len(rows) - index,
                              temporary_failures_in_a_row=in_a_row_unavailable)
                break
            untried.remove(row.id)
            attempt = row.attempts + 1
            moment = moment_of()
            if not _claim(engine, row.id, row.attempts, worker_id, moment, lease_seconds):
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
                    next_at = moment + timedelta(seconds=max(0.0, float(backoff(attempt))))
                    mlog.warning("mail_retry_scheduled", reason=reason, next_attempt_at=next_at.isoformat())
                    _finish(engine, row.id, attempt, mlog, status="pending", next_attempt_at=next_at,
                            last_error=_clip(reason))
            else:
                in_a_row_unavailable = 0
                sent += 1
                mlog.info("mail_sent")
                _finish(engine, row.id, attempt, mlog, status="sent", sent_at=moment, next_attempt_at=None,
                        last_error=None, **_erase_secrets(row.context))
    finally:
        try:
            if untried:
                _release(engine, untried, worker_id, bound)
        finally:
            close = getattr(sender, "close", None)
            if callable(close):
                close()

    report = DeliveryReport(sent=sent, retried=retried, failed=failed, deferred=deferred)
    if rows:
        bound.info("mail_delivery_finished", sent=sent, retried=retried, failed=failed, deferred=deferred)
    return report


# ---------------------------------------------------------------------------------------------


# Start one attempt on a mail of our batch: count it and renew the lease, if still ours (a name of
# its own here, where the tests put another worker's claim before it).
_claim = outbox.start_attempt


def _release(engine: Engine, ids: list[int], worker_id: str, bound) -> None:
    """Give back mails claimed but not tried (their attempts unspent); best effort: the lease
    runs out by itself if the database is gone."""
    try:
        release(engine, ids, worker_id, table=outbox_table)
    except Exception as exc:  # noqa: BLE001 - never hide the run's own outcome or error
        bound.warning("mail_release_failed", mails=len(ids), error=f"{type(exc).__name__}: {exc}")


def _finish(engine: Engine, outbox_id: int, attempt: int, mlog, **values: Any) -> None:
    if not outbox.finish(engine, outbox_id, attempt, **values):
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
