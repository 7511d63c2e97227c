"""Single-use markers in ``used_tokens``: API nonces, idempotency keys, consumed decision links.

Keys: ``nonce:<client>:<nonce>``, ``idem:<client>:<sha256 of method, path and key>``,
``link:<link id>``. A key is claimed by inserting it (``INSERT … ON CONFLICT DO NOTHING``):
whoever inserts first wins, on SQLite and PostgreSQL alike, without a read-then-write race.
Rows past ``expires_at`` are purged now and then by the web process.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from syncd.store import decision
from syncd.store.tables import used_tokens


def claim(conn: Connection, key: str, now: datetime, expires_at: datetime, result: Any = None) -> bool:
    """Record ``key``; True if it was new, False if someone had recorded it already (every
    signed API call claims its nonce: a statement on the driver's cursor, ``syncd.store.decision``)."""
    return decision.claim_token(conn, key, now, expires_at, result)


def result_of(conn: Connection, key: str) -> tuple[bool, Any]:
    """(whether ``key`` is recorded, its stored result)."""
    row = conn.execute(select(used_tokens.c.result).where(used_tokens.c.key == key)).first()
    return (row is not None, row[0] if row is not None else None)


def is_used(conn: Connection, key: str) -> bool:
    return conn.execute(select(used_tokens.c.key).where(used_tokens.c.key == key)).first() is not None


def store_result(conn: Connection, key: str, result: Any) -> None:
    conn.execute(update(used_tokens).where(used_tokens.c.key == key).values(result=result))


def release(conn: Connection, key: str) -> None:
    conn.execute(delete(used_tokens).where(used_tokens.c.key == key))


def existing(conn: Connection, keys: list[str]) -> set[str]:
    """Which of ``keys`` are markers now (each looked up by the primary key)."""
    return set(conn.execute(select(used_tokens.c.key).where(used_tokens.c.key.in_(keys))).scalars())


def purge(conn: Connection, now: datetime) -> int:
    """Forget every marker past its expiry; return how many."""
    return conn.execute(delete(used_tokens).where(used_tokens.c.expires_at < now)).rowcount or 0
