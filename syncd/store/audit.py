"""The append-only audit trail: every decision and every LDAP change, with who, why and which request.

Rows are hash-chained: each row's ``hash`` is SHA-256 over the previous row's hash and this row's
canonical content, so a row changed or deleted afterwards breaks the chain (``verify``). Writers
are serialised so two daemons never fork the chain: PostgreSQL takes a transaction-scoped
advisory lock, SQLite has one writer anyway. Rows are written in the caller's transaction, with
the change they describe.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection

from syncd.store.tables import audit_log

_LOCK_KEY = 0x5_7_9_C_D_A_0_1   # arbitrary, constant: "the audit chain"


def _canonical(row: dict[str, Any]) -> str:
    return json.dumps({k: row[k] for k in ("at", "actor", "action", "request_id", "target", "detail")},
                      sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))


def _digest(prev_hash: str | None, row: dict[str, Any]) -> str:
    return hashlib.sha256(((prev_hash or "") + "\n" + _canonical(row)).encode("utf-8")).hexdigest()


def record(conn: Connection, *, at: datetime, actor: str, action: str, request_id: int | None = None,
           target: str | None = None, detail: dict[str, Any] | None = None) -> str:
    """Append one row; return its hash."""
    return record_many(conn, [Entry(at=at, actor=actor, action=action, request_id=request_id, target=target,
                                    detail=detail)])


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit row to append."""
    at: datetime
    actor: str
    action: str
    request_id: int | None = None
    target: str | None = None
    detail: dict[str, Any] | None = None


def record_many(conn: Connection, entries: Sequence[Entry]) -> str | None:
    """Append rows in order, chained to the current head; return the last hash.

    One lock, one read of the head and one multi-row insert for the whole batch: the chain is
    computed here, so a job that changes a thousand requests does not read the head a thousand
    times.
    """
    if not entries:
        return None
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    prev = conn.execute(select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)).scalar()
    values = []
    for e in entries:
        # Truncated before hashing: the chain must cover what is stored, or verify() would fail.
        row = {"at": e.at.astimezone(timezone.utc), "actor": e.actor[:100], "action": e.action[:40],
               "request_id": e.request_id, "target": e.target[:1000] if e.target else None, "detail": e.detail}
        digest = _digest(prev, row | {"at": row["at"].isoformat()})
        values.append(row | {"prev_hash": prev, "hash": digest})
        prev = digest
    conn.execute(insert(audit_log), values)
    return prev


def rows(conn: Connection, since_id: int = 0) -> Iterator[dict[str, Any]]:
    for r in conn.execute(select(audit_log).where(audit_log.c.id > since_id).order_by(audit_log.c.id)).mappings():
        yield dict(r)


def export_json_lines(conn: Connection, since_id: int = 0) -> Iterator[str]:
    for r in rows(conn, since_id):
        r["at"] = r["at"].isoformat()
        yield json.dumps(r, ensure_ascii=False, sort_keys=True, default=str)


def verify(conn: Connection) -> int | None:
    """The id of the first row that does not match its chain, or None when the trail is intact."""
    prev = None
    for r in rows(conn):
        content = {"at": r["at"].astimezone(timezone.utc).isoformat(), "actor": r["actor"], "action": r["action"],
                   "request_id": r["request_id"], "target": r["target"], "detail": r["detail"]}
        if r["prev_hash"] != prev or r["hash"] != _digest(prev, content):
            return r["id"]
        prev = r["hash"]
    return None


def count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(audit_log)).scalar() or 0
