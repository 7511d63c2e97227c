"""Loading the data set into SQLite or PostgreSQL fast: the driver's bulk path, not the ORM.

SQLite gets ``executemany`` on the raw ``sqlite3`` connection; PostgreSQL gets ``COPY``.
Times are stored exactly as ``syncd.store.tables.UtcDateTime`` stores them (naive UTC text
on SQLite, ``timestamptz`` on PostgreSQL), so syncd reads them back as it would its own.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from bench.data import NOW, DataSet, account_rows, membership_rows

ACCOUNT_COLUMNS = ("id", "email", "civility", "given_name", "family_name", "birth_name", "contact_email", "phone",
                   "primary_organisation", "secondary_organisation", "internal", "director", "terms_version",
                   "terms_accepted_at", "status", "created_at", "updated_at", "ldap_synced_at", "version",
                   "ldap_version")
MEMBERSHIP_COLUMNS = ("account_id", "role_key", "granted_by_request", "granted_at", "expires_at", "revoked_at",
                      "applied_at")
REQUEST_COLUMNS = ("kind", "submitted_at", "email", "role_key", "status", "account_id", "deadline_at", "decided_at",
                   "decided_by", "applied_at", "attempts", "updated_at", "organisation_code", "first_routed_at")


def _sqlite_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, bool):
        return int(v)
    return v


def _rows(items: Iterable[dict[str, Any]], columns: tuple[str, ...], sqlite: bool) -> Iterator[tuple]:
    for item in items:
        if sqlite:
            yield tuple(_sqlite_value(item.get(c)) for c in columns)
        else:
            yield tuple(item.get(c) for c in columns)


def bulk_insert(engine: Engine, table: str, columns: tuple[str, ...], items: Iterable[dict[str, Any]]) -> int:
    sqlite = engine.dialect.name == "sqlite"
    raw = engine.raw_connection()
    n = 0
    try:
        cur = raw.cursor()
        if sqlite:
            cur.execute("BEGIN")     # the engine runs pysqlite in autocommit mode: one fsync per row otherwise
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
            batch: list[tuple] = []
            for row in _rows(items, columns, True):
                batch.append(row)
                if len(batch) >= 50_000:
                    cur.executemany(sql, batch)
                    n += len(batch)
                    batch = []
            if batch:
                cur.executemany(sql, batch)
                n += len(batch)
        else:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in _rows(items, columns, False):
                    copy.write_row(row)
                    n += 1
        raw.commit()
    finally:
        raw.close()
    return n


def load(engine: Engine, data: DataSet) -> None:
    """Organisations, accounts and memberships of ``data`` (the tables must be empty)."""
    orgs = [{"code": o.code, "name": o.name, "branch": o.branch, "active": True, "updated_at": NOW}
            for o in data.mappings.organisations]
    bulk_insert(engine, "organisations", ("code", "name", "branch", "active", "updated_at"), orgs)
    bulk_insert(engine, "accounts", ACCOUNT_COLUMNS, account_rows(data))
    from syncd.store.tables import memberships
    with engine.begin() as conn:            # built once afterwards: faster than row by row
        for index in memberships.indexes:
            index.drop(conn)
    bulk_insert(engine, "memberships", MEMBERSHIP_COLUMNS, membership_rows(data))
    with engine.begin() as conn:
        for index in memberships.indexes:
            index.create(conn)
    analyze(engine, vacuum=True)


def analyze(engine: Engine, *, vacuum: bool = False) -> None:
    """Statistics for the planner; with ``vacuum``, on PostgreSQL, the visibility map too, as
    autovacuum sets it within a minute or so of a bulk load in steady use (without it, the
    reconciliation's covering index cannot serve index-only scans: every row is fetched from
    the table)."""
    if vacuum and engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        return
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def settle(engine: Engine) -> None:
    """Write the bench's own bulk loads out now (PostgreSQL ``CHECKPOINT``, SQLite's WAL checkpointed
    into the database file), so that what is measured next does not pay for them."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("CHECKPOINT")
        return
    db = sqlite3.connect(engine.url.database)     # a connection of its own, in no transaction
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        db.close()


def due_requests(data: DataSet, due: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``due`` pending habilitation requests whose tacit deadline has passed."""
    rng = random.Random(seed)
    roles = data.roles
    for k in range(due):
        account = data.accounts[rng.randrange(len(data.accounts))]
        submitted = NOW - timedelta(days=10, minutes=1 + k % 600)
        yield {"kind": "habilitation", "submitted_at": submitted, "email": account["email"],
               "role_key": roles[rng.randrange(len(roles))].key, "account_id": account["id"], "attempts": 0,
               "updated_at": submitted, "organisation_code": account["primary_organisation"],
               "status": "pending", "deadline_at": submitted + timedelta(days=10), "first_routed_at": submitted}


# The history in bulk, generated by the database itself (a Python loop takes longer than the
# sweep): 2% pending and not yet due, the rest decided (85% accepted and applied). These rows
# name no account: the sweep never reads them, it only has to find the due ones among them.
_COLUMNS = "kind, submitted_at, role_key, status, deadline_at, decided_at, decided_by, applied_at, attempts, updated_at"
_HISTORY_SQLITE = f"""
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < :count),
     r(x, s) AS (SELECT x, datetime(:now, '-' || (11 + x % 1500) || ' days') FROM n)
INSERT INTO requests ({_COLUMNS})
SELECT 'habilitation', s || '.000000', 'role-' || printf('%03d', x % 200),
       CASE WHEN x % 50 = 0 THEN 'pending' WHEN x % 7 = 0 THEN 'refused' ELSE 'accepted' END,
       CASE WHEN x % 50 = 0 THEN datetime(:now, '+' || (1 + x % 9) || ' days') ELSE datetime(s, '+10 days') END
           || '.000000',
       CASE WHEN x % 50 = 0 THEN NULL ELSE datetime(s, '+2 days') || '.000000' END,
       CASE WHEN x % 50 = 0 THEN NULL ELSE 'someone' END,
       CASE WHEN x % 50 = 0 OR x % 7 = 0 THEN NULL ELSE datetime(s, '+2 days', '+1 minutes') || '.000000' END,
       0, s || '.000000'
FROM r
"""
_HISTORY_POSTGRESQL = f"""
INSERT INTO requests ({_COLUMNS})
SELECT 'habilitation', s, 'role-' || lpad((x % 200)::text, 3, '0'),
       CASE WHEN x % 50 = 0 THEN 'pending' WHEN x % 7 = 0 THEN 'refused' ELSE 'accepted' END,
       CASE WHEN x % 50 = 0 THEN CAST(:now AS timestamptz) + (1 + x % 9) * interval '1 day'
            ELSE s + interval '10 days' END,
       CASE WHEN x % 50 = 0 THEN NULL ELSE s + interval '2 days' END,
       CASE WHEN x % 50 = 0 THEN NULL ELSE 'someone' END,
       CASE WHEN x % 50 = 0 OR x % 7 = 0 THEN NULL ELSE s + interval '2 days 1 minute' END,
       0, s
FROM (SELECT x, CAST(:now AS timestamptz) - (11 + x % 1500) * interval '1 day' AS s
      FROM generate_series(1, :count) AS x) AS g
"""


def load_requests(engine: Engine, data: DataSet, total: int, due: int) -> None:
    """``total`` past requests, of which ``due`` pending past their deadline."""
    sqlite = engine.dialect.name == "sqlite"
    now = NOW.astimezone(timezone.utc).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S") if sqlite else NOW
    from syncd.store.tables import requests
    with engine.begin() as conn:
        # Indexes built once afterwards: maintained row by row they triple the load time.
        for index in requests.indexes:
            index.drop(conn)
        conn.execute(text(_HISTORY_SQLITE if sqlite else _HISTORY_POSTGRESQL), {"count": total - due, "now": now})
        for index in requests.indexes:
            index.create(conn)
    bulk_insert(engine, "requests", REQUEST_COLUMNS, due_requests(data, due))
    # As intake leaves them: routed to a decider (the sweep never accepts a request nobody could decide).
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO request_deciders (request_id, account_id) SELECT id, :decider FROM requests "
                          "WHERE status = 'pending' AND account_id IS NOT NULL"), {"decider": data.accounts[0]["id"]})
    analyze(engine)


def accepted_pairs(data: DataSet, count: int, seed: int = 11) -> list[tuple[int, int]]:
    """``count`` (account index, role index) pairs not held yet (the four biggest roles left out)."""
    rng = random.Random(seed)
    held = {(i, r) for i, r, _ in data.memberships}
    pairs: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    while len(pairs) < count:
        pair = (rng.randrange(len(data.accounts)), rng.randrange(4, len(data.roles)))
        if pair in held or pair in seen:
            continue
        seen.add(pair)
        pairs.append(pair)
    return pairs


def accepted_requests(data: DataSet, count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``count`` accepted, not yet applied habilitation requests (``accepted_pairs``), and the
    membership rows their acceptance wrote (applied_at null)."""
    roles = data.roles
    reqs, rows = [], []
    for i, r in accepted_pairs(data, count):
        account = data.accounts[i]
        reqs.append({"kind": "habilitation", "submitted_at": NOW - timedelta(days=3), "email": account["email"],
                     "role_key": roles[r].key, "status": "accepted", "account_id": account["id"],
                     "deadline_at": NOW + timedelta(days=7), "decided_at": NOW - timedelta(hours=1),
                     "decided_by": "someone", "applied_at": None, "attempts": 0, "updated_at": NOW,
                     "organisation_code": account["primary_organisation"]})
        rows.append({"account_id": account["id"], "role_key": roles[r].key, "granted_by_request": None,
                     "granted_at": NOW - timedelta(hours=1), "expires_at": None, "revoked_at": None,
                     "applied_at": None})
    return reqs, rows


def load_accepted(engine: Engine, data: DataSet, count: int, skip: int = 0) -> int:
    """Load ``accepted_requests(data, skip + count)`` but the first ``skip``."""
    reqs, rows = (part[skip:] for part in accepted_requests(data, skip + count))
    bulk_insert(engine, "requests", REQUEST_COLUMNS, reqs)
    bulk_insert(engine, "memberships", MEMBERSHIP_COLUMNS, rows)
    analyze(engine)
    return len(reqs)


def raw_db_reads(engine: Engine, people: Any, role_keys: list[str]) -> float:
    """Seconds the reconciliation's database reads take through the bare driver (no SQLAlchemy
    row handling): every account's compared fields with its stamp, then each role's rows."""
    import time

    from syncd.store.stamps import source_columns

    columns = ", ".join(f"a.{c.name}" for c in source_columns(people))
    sqlite = engine.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        t = time.perf_counter()
        cur.execute(f"SELECT {columns}, s.digest, s.stamp, s.layout FROM accounts a "
                    "LEFT JOIN ldap_stamps s ON s.account_id = a.id")
        while cur.fetchmany(5000):
            pass
        for key in role_keys:
            cur.execute(f"SELECT account_id, revoked_at IS NULL FROM memberships WHERE role_key = {mark}", (key,))
            while cur.fetchmany(5000):
                pass
        seconds = time.perf_counter() - t
        conn.rollback()
        return seconds
    finally:
        conn.close()


# The floor of the tacit sweep: the same writes as the sweep's for every due request, as plain
# set-based SQL in one transaction, with no rule applied (every due, routed request is accepted;
# the bench's due requests are all plain habilitations, each membership without an end). On SQLite
# the joins are CROSS JOINs, which SQLite takes in the order written (the due ids, then each
# request by its key): left to its planner, which has no statistics on the temporary table, it
# scanned the whole of requests (audit rows) and of its (account_id, role_key) index (memberships).
_FLOOR_SQLITE = (
    "CREATE TEMP TABLE IF NOT EXISTS floor_due (id INTEGER PRIMARY KEY)",   # as the sweep's: kept by the pooled
    "DELETE FROM temp.floor_due",                                            # connection, emptied each time
    "INSERT INTO floor_due SELECT r.id FROM requests r WHERE r.status = 'pending' AND r.deadline_at <= :now "
    "AND r.first_routed_at IS NOT NULL AND EXISTS (SELECT 1 FROM request_deciders d WHERE d.request_id = r.id)",
    "UPDATE requests SET status = 'accepted_tacitly', decided_at = :now, decided_by = 'tacit', updated_at = :now "
    "WHERE id IN (SELECT id FROM floor_due)",
    "INSERT INTO request_events (request_id, at, event, actor, detail) "
    "SELECT id, :now, 'tacitly_accepted', 'tacit', '{\"status\": \"accepted_tacitly\"}' FROM floor_due",
    "INSERT INTO audit_log (at, actor, action, request_id, target, detail) "
    "SELECT :now, 'tacit', 'tacitly_accepted', r.id, r.kind || ':' || r.role_key, '{\"status\": \"accepted_tacitly\"}' "
    "FROM floor_due d CROSS JOIN requests r ON r.id = d.id",
    "INSERT INTO memberships (account_id, role_key, granted_by_request, granted_at) "
    "SELECT r.account_id, r.role_key, r.id, :now FROM floor_due d CROSS JOIN requests r ON r.id = d.id WHERE true "
    "ON CONFLICT (account_id, role_key) DO UPDATE SET granted_by_request = excluded.granted_by_request, "
    "granted_at = excluded.granted_at, expires_at = NULL, revoked_at = NULL, applied_at = NULL",
)
_FLOOR_POSTGRESQL = (
    "SELECT array_agg(r.id) FROM requests r WHERE r.status = 'pending' AND r.deadline_at <= %(now)s "
    "AND r.first_routed_at IS NOT NULL AND EXISTS (SELECT 1 FROM request_deciders d WHERE d.request_id = r.id)",
    """WITH moved AS (
        UPDATE requests r SET status = 'accepted_tacitly', decided_at = %(now)s, decided_by = 'tacit',
                              updated_at = %(now)s
        WHERE r.id = ANY(%(ids)s::bigint[]) RETURNING r.id, r.kind, r.role_key, r.account_id),
    events AS (INSERT INTO request_events (request_id, at, event, actor, detail)
        SELECT id, %(now)s, 'tacitly_accepted', 'tacit', '{"status": "accepted_tacitly"}'::json FROM moved),
    audited AS (INSERT INTO audit_log (at, actor, action, request_id, target, detail)
        SELECT %(now)s, 'tacit', 'tacitly_accepted', id, kind || ':' || role_key, '{"status": "accepted_tacitly"}'::json
        FROM moved)
    INSERT INTO memberships (account_id, role_key, granted_by_request, granted_at)
    SELECT DISTINCT ON (account_id, role_key) account_id, role_key, id, %(now)s FROM moved
    ORDER BY account_id, role_key, id DESC
    ON CONFLICT (account_id, role_key) DO UPDATE SET granted_by_request = excluded.granted_by_request,
        granted_at = excluded.granted_at, expires_at = NULL, revoked_at = NULL, applied_at = NULL""",
)


# What a tacit acceptance of the due requests wrote, undone between measures so that the next
# finds the same work: the memberships their (account, role) pairs held before are kept aside, the
# due ids noted, and afterwards the memberships they were granted, their events and their status
# go back. The audit rows stay (append-only, unsealed: nothing measured reads them).
_TACIT_KEEP = (
    "CREATE TABLE bench_floor_kept AS SELECT m.* FROM memberships m JOIN requests r "
    "ON m.account_id = r.account_id AND m.role_key = r.role_key "
    "WHERE r.status = 'pending' AND r.deadline_at <= {now}",
    "CREATE TABLE bench_floor_done AS SELECT r.id AS request_id FROM requests r WHERE r.status = 'pending' "
    "AND r.deadline_at <= {now} AND r.first_routed_at IS NOT NULL "
    "AND EXISTS (SELECT 1 FROM request_deciders d WHERE d.request_id = r.id)",
)
_TACIT_UNDO = (
    "DELETE FROM memberships WHERE granted_by_request IN (SELECT request_id FROM bench_floor_done)",
    "INSERT INTO memberships SELECT DISTINCT * FROM bench_floor_kept",
    "DELETE FROM request_events WHERE request_id IN (SELECT request_id FROM bench_floor_done)",
    "UPDATE requests SET status = 'pending', decided_at = NULL, decided_by = NULL, comment = NULL, "
    "updated_at = submitted_at WHERE id IN (SELECT request_id FROM bench_floor_done)",
    "DROP TABLE bench_floor_kept",
    "DROP TABLE bench_floor_done",
)


def tacit_undone(engine: Engine, now: datetime, accept: Callable[[], object]) -> float:
    """Seconds ``accept()`` takes to accept tacitly the requests due at ``now`` (the floor's SQL,
    ``tacit_floor_writes``, or the sweep itself); what it wrote is then undone (``_TACIT_UNDO``,
    not timed), so that the next measure finds the same work."""
    import time
    sqlite = engine.dialect.name == "sqlite"
    stamp = now.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else now
    mark = ":now" if sqlite else "%(now)s"
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        if sqlite:
            cur.execute("BEGIN IMMEDIATE")
        for statement in _TACIT_KEEP:
            cur.execute(statement.format(now=mark), {"now": stamp})
        conn.commit()
        t = time.perf_counter()
        accept()
        seconds = time.perf_counter() - t
        cur.execute("SELECT count(*), count(CASE WHEN r.status = 'accepted_tacitly' THEN 1 END) FROM bench_floor_done d "
                    "JOIN requests r ON r.id = d.request_id")
        due, moved = cur.fetchone()
        conn.commit()
        if moved != due:     # the measure did not do the whole work: its time would flatter it
            raise RuntimeError(f"{moved} of the {due} due requests were accepted tacitly")
        if sqlite:
            cur.execute("BEGIN IMMEDIATE")
        for statement in _TACIT_UNDO:
            cur.execute(statement)
        conn.commit()
        return seconds
    finally:
        conn.close()


def tacit_floor_writes(engine: Engine, now: datetime) -> None:
    """The tacit sweep's writes as bare set-based SQL in one transaction, its commit included."""
    sqlite = engine.dialect.name == "sqlite"
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        if sqlite:
            stamp = now.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
            cur.execute("BEGIN IMMEDIATE")
            for statement in _FLOOR_SQLITE:
                cur.execute(statement, {"now": stamp})
        else:
            cur.execute(_FLOOR_POSTGRESQL[0], {"now": now})
            ids = cur.fetchone()[0] or []
            cur.execute(_FLOOR_POSTGRESQL[1], {"now": now, "ids": ids})
        conn.commit()
    finally:
        conn.close()
