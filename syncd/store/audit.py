"""The append-only audit trail: every decision and every LDAP change, with who, why and which request.

A row is written in the caller's transaction, with the change it describes, and arrives unsealed.
The sealing job (``seal``, run by the daemon every few seconds) then chains sealed rows: each takes
the next ``seq``, and its ``hash`` is SHA-256 over the previous row's hash and its own canonical
content, so a sealed row changed or deleted afterwards breaks the chain (``verify``).

Why sealing is a job of its own: chaining inside each writer's transaction meant every writer
(every decision of the web hook) read the chain's head under one lock held until its commit, so
writers queued behind each other. The sealer is the only one to take that lock (PostgreSQL: a
transaction-scoped advisory lock; SQLite has one writer anyway), so two daemons never fork the
chain. The price: a row is open to an undetected change for the seconds before it is sealed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.engine import Connection

from syncd.store.tables import audit_log

_LOCK_KEY = 0x5_7_9_C_D_A_0_1   # arbitrary, constant: "the audit chain"


def _canonical(row: dict[str, Any]) -> str:
    return json.dumps({k: row[k] for k in ("at", "actor", "action", "request_id", "target", "detail")},
                      sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))


def _digest(prev_hash: str | None, row: dict[str, Any]) -> str:
    return hashlib.sha256(((prev_hash or "") + "\n" + _canonical(row)).encode("utf-8")).hexdigest()


def record(conn: Connection, *, at: datetime, actor: str, action: str, request_id: int | None = None,
           target: str | None = None, detail: dict[str, Any] | None = None) -> None:
    """Append one row, to be sealed into the chain by ``seal``."""
    record_many(conn, [Entry(at=at, actor=actor, action=action, request_id=request_id, target=target,
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


def record_many(conn: Connection, entries: Sequence[Entry]) -> None:
    """Append rows, unsealed, in one multi-row insert; they are sealed in this order."""
    if not entries:
        return
    # Truncated here, to the columns' sizes, so that what is stored is what the seal covers.
    conn.execute(insert(audit_log), [
        {"at": e.at.astimezone(timezone.utc), "actor": e.actor[:100], "action": e.action[:40],
         "request_id": e.request_id, "target": e.target[:1000] if e.target else None, "detail": e.detail}
        for e in entries])


_SEAL = (update(audit_log).where(audit_log.c.id == bindparam("row_id"))
         .values(seq=bindparam("new_seq"), prev_hash=bindparam("new_prev"), hash=bindparam("new_hash")))


def seal(conn: Connection, limit: int = 10_000) -> int:
    """Chain up to ``limit`` unsealed rows, oldest ``id`` first, onto the sealed head; return how many.

    A row whose transaction commits after a pass is sealed by a later pass, after rows with a
    higher ``id``: the chain's order is ``seq``, the order rows were sealed in.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    seq, prev = head(conn) or (0, None)
    pending = conn.execute(select(audit_log).where(audit_log.c.seq.is_(None)).order_by(audit_log.c.id)
                           .limit(limit)).mappings().all()
    sealed = []
    for r in pending:
        seq += 1
        digest = _digest(prev, _content(r))
        sealed.append({"row_id": r["id"], "new_seq": seq, "new_prev": prev, "new_hash": digest})
        prev = digest
    if sealed:
        conn.execute(_SEAL, sealed)
    return len(sealed)


def head(conn: Connection) -> tuple[int, str] | None:
    """The last sealed row's ``(seq, hash)``: what an operator keeps outside the database, since
    removing the newest rows is the one change the chain cannot show by itself."""
    row = conn.execute(select(audit_log.c.seq, audit_log.c.hash).where(audit_log.c.seq.is_not(None))
                       .order_by(audit_log.c.seq.desc()).limit(1)).first()
    return (row.seq, row.hash) if row else None


def _content(r) -> dict[str, Any]:
    return {"at": r["at"].astimezone(timezone.utc).isoformat(), "actor": r["actor"], "action": r["action"],
            "request_id": r["request_id"], "target": r["target"], "detail": r["detail"]}


def rows(conn: Connection, since_seq: int = 0) -> Iterator[dict[str, Any]]:
    """Sealed rows in chain order, after ``since_seq``."""
    for r in conn.execute(select(audit_log).where(audit_log.c.seq > since_seq)
                          .order_by(audit_log.c.seq)).mappings():
        yield dict(r)


def unsealed_rows(conn: Connection) -> Iterator[dict[str, Any]]:
    """Rows written but not sealed yet, in the order they will be sealed."""
    for r in conn.execute(select(audit_log).where(audit_log.c.seq.is_(None)).order_by(audit_log.c.id)).mappings():
        yield dict(r)


def export_json_lines(conn: Connection, since_seq: int = 0) -> Iterator[str]:
    """Sealed rows as JSON lines; ``since_seq`` resumes an export where the last one ended."""
    for r in rows(conn, since_seq):
        r["at"] = r["at"].isoformat()
        yield json.dumps(r, ensure_ascii=False, sort_keys=True, default=str)


def verify(conn: Connection) -> int | None:
    """The id of the first sealed row that does not match its chain, or None when the trail is intact."""
    prev, seq = None, 0
    for r in rows(conn):
        seq += 1
        if r["seq"] != seq or r["prev_hash"] != prev or r["hash"] != _digest(prev, _content(r)):
            return r["id"]
        prev = r["hash"]
    return None


def unsealed(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(audit_log).where(audit_log.c.seq.is_(None))).scalar() or 0


def oldest_unsealed_at(conn: Connection) -> datetime | None:
    """When the oldest row waiting for the sealing job was written (through the partial index on
    unsealed rows: a handful of rows, not the whole trail)."""
    return conn.execute(select(func.min(audit_log.c.at)).where(audit_log.c.seq.is_(None))).scalar()


def count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(audit_log)).scalar() or 0
