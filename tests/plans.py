"""Whole-table reads, as SQLite's planner reports them: the rule the guard test and the survey share.

A statement reads a table "whole" when SQLite's ``EXPLAIN QUERY PLAN`` says ``SCAN <table>``, on
the table or on a whole index of it, for a table that grows with the history or the people. A
scan of a partial index is not whole: it holds the few rows wanted (the apply backlog, the
accounts behind LDAP). The plans are those of a database with no statistics, as production leaves
SQLite (nothing in syncd runs ``ANALYZE``): they do not depend on how many rows there are, so a
small test database shows the plan a big one gets.

What it cannot see: a search through an index on a key that many rows share (a role held by
thousands) reads many rows without a ``SCAN``; such plans have tests of their own
(tests/store/test_periodic_query_indexes.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from sqlalchemy import event

from syncd.store.tables import metadata

# Tables that stay small whatever the history: read whole, they cost nothing that grows.
SMALL_TABLES = {
    "organisations": "one row per organisation of the mappings",
    "deciders": "one row per correspondent or administrator",
    "review_campaigns": "one row per access review",
    "job_runs": "one row per job and daemon",
    "reconcile_cursors": "one row per directory server",
}
# Whole reads accepted, each with its reason and cost.
ACCEPTED_WHOLE_READS = {
    # syncd_requests{status}: a count of every request ever kept, by status, is a read of them all
    # (~55 ms SQLite, ~110 ms PostgreSQL per million, at each scrape; docs/operations.md, section 12).
    "SELECT requests.status, count(*) AS count_1 FROM requests GROUP BY requests.status",
}
_SCAN = re.compile(r"^SCAN (\w+)(?: USING (?:COVERING )?INDEX (\w+))?")
_TABLES = frozenset(t.name for t in metadata.sorted_tables)
_PARTIAL = frozenset(index.name for table in metadata.sorted_tables for index in table.indexes
                     if index.dialect_options["sqlite"].get("where") is not None)


def one_line(statement: str) -> str:
    return " ".join(statement.split())


def whole_reads(cursor, statement: str, parameters) -> list[str]:
    """The lines of ``statement``'s plan (asked through ``cursor``, a DB-API cursor of SQLite)
    that read a growing table whole; none for an accepted whole read."""
    line = one_line(statement)
    if line in ACCEPTED_WHOLE_READS:
        return []
    not_run = _checks_not_run(line)
    if isinstance(parameters, list):       # executemany: the plan is the same for every row
        parameters = parameters[0] if parameters else ()
    cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
    found = []
    for detail in (row[-1] for row in cursor.fetchall()):
        scan = _SCAN.match(detail)
        if scan and scan.group(1) in _TABLES and scan.group(1) not in SMALL_TABLES.keys() | not_run \
                and scan.group(2) not in _PARTIAL:
            found.append(detail)
    return found


_INSERT = re.compile(r"^INSERT INTO (\w+)", re.IGNORECASE)
_CHILDREN = {table.name: {child.name for child in metadata.sorted_tables
                          for key in child.foreign_keys if key.column.table is table}
             for table in metadata.sorted_tables}


def _checks_not_run(line: str) -> set[str]:
    """The tables whose scans an ``INSERT`` plan shows but SQLite does not run: those whose foreign
    keys name the table inserted into (``SCAN outbox`` for a request) are scanned only while a
    constraint violation is outstanding (``OP_FkIfZero``): 0.015 ms per request inserted beside
    300,000 mails. (A table the ``INSERT`` also selects from is then not checked.)"""
    insert = _INSERT.match(line)
    return _CHILDREN.get(insert.group(1), set()) if insert else set()


def reads_statements(statement: str) -> bool:
    """Whether ``statement`` is one a plan is asked for (not DDL, PRAGMA or a transaction's edge)."""
    return statement.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE", "INSERT"))


def recorded(engine, calls: dict[str, Callable[[], object]]) -> list[tuple[str, str, object]]:
    """The statements a plan is asked for that each of ``calls`` (name -> function, run in that
    order) sends through ``engine``, as (name, statement, parameters)."""
    statements: list[tuple[str, str, object]] = []
    name = [""]

    def record(conn, cursor, statement, parameters, context, executemany):
        if reads_statements(statement):
            statements.append((name[0], statement, parameters))
    event.listen(engine, "before_cursor_execute", record)
    try:
        for name[0], call in calls.items():
            call()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return statements


def whole_table_reads(engine, statements: Iterable[tuple[str, str, object]]) -> list[str]:
    """Each of ``statements`` — (who sent it, SQL, parameters) — that reads a growing table whole,
    as "who: plan <<< statement"."""
    found = []
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        for who, statement, parameters in statements:
            found += [f"{who}: {detail} <<< {one_line(statement)[:300]}"
                      for detail in whole_reads(cursor, statement, parameters)]
        conn.rollback()
    return found
