"""The apply backlog's queries read the backlog, not the history of every request ever applied.

Apply's claim, the daemon's wake-up probe and the counts of `syncd status` and the metrics run
every few seconds; with a million requests of history they each walked ~850,000 applied rows
(~100–190 ms) until migration 0014. These tests ask each engine's own planner, on a database as
production leaves it (SQLite: no statistics, since nothing runs ANALYZE; PostgreSQL: analysed, as
autovacuum does), which index each query reads.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, insert, select, text

from syncd.store import health, repo
from syncd.store.db import transaction
from syncd.store.queue import claim_request_rows
from syncd.store.tables import APPLY_BACKLOG, requests

from tests.store.rows import T0

BACKLOG_INDEXES = ("ix_requests_apply_backlog", "ix_requests_apply_backlog_by_status")


def _history(conn, applied: int, backlog: int) -> None:
    day = timedelta(days=1)
    rows = [{"kind": "habilitation", "submitted_at": T0 - (i % 900) * day, "role_key": f"role-{i % 200:03d}",
             "status": "refused" if i % 7 == 0 else "accepted", "attempts": 0, "updated_at": T0,
             "applied_at": None if i % 7 == 0 else T0 - (i % 900) * day} for i in range(applied)]
    rows += [{"kind": "habilitation", "submitted_at": T0, "role_key": "role-001", "status": "accepted",
              "attempts": 0, "updated_at": T0, "applied_at": None} for _ in range(backlog)]
    conn.execute(insert(requests), rows)


def _statements(engine, run) -> list[tuple[str, object]]:
    """The SELECT and UPDATE statements ``run`` sends, with their parameters."""
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE")):
            seen.append((statement, parameters))
    event.listen(engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def _plan(engine, statement: str, parameters) -> str:
    """The engine's plan for ``statement``, which is not run (EXPLAIN without ANALYZE)."""
    postgresql = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.execute(("EXPLAIN " if postgresql else "EXPLAIN QUERY PLAN ") + statement, parameters)
        plan = "\n".join(str(row[0] if postgresql else row[-1]) for row in cursor.fetchall())
        conn.rollback()
    return plan


def test_the_backlog_queries_read_the_backlog_index_on_each_engine_not_the_history(engine):
    with transaction(engine) as conn:
        _history(conn, applied=20_000, backlog=3)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE requests"))

    def backlog_queries() -> None:
        with transaction(engine) as conn:
            health.waiting_work(conn, T0)
            health.unapplied_count(conn)
            health.failing_count(conn)
            health.failing_requests(conn)
    statements = _statements(engine, backlog_queries)
    statements += _statements(engine, lambda: claim_request_rows(
        engine, statuses=repo.GRANTED_STATUSES, worker_id="w", now=T0, lease_seconds=60, limit=5000,
        unapplied_only=True))
    backlog = [(s, p) for s, p in statements if "applied_at IS NULL" in s and "accepted" in s]
    assert len(backlog) == 5, [s for s, _ in statements]
    for statement, parameters in backlog:
        plan = _plan(engine, statement, parameters)
        assert any(name in plan for name in BACKLOG_INDEXES), f"{statement}\nread through:\n{plan}"


def test_the_claim_still_takes_the_backlog_oldest_first_among_the_history(engine):
    with transaction(engine) as conn:
        _history(conn, applied=300, backlog=4)
        backlog = list(conn.execute(select(requests.c.id).where(requests.c.status == "accepted",
                                                                requests.c.applied_at.is_(None))
                                    .order_by(requests.c.id)).scalars())
    assert len(backlog) == 4
    claimed = claim_request_rows(engine, statuses=repo.GRANTED_STATUSES, worker_id="w", now=T0,
                                 lease_seconds=60, limit=3, unapplied_only=True)
    assert [row[0] for row in claimed] == backlog[:3]
    with transaction(engine) as conn:
        assert health.unapplied_count(conn) == 4
        assert "apply" in health.waiting_work(conn, T0 + timedelta(seconds=1))     # the fourth is free


def test_the_backlog_index_names_the_statuses_apply_claims_written_as_its_queries_write_them():
    statuses = ", ".join(f"'{s}'" for s in sorted(repo.GRANTED_STATUSES))
    assert f"status IN ({statuses})" in APPLY_BACKLOG.text
