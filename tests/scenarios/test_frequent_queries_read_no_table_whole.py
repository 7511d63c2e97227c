"""What runs often reads what it looks for, never a table whole: an idle daemon's frequent jobs,
a metrics scrape, and the lookups intake and the portal's screens make on each call.

Migrations 0014–0016 each fixed a query that a frequent job ran over every row ever written (the
apply backlog among a million requests of history: ~100–190 ms every few seconds), found by
reading one daemon pass's queries one by one; 0017 fixed the lookups made per request taken in
and per page of the portal that ``tests.plan_survey`` found over the web and scenario tests (an
account by e-mail whatever its case, the deciders, a history's ended rights, the contacts, the
forgotten-password form's limit, a password set, the rights held in an organisation, deleting an
account). These tests keep them fixed: they run the daemon's jobs of a minute's interval or less
and the wake-up probe on a database in its steady state (requests decided, applied and pending,
mails sent), then those lookups, and ask SQLite's planner, without statistics as production
leaves it, how it reads each statement (``tests.plans``). SQLite only: its plans without
statistics do not depend on how many rows there are, where PostgreSQL's do
(tests/store/test_periodic_query_indexes.py asks both, query by query).
"""

from __future__ import annotations

import pytest

from syncd import operator
from syncd.core.model import Verdict
from syncd.jobs.decisions import decide_request
from syncd.store import accounts, desk, passwords, queries, repo
from syncd.store.db import transaction
from syncd.web import shared_limits
from syncd.web.metrics import DatabaseCollector
from tests.plans import recorded, whole_table_reads
from tests.scenarios.helpers import CORRESPONDENT, REQUESTER, habilitation, people

# What the daemon runs each minute or more often, at its default intervals (syncd.settings.JobSettings).
FREQUENT_JOBS = ("intake", "tacit", "remind", "expiry", "reviews", "apply", "accounts", "deliver", "audit_seal")


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

    def idle(name):
        def run():
            done = daemon.run_job(name)
            assert done == 0, f"{name} did not run idle ({done} items; None: it failed)"
        return run
    statements = recorded(rt.engine, {
        "probe": lambda: daemon._probe(list(daemon.jobs)),
        "metrics": lambda: list(DatabaseCollector(lambda: rt.engine, rt.clock).collect()),   # a scrape
        **{name: idle(name) for name in FREQUENT_JOBS}})

    assert {j for j, _, _ in statements} >= {"probe", "metrics", "intake", "apply", "accounts", "deliver", "tacit"}
    assert whole_table_reads(rt.engine, statements) == []


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
    }
    statements = recorded(rt.engine, calls)
    assert {name for name, _, _ in statements} == set(calls)
    assert any("memberships.granted_by_request IN" in s for _, s, _ in statements), "the history read no right"
    assert whole_table_reads(rt.engine, statements) == []

    # An account request refused before its entry was written: the account is deleted, its
    # foreign keys checked; all through indexes but the routings' (tables.py says why).
    deleted = recorded(rt.engine, {"account deleted": in_transaction(lambda conn: accounts.remove(conn, unwritten))})
    assert [r.split(" <<< ")[0] for r in whole_table_reads(rt.engine, deleted)] == [
        "account deleted: SCAN request_deciders"]


def test_the_check_sees_a_whole_table_read_and_not_the_partial_index_a_small_table_or_an_insert(sqlite_engine):
    statements = [("apply", "SELECT id FROM requests WHERE applied_at IS NULL", ()),
                  ("apply", "SELECT id FROM requests WHERE status = 'accepted' AND applied_at IS NULL "
                            "AND status IN ('accepted', 'accepted_tacitly')", ()),
                  ("provision", "SELECT code FROM organisations", ()),
                  # its plan shows a scan of the mails (their foreign key), which does not run
                  ("portal", "INSERT INTO requests (kind, submitted_at, updated_at) VALUES ('habilitation', ?, ?)",
                   ("2026-01-01", "2026-01-01")),
                  ("retention", "INSERT INTO requests (kind, submitted_at, updated_at) "
                                "SELECT kind, submitted_at, updated_at FROM requests WHERE email = ?", ("x",))]
    found = whole_table_reads(sqlite_engine, statements)
    assert [f.split(" <<< ")[0] for f in found] == ["apply: SCAN requests", "retention: SCAN requests"]
