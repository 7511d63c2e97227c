"""The transactional outbox: a mail is written in the same transaction as the state change
that calls for it, and delivered later by ``syncd.mail.delivery``. This module checks and shapes
a mail; its queries are ``syncd.store.outbox``.

So a mail is never sent for a change that rolled back, and never lost for one that committed.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import structlog

from syncd.mail.render import TEMPLATES, supported_language
from syncd.store import outbox
from syncd.store.db import Connection, translate_errors

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
    ON CONFLICT DO NOTHING), so a job that runs
    twice notifies once. ``context`` must hold the keys ``TEMPLATES[template]`` lists; datetimes
    in it are stored as ISO 8601 UTC strings (the templates format them in Paris time). A
    ``secret_keys`` list in the context names values (a reset link) that delivery erases from the
    row once the mail is sent or has failed.

    Raises ``ValueError`` for an unknown template, a missing context key, a recipient that is
    not one address, or a context value JSON cannot hold; ``StoreUnavailable`` /
    ``StoreRejected`` when the database fails.
    """
    values = _row(Mail(recipient, template, context, request_id, dedupe_key, language), now)
    bound = log.bind(template=template, request_id=request_id, dedupe_key=dedupe_key)
    with translate_errors():
        outbox_id = outbox.add(conn, values)
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
    """Add many mails in one batch (``syncd.store.outbox.add_many``); a dedupe key already there
    skips that mail.

    For jobs that change requests by the batch (apply's "granted" mails). Checks every mail as
    ``enqueue`` does, before writing any.
    """
    rows = [_row(m, now) for m in mails]
    if not rows:
        return
    with translate_errors():
        outbox.add_many(conn, rows)
    log.info("outbox_enqueued_many", count=len(rows))


def _row(mail: Mail, now: datetime) -> dict[str, Any]:
    _check(mail.recipient, mail.template, mail.context)
    return {
        "created_at": utc(now),
        "recipient": mail.recipient.strip(),
        "template": mail.template,
        "language": supported_language(mail.language),
        "context": _jsonable(dict(mail.context)),
        "request_id": mail.request_id,
        "dedupe_key": mail.dedupe_key,
        "status": "pending",
        "attempts": 0,
    }


def _check(recipient: str, template: str, context: Mapping[str, Any]) -> None:
    if template not in TEMPLATES:
        raise ValueError(f"unknown mail template {template!r}; known: {', '.join(sorted(TEMPLATES))}")
    missing = TEMPLATES[template] - set(context)
    if missing:
        raise ValueError(f"mail template {template!r} needs context keys {', '.join(sorted(missing))}")
    address = (recipient or "").strip()
    if not address or len(address) > 254 or address.count("@") != 1 or _NOT_IN_AN_ADDRESS.search(address):
        raise ValueError(f"not a single e-mail address: {recipient!r}")


# Whitespace (``str.isspace``'s: ``\s`` is the same test), control characters, and what would
# make a header hold a list, a display name or a comment.
_NOT_IN_AN_ADDRESS = re.compile(r'[\s\x00-\x1f<>,;"()]')


def utc(moment: datetime) -> datetime:
    """Aware UTC; a naive value (as SQLite gives back) is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


_PLAIN = frozenset({str, int, float, bool, type(None)})   # exactly these: an Enum of str is not one


def _jsonable(value: Any, path: str = "context") -> Any:
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, path)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        # A plain value as it is, without a call and its path: apply makes thousands of contexts
        # of a dozen plain values each, in the thread that records a pass beside its writers.
        return {str(k): v if type(v) in _PLAIN else _jsonable(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise ValueError(f"{path}: a {type(value).__name__} cannot be stored in the outbox (JSON)")
