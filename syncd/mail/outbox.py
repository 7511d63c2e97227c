"""The transactional outbox: a mail is written in the same transaction as the state change
that calls for it, and delivered later by ``syncd.mail.delivery``.

So a mail is never sent for a change that rolled back, and never lost for one that committed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import structlog
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from syncd.mail._store_errors import translate_store_errors
from syncd.mail.render import TEMPLATES, supported_language
from syncd.store.db import DIALECT_INSERTS
from syncd.store.tables import outbox

log = structlog.get_logger(__name__)

def enqueue(
    conn: Connection,
    *,
    recipient: str,
    template: str,
    context: Mapping[str, Any],
    now: datetime,
    request_id: int | None = None,
    dedupe_key: str | None = None,
    language: str = "fr",
) -> int | None:
    """Add a mail to the outbox in the caller's transaction; return its id.

    A ``dedupe_key`` already in the outbox makes this a no-op that returns ``None`` (INSERT …
    ON CONFLICT DO NOTHING on SQLite and PostgreSQL; a savepoint elsewhere), so a job that runs
    twice notifies once. ``context`` must hold the keys ``TEMPLATES[template]`` lists; datetimes
    in it are stored as ISO 8601 UTC strings (the templates format them in Paris time). A
    ``secret_keys`` list in the context names values (a reset link) that delivery erases from the
    row once the mail is sent or has failed.

    Raises ``ValueError`` for an unknown template, a missing context key, a recipient that is
    not one address, or a context value JSON cannot hold; ``StoreUnavailable`` /
    ``StoreRejected`` when the database fails.
    """
    values = _row(recipient=recipient, template=template, context=context, now=now, request_id=request_id,
                  dedupe_key=dedupe_key, language=language)
    bound = log.bind(template=template, request_id=request_id, dedupe_key=dedupe_key)
    with translate_store_errors("enqueue a mail"):
        insert = DIALECT_INSERTS.get(conn.dialect.name)
        if insert is not None:
            stmt = insert(outbox).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
            outbox_id = conn.execute(stmt.returning(outbox.c.id)).scalar_one_or_none()
        else:
            outbox_id = _insert_with_savepoint(conn, values)
    if outbox_id is None:
        bound.info("outbox_duplicate_ignored")
        return None
    bound.info("outbox_enqueued", outbox_id=outbox_id)
    return outbox_id


@dataclass(frozen=True, slots=True)
class Mail:
    """One mail for ``enqueue_many``; the fields mean what ``enqueue``'s arguments do."""
    recipient: str
    template: str
    context: Mapping[str, Any]
    request_id: int | None = None
    dedupe_key: str | None = None
    language: str = "fr"


def enqueue_many(conn: Connection, mails: Sequence[Mail], now: datetime) -> None:
    """Add many mails in one multi-row statement; a dedupe key already there skips that mail.

    For jobs that change requests by the batch (apply, the tacit sweep). Checks every mail as
    ``enqueue`` does, before writing any.
    """
    rows = [_row(recipient=m.recipient, template=m.template, context=m.context, now=now, request_id=m.request_id,
                 dedupe_key=m.dedupe_key, language=m.language) for m in mails]
    if not rows:
        return
    with translate_store_errors("enqueue mails"):
        insert = DIALECT_INSERTS.get(conn.dialect.name)
        if insert is None:
            for values in rows:
                _insert_with_savepoint(conn, values)
        else:
            conn.execute(insert(outbox).on_conflict_do_nothing(index_elements=["dedupe_key"]), rows)
    log.info("outbox_enqueued_many", count=len(rows))


def _row(*, recipient: str, template: str, context: Mapping[str, Any], now: datetime, request_id: int | None,
         dedupe_key: str | None, language: str) -> dict[str, Any]:
    _check(recipient, template, context)
    return {
        "created_at": _utc(now),
        "recipient": recipient.strip(),
        "template": template,
        "language": supported_language(language),
        "context": _jsonable(dict(context)),
        "request_id": request_id,
        "dedupe_key": dedupe_key,
        "status": "pending",
        "attempts": 0,
    }


def pending_count(conn: Connection) -> int:
    """How many mails wait to be sent (including those waiting for a retry)."""
    with translate_store_errors("count pending mails"):
        return conn.execute(select(func.count()).select_from(outbox).where(outbox.c.status == "pending")).scalar_one()


def oldest_pending_age(conn: Connection, now: datetime) -> float | None:
    """Seconds the oldest pending mail has been waiting; ``None`` when none is pending."""
    with translate_store_errors("read the oldest pending mail"):
        oldest = conn.execute(
            select(func.min(outbox.c.created_at)).where(outbox.c.status == "pending")
        ).scalar_one_or_none()
    if oldest is None:
        return None
    return max((_utc(now) - _utc(oldest)).total_seconds(), 0.0)


def failed(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    """The mails given up on, newest first: what ``syncd outbox failed`` lists."""
    with translate_store_errors("list failed mails"):
        rows = conn.execute(select(outbox.c.id, outbox.c.created_at, outbox.c.recipient, outbox.c.template,
                                   outbox.c.attempts, outbox.c.last_error, outbox.c.context,
                                   outbox.c.content_erased_at)
                            .where(outbox.c.status == "failed").order_by(outbox.c.id.desc()).limit(limit)).mappings()
        return [dict(r) | {"resendable": _resendable(r)} for r in rows]


def retry_failed(conn: Connection, ids: Sequence[int] | None, now: datetime) -> tuple[list[int], list[int]]:
    """Put failed mails back in the queue with their attempts reset (``ids``, or every one when
    None); return (queued again, left failed).

    A mail whose secret link was erased once it failed (a password link) cannot be sent again:
    it is left failed, and the person needs a new link.
    """
    with translate_store_errors("retry failed mails"):
        query = select(outbox.c.id, outbox.c.context, outbox.c.content_erased_at).where(outbox.c.status == "failed")
        if ids is not None:
            query = query.where(outbox.c.id.in_(list(ids)))
        rows = conn.execute(query.order_by(outbox.c.id)).mappings().all()
        again = [r["id"] for r in rows if _resendable(r)]
        if again:
            conn.execute(update(outbox).where(outbox.c.id.in_(again), outbox.c.status == "failed").values(
                status="pending", attempts=0, next_attempt_at=_utc(now), claimed_by=None, claimed_until=None))
    return again, [r["id"] for r in rows if r["id"] not in set(again)]


def erase_old_content(conn: Connection, *, created_before: datetime, now: datetime, limit: int) -> int:
    """Empty the context and last error of up to ``limit`` mails sent or given up on and created
    before ``created_before``; return how many. Recipient, template, dates, status and dedupe key
    stay: they say that a mail went out, and the dedupe key still stops it from being queued again.
    """
    with translate_store_errors("erase old mail content"):
        ids = select(outbox.c.id).where(outbox.c.content_erased_at.is_(None), outbox.c.status.in_(("sent", "failed")),
                                        outbox.c.created_at < _utc(created_before)).order_by(outbox.c.id).limit(limit)
        done = conn.execute(update(outbox).where(outbox.c.id.in_(ids.scalar_subquery()))
                            .values(context={}, last_error=None, content_erased_at=_utc(now))).rowcount
    if done:
        log.info("outbox_content_erased", count=done)
    return done


def _resendable(row: Mapping[str, Any]) -> bool:
    """A failed mail can be sent again unless its content or its secret link was erased."""
    context = row["context"]
    secret_erased = isinstance(context, dict) and any(context.get(k) is None for k in context.get("secret_keys") or ())
    return row["content_erased_at"] is None and not secret_erased


# ---------------------------------------------------------------------------------------------


def _insert_with_savepoint(conn: Connection, values: dict[str, Any]) -> int | None:
    if values["dedupe_key"] is not None:
        found = conn.execute(select(outbox.c.id).where(outbox.c.dedupe_key == values["dedupe_key"])).first()
        if found is not None:
            return None
    savepoint = conn.begin_nested()
    try:
        result = conn.execute(outbox.insert().values(**values))
    except sa_exc.IntegrityError:
        savepoint.rollback()
        if values["dedupe_key"] is not None and conn.execute(
            select(outbox.c.id).where(outbox.c.dedupe_key == values["dedupe_key"])
        ).first():
            return None
        raise
    savepoint.commit()
    return result.inserted_primary_key[0]


def _check(recipient: str, template: str, context: Mapping[str, Any]) -> None:
    if template not in TEMPLATES:
        raise ValueError(f"unknown mail template {template!r}; known: {', '.join(sorted(TEMPLATES))}")
    missing = TEMPLATES[template] - set(context)
    if missing:
        raise ValueError(f"mail template {template!r} needs context keys {', '.join(sorted(missing))}")
    address = (recipient or "").strip()
    if (
        not address
        or len(address) > 254
        or address.count("@") != 1
        or any(c.isspace() or ord(c) < 32 or c in "<>,;\"()" for c in address)
    ):
        raise ValueError(f"not a single e-mail address: {recipient!r}")


def _utc(moment: datetime) -> datetime:
    """Aware UTC; a naive value (as SQLite gives back) is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _jsonable(value: Any, path: str = "context") -> Any:
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, path)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return _utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise ValueError(f"{path}: a {type(value).__name__} cannot be stored in the outbox (JSON)")
