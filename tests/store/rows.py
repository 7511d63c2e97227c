"""Minimal valid rows for the store tests."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from syncd.store.tables import outbox, requests

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)


def request_row(**overrides: Any) -> dict[str, Any]:
    row = {
        "kind": "habilitation",
        "submitted_at": T0,
        "email": "jeanne.martin@cpam-75.example",
        "role_key": "opim-local",
    }
    row.update(overrides)
    return row


def insert_requests(conn: Connection, count: int, **overrides: Any) -> list[int]:
    """Insert ``count`` requests in one statement; return their ids, ascending."""
    if count == 0:
        return []
    conn.execute(insert(requests), [request_row(**overrides) for _ in range(count)])
    return list(conn.execute(requests.select().with_only_columns(requests.c.id)
                             .order_by(requests.c.id.desc()).limit(count)).scalars())[::-1]


def insert_outbox(conn: Connection, count: int, **overrides: Any) -> list[int]:
    rows = []
    for i in range(count):
        row = {"created_at": T0, "recipient": f"someone{i}@example.org", "template": "request_accepted",
               "context": {"request_id": i}}
        row.update(overrides)
        rows.append(row)
    conn.execute(insert(outbox), rows)
    return list(conn.execute(outbox.select().with_only_columns(outbox.c.id)
                             .order_by(outbox.c.id.desc()).limit(count)).scalars())[::-1]


def end_held_claims(engine) -> int:
    """Terminate the PostgreSQL sessions that hold row locks on requests and wait, idle in their
    transaction (``queue.hold_request_rows`` before its lease); how many there were."""
    with engine.connect() as conn:
        ended = conn.exec_driver_sql(
            "SELECT pg_terminate_backend(a.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.relation = 'requests'::regclass AND l.mode = 'RowShareLock' "
            "AND a.state = 'idle in transaction'").all()
        conn.commit()
    return len(ended)
