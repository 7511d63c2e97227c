"""What runs often reads what it looks for, never a table whole: an idle daemon's frequent jobs,
a metrics scrape, and the lookups intake and the portal's screens make on each call.

Migrations 0014–0016 each fixed one query that a frequent job ran over every row ever written
(the apply backlog among a million requests of history: ~100–190 ms every few seconds). Those
were found by chance, reading the queries of a whole daemon pass one by one; this test reads them
all, so that the next one fails here instead of in production a year later. It runs every job of
the daemon's short intervals (a minute or less by default) and the wake-up probe on a database in
its steady state (requests decided, applied and pending, mails sent), and asks SQLite's planner,
without statistics as production leaves it (nothing in syncd runs ``ANALYZE``), how it reads each
statement; and the same for the lookups made once per request taken in or per page of the
portal (found whole-table reads the same way: by e-mail whatever its case, the deciders, the
history's ended rights, the contacts, the forgotten-password form's limit, a password set, the
rights held in an organisation, an account deleted). SQLite only: its plans without statistics do not depend on how many rows there are,
where PostgreSQL's do (tests/store/test_periodic_query_indexes.py asks both, query by query).
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from syncd import operator
from syncd.core.model import Verdict
from syncd.jobs.decisions import decide_request
from syncd.store import accounts, desk, passwords, queries, repo
from syncd.store.db import transaction
from syncd.store.tables import metadata
from syncd.web import shared_limits
from syncd.web.metrics import DatabaseCollector
from tests.scenarios.helpers import CORRESPONDENT, REQUESTER, habilitation, people

# Tables that stay small whatever the history: read whole, they cost nothing that grows.
SMALL_TABLES = {
    "organisations": "one row per organisation of the mappings",
    "deciders": "one row per correspondent or administrator",
    "review_campaigns": "one row per access review",
    "job_runs": "one row per job and daemon",
}
# What the daemon runs each minute or more often, at its default intervals (syncd.settings.JobSettings).
FREQUENT_JOBS = ("intake", "tacit", "remind", "expiry", "reviews", "apply", "accounts", "deliver", "audit_seal")
# Whole reads accepted, each with its reason and cost (docs/operations.md, section 12).
ACCEPTED_WHOLE_READS = {
    # syncd_requests{status}: a count of every request ever kept, by status, is a read of them all
    # (~55 ms SQLite, ~110 ms PostgreSQL per million, at each scrape of the web process).
    "SELECT requests.status, count(*) AS count_1 FROM requests GROUP BY requests.status",
}
_SCAN = re.compile(r"^SCAN (\w+)(?: USING (?:COVERING )?INDEX (\w+))?")


def _partial_indexes() -> set[str]:
    return {index.name for table in metadata.sorted_tables for index in table.indexes
            if index.dialect_options["sqlite"].get("where") is not None}


def _whole_table_reads(engine, statements: list[tuple[str, str, object]]) -> list[str]:
    """Each statement that reads a table that grows whole, or a whole index of one (a partial
    index, of the few rows wanted, is not whole), as "job: plan <<< statement"."""
    partial = _partial_indexes()
    found = []
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        for job, statement, parameters in statements:
            if " ".join(statement.split()) in ACCEPTED_WHOLE_READS:
                continue
            if isinstance(parameters, list):       # executemany: the plan is the same for every row
                parameters = parameters[0] if parameters else ()
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            for detail in (row[-1] for row in cursor.fetchall()):
                scan = _SCAN.match(detail)
                if scan and scan.group(1) in {t.name for t in metadata.sorted_tables} \
                        and scan.group(1) not in SMALL_TABLES and scan.group(2) not in partial:
                    found.append(f"{job}: {detail} <<< {' '.join(statement.split())[:300]}")
        conn.rollback()
    return found


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_jobs_an_idle_daemon_runs_every_few_seconds_read_no_growing_table_whole(rt, daemon, clock):
    people(rt)
    decided = habilitation(rt)
    habilitation(rt, role="accords-locaux-lecture")     # left pending, not yet due
    daemon.run_job("intake")
    decide_request(rt, decided, CORRESPONDENT, Verdict.ACCEPT)
    daemon.run_once()       # applied, mails sent, audit sealed
    clock.advance(minutes=1)
    daemon.run_once()       # nothing left to do: the steady state

    statements: list[tuple[str, str, object]] = []
    job = ["probe"]

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE", "INSERT")):
            statements.append((job[0], statement, parameters))
    event.listen(rt.engine, "before_cursor_execute", record)
    try:
        daemon._probe(list(daemon.jobs))
        job[0] = "metrics"
        list(DatabaseCollector(lambda: rt.engine, rt.clock).collect())     # a Prometheus scrape
        for name in FREQUENT_JOBS:
            job[0] = name
            assert daemon.run_job(name) == 0, f"{name} found work: the database is not idle"
    finally:
        event.remove(rt.engine, "before_cursor_execute", record)

    assert {j for j, _, _ in statements} >= {"probe", "metrics", "intake", "apply", "accounts", "deliver", "tacit"}
    assert _whole_table_reads(rt.engine, statements) == []


def _recorded(engine, calls: dict) -> list[tuple[str, str, object]]:
    """The statements each of ``calls`` (name -> function) sends, as (name, statement, parameters)."""
    statements: list[tuple[str, str, object]] = []
    name = [""]

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append((name[0], statement, parameters))
    event.listen(engine, "before_cursor_execute", record)
    try:
        for name[0], call in calls.items():
            call()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return statements


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_lookups_of_intake_and_of_the_portals_screens_read_no_growing_table_whole(rt, daemon, clock):
    ids = people(rt)
    decided = habilitation(rt)
    daemon.run_job("intake")
    decide_request(rt, decided, CORRESPONDENT, Verdict.ACCEPT)
    daemon.run_once()       # applied: the history has a right granted, its membership
    requester = ids["requester"]
    unwritten = operator.add_account(rt, "new.person@lassuranceretraite.fr", "New", "Person", "CARSAT-RA")

    def in_transaction(work):
        def run():
            with transaction(rt.engine) as conn:
                work(conn)
        return run
    calls = {
        "account by e-mail": in_transaction(lambda conn: repo.account_by_email(conn, REQUESTER.upper())),
        "deciders": in_transaction(lambda conn: repo.current_deciders(conn)),
        "deciders of an organisation": in_transaction(lambda conn: repo.current_deciders(conn, "CARSAT-RA")),
        "history": in_transaction(lambda conn: queries.request_history(conn, requester, rt.mappings, now=clock())),
        "contacts": in_transaction(lambda conn: queries.contacts(conn, requester)),
        "forgotten-password limit": in_transaction(
            lambda conn: shared_limits.take(conn, "forgot:a:someone", 3, 3600, clock())),
        "password set": in_transaction(lambda conn: passwords.password_set(conn, requester, clock())),
        "rights held in an organisation": in_transaction(
            lambda conn: desk.rights_held(conn, clock(), organisations=["CARSAT-RA"])),
        # an account request refused before its entry was written: its foreign keys are checked
        "account deleted": in_transaction(lambda conn: accounts.remove(conn, unwritten)),
    }
    statements = _recorded(rt.engine, calls)
    assert {name for name, _, _ in statements} == set(calls)
    assert any("memberships.granted_by_request IN" in s for _, s, _ in statements), "the history read no right"
    assert _whole_table_reads(rt.engine, statements) == []


def test_the_check_sees_a_whole_table_read(sqlite_engine):
    statements = [("apply", "SELECT id FROM requests WHERE applied_at IS NULL", ()),
                  ("apply", "SELECT id FROM requests WHERE status = 'accepted' AND applied_at IS NULL "
                            "AND status IN ('accepted', 'accepted_tacitly')", ()),
                  ("provision", "SELECT code FROM organisations", ())]
    found = _whole_table_reads(sqlite_engine, statements)
    assert len(found) == 1 and found[0].startswith("apply: SCAN requests <<< SELECT id FROM requests WHERE applied_at")
