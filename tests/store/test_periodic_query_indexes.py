"""The periodic jobs' queries read what they look for, not every row ever written.

Apply's claim, the daemon's wake-up probe and the counts of `syncd status` and the metrics run
every few seconds; with a million requests of history they each walked ~850,000 applied rows
(~100–190 ms) until migration 0014. The accounts job's revoked memberships and the expiry job's
expiring ones read every membership until migration 0015, its accounts behind LDAP every account
until migration 0016; the lookups made per request and per page of the portal are 0017's (on
PostgreSQL here; on SQLite in tests/scenarios/test_frequent_queries_read_no_table_whole.py).
These tests ask each engine's own planner, on a database as production leaves it (SQLite: no
statistics, since nothing runs ANALYZE; PostgreSQL: analysed, as autovacuum does), which index
each query reads.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select, text

from syncd.store import accounts as account_store, grants, health, repo
from syncd.store.db import transaction
from syncd.store.queue import claim_request_rows
from syncd.store.tables import APPLY_BACKLOG, accounts, memberships, organisations, requests

from tests.plans import recorded
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


def _analyse(engine) -> None:
    """What autovacuum does on PostgreSQL; nothing, as in production, on SQLite."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))


def _statements(engine, run) -> list[tuple[str, object]]:
    """The statements ``run`` sends that a plan is asked for, with their parameters."""
    return [(statement, parameters) for _, statement, parameters in recorded(engine, {"run": run})]


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
    _analyse(engine)

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


def test_the_memberships_the_periodic_jobs_look_for_are_read_through_their_indexes(engine):
    people, roles = 2_000, 10
    with transaction(engine) as conn:
        conn.execute(insert(organisations), [{"code": "ORG", "name": "Org", "branch": "b", "updated_at": T0}])
        conn.execute(insert(accounts), [
            {"id": f"a{n}", "email": f"a{n}@example.org", "given_name": "A", "family_name": "B",
             "primary_organisation": "ORG", "internal": True, "status": "active", "created_at": T0,
             "updated_at": T0} for n in range(people)])
        # Held and in LDAP, a fifth with an expiry far ahead; three revoked still in LDAP; three expiring.
        conn.execute(insert(memberships), [
            {"account_id": f"a{n}", "role_key": f"role-{r}", "granted_at": T0, "applied_at": T0,
             "expires_at": T0 + timedelta(days=900) if n % 5 == 0 else None}
            for n in range(people) for r in range(roles)])
        conn.execute(memberships.update().where(memberships.c.account_id.in_(["a1", "a2", "a3"]),
                                                memberships.c.role_key == "role-0")
                     .values(revoked_at=T0, applied_at=None))
        conn.execute(memberships.update().where(memberships.c.account_id.in_(["a4", "a6", "a7"]),
                                                memberships.c.role_key == "role-1")
                     .values(expires_at=T0 + timedelta(days=3)))
    _analyse(engine)

    def job_queries() -> None:
        with transaction(engine, readonly=True) as conn:
            assert len(grants.removals_due(conn, T0)) == 3
            assert len(grants.expiring(conn, T0 + timedelta(days=30), excluding_roles=["role-9"])) == 3
    statements = _statements(engine, job_queries)
    assert len(statements) == 2, [s for s, _ in statements]
    for statement, parameters in statements:
        plan = _plan(engine, statement, parameters)
        wanted = "ix_memberships_removals_due" if "revoked_at IS NOT NULL" in statement else "ix_memberships_expiring"
        assert wanted in plan, f"{statement}\nread through:\n{plan}"


def test_the_accounts_behind_ldap_are_read_through_their_index_in_the_order_the_job_takes_them(engine):
    people = 3_000
    with transaction(engine) as conn:
        conn.execute(insert(organisations), [{"code": "ORG", "name": "Org", "branch": "b", "updated_at": T0}])
        conn.execute(insert(accounts), [
            {"id": f"a{n}", "email": f"a{n}@example.org", "given_name": "A", "family_name": "B",
             "primary_organisation": "ORG", "internal": True, "status": "active", "created_at": T0,
             "updated_at": T0 - timedelta(days=n % 30), "version": 2, "ldap_version": 2} for n in range(people)])
        behind = {"a5": {"ldap_version": 1, "updated_at": T0 - timedelta(minutes=5)},
                  "a6": {"ldap_version": None, "updated_at": T0 - timedelta(minutes=1)},
                  # its back-off ended before the others changed: it comes first
                  "a7": {"ldap_version": 1, "updated_at": T0 - timedelta(days=2),
                         "ldap_next_attempt_at": T0 - timedelta(minutes=9)},
                  "a8": {"ldap_version": 1, "ldap_next_attempt_at": T0 + timedelta(minutes=1)}}  # still backing off
        for account_id, values in behind.items():
            conn.execute(accounts.update().where(accounts.c.id == account_id).values(**values))
    _analyse(engine)

    def job_query() -> None:
        with transaction(engine, readonly=True) as conn:
            assert [a["id"] for a in account_store.due_for_ldap(conn, T0, 100)] == ["a7", "a5", "a6"]
    [(statement, parameters)] = _statements(engine, job_query)
    plan = _plan(engine, statement, parameters)
    assert "ix_accounts_ldap_due" in plan, f"{statement}\nread through:\n{plan}"


def test_on_postgresql_the_lookups_made_per_request_and_per_page_read_through_indexes(postgres_url):
    """PostgreSQL's side of tests/scenarios/test_frequent_queries_read_no_table_whole.py for the
    lookups of intake and the portal's pages: its plans depend on statistics, so on a few thousand
    rows, analysed."""
    from syncd.store import desk, passwords, queries
    from syncd.store.db import make_engine
    from syncd.store.tables import deciders, password_resets
    from tests.factories import mappings

    engine = make_engine(postgres_url)
    people, orgs = 4_000, 400     # organisations of ten people, a small part of the table as in production
    try:
        with transaction(engine) as conn:
            conn.execute(insert(organisations), [{"code": f"ORG{o}", "name": "Org", "branch": "b", "updated_at": T0}
                                                 for o in range(orgs)])
            conn.execute(insert(accounts), [
                {"id": f"a{n}", "email": f"A{n}@example.org", "given_name": "A", "family_name": f"B{n}",
                 "primary_organisation": f"ORG{n % orgs}", "internal": True, "status": "active", "created_at": T0,
                 "updated_at": T0, "version": 1, "ldap_version": 1} for n in range(people)])
            conn.execute(insert(deciders), [{"account_id": f"a{n}", "scope": "correspondent",
                                             "organisation_code": f"ORG{n % orgs}", "created_at": T0}
                                            for n in range(orgs)])
            ids = conn.execute(insert(requests).returning(requests.c.id), [
                {"kind": "habilitation", "submitted_at": T0, "role_key": f"role-{i % 2}", "status": "accepted",
                 "attempts": 0, "updated_at": T0, "account_id": f"a{i // 2}", "applied_at": T0}
                for i in range(2 * people)]).scalars().all()
            conn.execute(insert(memberships), [
                {"account_id": f"a{i // 2}", "role_key": f"role-{i % 2}", "granted_by_request": request_id,
                 "granted_at": T0, "applied_at": T0} for i, request_id in enumerate(ids)])
            conn.execute(insert(password_resets), [
                {"account_id": f"a{n}", "token_hash": f"h{n}", "created_at": T0, "expires_at": T0, "used_at": T0}
                for n in range(people)])
        _analyse(engine)

        def lookups() -> None:
            with transaction(engine) as conn:
                assert repo.account_by_email(conn, "a77@EXAMPLE.ORG").id == "a77"
                assert len(repo.current_deciders(conn, "ORG7")) == 1
                assert len(queries.request_history(conn, "a777", mappings(), now=T0)) == 2
                assert len(queries.contacts(conn, "a777").contacts) == 1
                assert len(desk.rights_held(conn, T0, organisations=["ORG7"])) == 2 * people // orgs
                passwords.password_set(conn, "a777", T0)
                conn.rollback()
        statements = _statements(engine, lookups)
        assert len(statements) >= 8, [s for s, _ in statements]
        growing = ("accounts", "memberships", "password_resets", "requests", "request_deciders")
        for statement, parameters in statements:
            plan = _plan(engine, statement, parameters)
            assert not any(f"Seq Scan on {table} " in plan for table in growing), f"{statement}\nread through:\n{plan}"
    finally:
        engine.dispose()


def test_on_sqlite_an_organisations_rights_of_one_application_are_read_by_role_and_person(sqlite_engine):
    """Not by every holder of the application's roles (128 ms at 300,000 memberships, 4 ms so): a
    search on the role alone is not a whole read, which the whole-read guard cannot tell apart."""
    from syncd.store import desk

    def read() -> None:
        with transaction(sqlite_engine, readonly=True) as conn:
            desk.rights_held(conn, T0, organisations=["ORG"], within=["role-1", "role-2"])
    [(statement, parameters)] = _statements(sqlite_engine, read)
    plan = _plan(sqlite_engine, statement, parameters)
    assert "ix_memberships_role_key_account_id_revoked_at (role_key=? AND account_id=?" in plan, plan


def test_on_sqlite_a_deciders_pending_requests_are_read_through_the_pending_ones(sqlite_engine):
    """Not through every request ever routed to the decider (a central administrator's desk would
    read the history): why request_deciders has no index on account_id alone (tables.py)."""
    from syncd.store import desk

    def read() -> None:
        with transaction(sqlite_engine, readonly=True) as conn:
            desk.pending_for(conn, "someone")
    [(statement, parameters)] = _statements(sqlite_engine, read)
    plan = _plan(sqlite_engine, statement, parameters)
    assert plan.startswith("SEARCH requests USING INDEX ix_requests_status"), plan
