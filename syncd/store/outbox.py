"""The outbox's queries: mails written in the caller's transaction, claimed, and their outcomes.

``syncd.mail.outbox`` checks and shapes a mail before ``add`` writes it; ``syncd.mail.delivery``
renders and sends, recording each attempt with ``start_attempt`` and its outcome with ``finish``.
Claiming a batch is ``syncd.store.queue.claim_outbox``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Engine, Row

from syncd.store.db import insert_ignoring, transaction
from syncd.store.repo import aware
from syncd.store.tables import outbox, time_to_driver

log = structlog.get_logger(__name__)


def add(conn: Connection, values: dict[str, Any]) -> int | None:
    """Insert one mail; its id, or None when its dedupe key is in the outbox already."""
    stmt = insert_ignoring(conn, outbox, ["dedupe_key"]).values(**values).returning(outbox.c.id)
    return conn.execute(stmt).scalar_one_or_none()


# The columns of a mail as ``syncd.mail.outbox`` shapes it, in the statement's order.
_MAIL_COLUMNS = ("created_at", "recipient", "template", "language", "context", "request_id", "dedupe_key",
                 "status", "attempts")
_ADD_MANY_SQLITE = (f"INSERT INTO outbox ({', '.join(_MAIL_COLUMNS)}) VALUES ({', '.join(['?'] * len(_MAIL_COLUMNS))}) "
                    "ON CONFLICT (dedupe_key) DO NOTHING")
_ADD_MANY_POSTGRESQL = (
    f"INSERT INTO outbox ({', '.join(_MAIL_COLUMNS)}) SELECT {', '.join('m.' + c for c in _MAIL_COLUMNS)} "
    "FROM ROWS FROM (json_to_recordset(%s::json) AS (created_at timestamptz, recipient text, template text, "
    "language text, context json, request_id bigint, dedupe_key text, status text, attempts integer)) "
    "WITH ORDINALITY AS m ORDER BY m.ordinality ON CONFLICT (dedupe_key) DO NOTHING")


def add_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many mails (each with exactly the columns ``syncd.mail.outbox`` gives a mail), in
    their order; a dedupe key already there, or met earlier in ``rows``, skips that mail.

    For apply's batches, on the driver: through SQLAlchemy, binding each row cost more than the
    insert. On SQLite its ``executemany``, values shaped as ``UtcDateTime`` and ``JSON`` bind them
    (2,000 mails: 75–91 ms of CPU through SQLAlchemy, 62–76 ms). On PostgreSQL the batch goes as
    one JSON document to one statement: executed row by row (``executemany``, pipelined), the
    server's CPU for 2,000 mails was 105 ms and the client's 59, as one document 50 and 22 (as
    arrays, 161 ms of the client's: psycopg dumps arrays of text element by element).
    """
    if not rows:
        return
    cursor = conn.connection.dbapi_connection.cursor()
    if conn.dialect.name == "postgresql":
        cursor.execute(_ADD_MANY_POSTGRESQL, (json.dumps([
            {**{c: row[c] for c in _MAIL_COLUMNS}, "created_at": time_to_driver(row["created_at"], True).isoformat()}
            for row in rows]),))
        return
    values = [[row[c] for c in _MAIL_COLUMNS] for row in rows]
    for v in values:
        v[0], v[4] = time_to_driver(v[0], False), json.dumps(v[4])
    cursor.executemany(_ADD_MANY_SQLITE, values)


def pending_count(conn: Connection) -> int:
    """How many mails wait to be sent (including those waiting for a retry)."""
    return conn.execute(select(func.count()).select_from(outbox).where(outbox.c.status == "pending")).scalar_one()


def failed_count(conn: Connection) -> int:
    """How many mails were given up on."""
    return conn.execute(select(func.count()).select_from(outbox).where(outbox.c.status == "failed")).scalar_one()


def oldest_pending_age(conn: Connection, now: datetime) -> float | None:
    """Seconds the oldest pending mail has been waiting; ``None`` when none is pending."""
    oldest = conn.execute(select(func.min(outbox.c.created_at)).where(outbox.c.status == "pending")).scalar()
    return None if oldest is None else max((aware(now) - aware(oldest)).total_seconds(), 0.0)


def failed(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    """The mails given up on, newest first: what ``syncd outbox failed`` lists."""
    rows = conn.execute(select(outbox.c.id, outbox.c.created_at, outbox.c.recipient, outbox.c.template,
                               outbox.c.attempts, outbox.c.last_error, outbox.c.context, outbox.c.content_erased_at)
                        .where(outbox.c.status == "failed").order_by(outbox.c.id.desc()).limit(limit)).mappings()
    return [dict(r) | {"resendable": _resendable(r)} for r in rows]


def retry_failed(conn: Connection, ids: Sequence[int] | None, now: datetime) -> tuple[list[int], list[int]]:
    """Put failed mails back in the queue with their attempts reset (``ids``, or every one when
    None); return (queued again, left failed).

    A mail whose secret link was erased once it failed (a password link) cannot be sent again:
    it is left failed, and the person needs a new link.
    """
    query = select(outbox.c.id, outbox.c.context, outbox.c.content_erased_at).where(outbox.c.status == "failed")
    if ids is not None:
        query = query.where(outbox.c.id.in_(list(ids)))
    rows = conn.execute(query.order_by(outbox.c.id)).mappings().all()
    again = [r["id"] for r in rows if _resendable(r)]
    if again:
        conn.execute(update(outbox).where(outbox.c.id.in_(again), outbox.c.status == "failed").values(
            status="pending", attempts=0, next_attempt_at=aware(now), claimed_by=None, claimed_until=None))
    return again, [r["id"] for r in rows if r["id"] not in set(again)]


def erase_old_content(conn: Connection, *, created_before: datetime, now: datetime, limit: int) -> int:
    """Empty the context and last error of up to ``limit`` mails sent or given up on and created
    before ``created_before``; return how many. Recipient, template, dates, status and dedupe key
    stay: they say that a mail went out, and the dedupe key still stops it from being queued again.
    """
    ids = select(outbox.c.id).where(outbox.c.content_erased_at.is_(None), outbox.c.status.in_(("sent", "failed")),
                                    outbox.c.created_at < aware(created_before)).order_by(outbox.c.id).limit(limit)
    done = conn.execute(update(outbox).where(outbox.c.id.in_(ids.scalar_subquery()))
                        .values(context={}, last_error=None, content_erased_at=aware(now))).rowcount
    if done:
        log.info("outbox_content_erased", count=done)
    return done


def _resendable(row: Mapping[str, Any]) -> bool:
    """A failed mail can be sent again unless its content or its secret link was erased."""
    context = row["context"]
    secret_erased = isinstance(context, dict) and any(context.get(k) is None for k in context.get("secret_keys") or ())
    return row["content_erased_at"] is None and not secret_erased


# --- delivery ----------------------------------------------------------------------------------


def claimed(engine: Engine, ids: Sequence[int], worker_id: str) -> list[Row]:
    """The mails of ``ids`` still claimed by ``worker_id``, by id, with what sending them needs."""
    with transaction(engine, readonly=True) as conn:
        return list(conn.execute(
            select(outbox.c.id, outbox.c.attempts, outbox.c.recipient, outbox.c.template,
                   outbox.c.language, outbox.c.context, outbox.c.request_id)
            .where(outbox.c.id.in_(ids), outbox.c.claimed_by == worker_id).order_by(outbox.c.id)).all())


def start_attempt(engine: Engine, outbox_id: int, seen_attempts: int, worker_id: str, now: datetime,
                  lease_seconds: float) -> bool:
    """Count one attempt on a mail of our batch and renew its lease, if it is still ours."""
    with transaction(engine) as conn:
        return conn.execute(
            outbox.update()
            .where(outbox.c.id == outbox_id, outbox.c.status == "pending", outbox.c.attempts == seen_attempts,
                   outbox.c.claimed_by == worker_id)
            .values(attempts=seen_attempts + 1, claimed_until=now + timedelta(seconds=lease_seconds))
        ).rowcount == 1


def finish(engine: Engine, outbox_id: int, attempt: int, **values: Any) -> bool:
    """Record the outcome of ``attempt`` and drop the claim; False if another worker took the mail over."""
    with transaction(engine) as conn:
        return conn.execute(
            outbox.update()
            .where(outbox.c.id == outbox_id, outbox.c.status == "pending", outbox.c.attempts == attempt)
            .values(claimed_by=None, claimed_until=None, **values)
        ).rowcount == 1
