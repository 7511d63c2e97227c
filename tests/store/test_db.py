"""Engines, transactions and error translation at the store's boundary."""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, insert, make_url, select, text, update
from sqlalchemy.pool import NullPool

from syncd.errors import ConfigError, StoreRejected, StoreUnavailable
from syncd.store import db
from syncd.store.db import make_engine, transaction, translate_errors
from syncd.store.tables import accounts, organisations, requests

from tests.store.rows import T0, insert_requests

PARIS = timezone(timedelta(hours=2))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- SQLite set-up


def test_a_sqlite_engine_uses_wal_foreign_keys_and_a_busy_timeout(sqlite_engine):
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000


def test_a_sqlite_transaction_takes_the_write_lock_from_its_start(sqlite_engine):
    statements = []

    from sqlalchemy import event

    @event.listens_for(sqlite_engine, "checkout")
    def record(dbapi_connection, *args):   # what the driver runs (BEGIN is sent to it directly)
        dbapi_connection.set_trace_callback(statements.append)

    with transaction(sqlite_engine) as conn:
        conn.execute(select(requests.c.id))
    with transaction(sqlite_engine, readonly=True) as conn:
        conn.execute(select(requests.c.id))
    assert [s for s in statements if s.startswith("BEGIN")] == ["BEGIN IMMEDIATE", "BEGIN"]


def test_two_sqlite_writers_that_read_first_both_succeed_one_after_the_other(sqlite_engine):
    """With a deferred BEGIN the second would fail half-way with "database is locked"."""
    with transaction(sqlite_engine) as conn:
        insert_requests(conn, 1)
    url = sqlite_engine.url
    engines = [make_engine(url), make_engine(url)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def read_then_write(engine):
        try:
            barrier.wait()
            with transaction(engine) as conn:
                attempts = conn.execute(select(requests.c.attempts)).scalar_one()
                time.sleep(0.2)
                conn.execute(update(requests).values(attempts=attempts + 1))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=read_then_write, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for e in engines:
        e.dispose()
    assert errors == []
    with transaction(sqlite_engine, readonly=True) as conn:
        assert conn.execute(select(requests.c.attempts)).scalar_one() == 2  # no lost update


def test_a_sqlite_write_lock_held_past_the_busy_timeout_raises_store_unavailable(sqlite_engine):
    impatient = make_engine(sqlite_engine.url, sqlite_busy_timeout=0.1)
    try:
        with transaction(sqlite_engine) as holder:
            insert_requests(holder, 1)
            with pytest.raises(StoreUnavailable, match="locked"):
                with transaction(impatient) as conn:
                    insert_requests(conn, 1)
    finally:
        impatient.dispose()


def test_a_sqlite_reader_does_not_wait_for_a_writer(sqlite_engine):
    impatient = make_engine(sqlite_engine.url, sqlite_busy_timeout=0.1)
    try:
        with transaction(sqlite_engine) as holder:
            insert_requests(holder, 1)
            with transaction(impatient, readonly=True) as conn:
                assert conn.execute(select(requests.c.id)).all() == []  # not committed yet
    finally:
        impatient.dispose()


# --------------------------------------------------------------------------- transactions


def test_a_transaction_commits_when_its_block_succeeds(engine):
    with transaction(engine) as conn:
        insert_requests(conn, 2)
    with transaction(engine, readonly=True) as conn:
        assert len(conn.execute(select(requests.c.id)).all()) == 2


def test_a_transaction_rolls_back_when_its_block_fails(engine):
    with pytest.raises(RuntimeError):
        with transaction(engine) as conn:
            insert_requests(conn, 2)
            raise RuntimeError("boom")
    with transaction(engine, readonly=True) as conn:
        assert conn.execute(select(requests.c.id)).all() == []


def test_times_come_back_timezone_aware_in_utc(engine):
    in_paris = datetime(2026, 11, 2, 11, 30, 0, 123456, tzinfo=PARIS)
    with transaction(engine) as conn:
        (rid,) = insert_requests(conn, 1, submitted_at=in_paris)
        submitted = conn.execute(select(requests.c.submitted_at).where(requests.c.id == rid)).scalar_one()
    assert submitted == in_paris
    assert submitted.tzinfo == timezone.utc
    assert submitted == datetime(2026, 11, 2, 9, 30, 0, 123456, tzinfo=timezone.utc)


def test_times_compare_correctly_in_sql_whatever_offset_they_were_given_in(engine):
    with transaction(engine) as conn:
        (early,) = insert_requests(conn, 1, submitted_at=datetime(2026, 11, 2, 10, 0, tzinfo=PARIS))  # 08:00Z
        (late,) = insert_requests(conn, 1, submitted_at=datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc))
        found = conn.execute(
            select(requests.c.id).where(requests.c.submitted_at < datetime(2026, 11, 2, 8, 30, tzinfo=timezone.utc))
        ).scalars().all()
    assert found == [early]


def test_a_naive_datetime_is_refused(engine):
    with pytest.raises(StoreRejected, match="naive"):
        with transaction(engine) as conn:
            insert_requests(conn, 1, submitted_at=datetime(2026, 11, 2, 9, 30))


# --------------------------------------------------------------------------- error translation


@pytest.mark.postgres
def test_an_unreachable_postgresql_raises_store_unavailable():
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/test")
    try:
        with pytest.raises(StoreUnavailable):
            with transaction(engine) as conn:
                conn.execute(text("select 1"))
    finally:
        engine.dispose()


def test_a_duplicate_portal_ref_raises_store_rejected(engine):
    with transaction(engine) as conn:
        insert_requests(conn, 1, portal_ref="portal-42")
    with pytest.raises(StoreRejected) as caught:
        with transaction(engine) as conn:
            insert_requests(conn, 1, portal_ref="portal-42", email="secret.person@example.org")
    assert "secret.person" not in str(caught.value)  # parameters (personal data) stay out of messages


def test_a_request_naming_an_unknown_account_raises_store_rejected(engine):
    with pytest.raises(StoreRejected):
        with transaction(engine) as conn:
            insert_requests(conn, 1, account_id="no-such-account")


def test_an_unknown_status_raises_store_rejected(engine):
    with pytest.raises(StoreRejected):
        with transaction(engine) as conn:
            insert_requests(conn, 1, status="lost")


def test_deleting_an_organisation_still_referenced_raises_store_rejected(engine):
    with transaction(engine) as conn:
        conn.execute(insert(organisations).values(code="CPAM-75", name="CPAM de Paris", branch="maladie",
                                                   updated_at=T0))
        conn.execute(insert(accounts).values(
            id="a1", email="a1@example.org", given_name="A", family_name="One",
            primary_organisation="CPAM-75", internal=True, created_at=T0, updated_at=T0))
    with pytest.raises(StoreRejected):
        with transaction(engine) as conn:
            conn.execute(organisations.delete())


def test_a_missing_table_raises_store_rejected_not_unavailable(engine):
    with pytest.raises(StoreRejected):
        with transaction(engine) as conn:
            conn.execute(text("select * from no_such_table"))


@pytest.mark.postgres
def test_a_postgresql_lock_timeout_raises_store_unavailable(postgres_url):
    engine = make_engine(postgres_url)
    try:
        with transaction(engine) as conn:
            (rid,) = insert_requests(conn, 1)
        with transaction(engine) as holder:
            holder.execute(update(requests).where(requests.c.id == rid).values(attempts=1))
            with pytest.raises(StoreUnavailable, match="55P03"):
                with transaction(engine) as conn:
                    conn.execute(text("SET LOCAL lock_timeout = '50ms'"))
                    conn.execute(update(requests).where(requests.c.id == rid).values(attempts=2))
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("options", [None, "-c DateStyle=SQL,DMY", "-c DateStyle=German -c lock_timeout=2s"])
def test_times_read_back_whatever_date_style_the_server_or_the_url_asks_for(postgres_url, options):
    url = make_url(postgres_url)
    engine = make_engine(url.update_query_dict({"options": options}) if options else url)
    try:
        with transaction(engine) as conn:
            (rid,) = insert_requests(conn, 1)
            submitted = conn.execute(select(requests.c.submitted_at).where(requests.c.id == rid)).scalar_one()
            style = conn.execute(text("SHOW DateStyle")).scalar_one()
            timeout = conn.execute(text("SHOW lock_timeout")).scalar_one()
    finally:
        engine.dispose()
    assert submitted == T0
    assert style.startswith("ISO")
    # The URL's options replace syncd's lock timeout; only the date style is always added.
    assert timeout == {None: "30s", "-c DateStyle=SQL,DMY": "0"}.get(options, "2s")


def _backend_pid(engine) -> int:
    with transaction(engine) as conn:
        return conn.execute(text("select pg_backend_pid()")).scalar_one()


def _terminate(url: str, pid: int) -> None:
    killer = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with killer.connect() as conn:
            assert conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        killer.dispose()


@pytest.fixture
def pg_engine_pinging_after(postgres_url, monkeypatch):
    """A PostgreSQL engine whose pool pings connections idle for more than the given seconds."""
    made = []

    def make(idle_seconds: float):
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", idle_seconds)
        engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.dispose()


@pytest.mark.postgres
def test_a_pooled_connection_killed_while_idle_is_replaced_before_use(pg_engine_pinging_after, postgres_url):
    engine = pg_engine_pinging_after(0.05)
    first = _backend_pid(engine)
    _terminate(postgres_url, first)
    time.sleep(0.2)
    assert _backend_pid(engine) != first      # no error reached the caller


@pytest.mark.postgres
def test_a_connection_in_steady_use_is_not_pinged_but_one_left_idle_is(pg_engine_pinging_after, monkeypatch):
    engine = pg_engine_pinging_after(1.0)   # a pause of a second between two uses would be a stalled machine
    pings = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda dbapi_conn: pings.append(1) or real_ping(dbapi_conn))
    for _ in range(20):
        _backend_pid(engine)
    assert pings == []
    time.sleep(1.3)
    _backend_pid(engine)
    assert pings == [1]


@pytest.mark.postgres
def test_a_connection_killed_right_after_use_fails_once_as_temporary_and_the_pool_recovers(
        pg_engine_pinging_after, postgres_url):
    engine = pg_engine_pinging_after(60)
    first = _backend_pid(engine)
    _terminate(postgres_url, first)
    with pytest.raises(StoreUnavailable):
        _backend_pid(engine)
    assert _backend_pid(engine) != first


@pytest.mark.postgres
def test_after_a_connection_died_even_one_used_a_moment_ago_is_pinged(pg_engine_pinging_after, postgres_url):
    engine = pg_engine_pinging_after(60)
    _terminate(postgres_url, _backend_pid(engine))
    with pytest.raises(StoreUnavailable):
        _backend_pid(engine)
    # The server is in trouble: the replacement dies too, right after use; this time the ping finds it.
    second = _backend_pid(engine)
    _terminate(postgres_url, second)
    assert _backend_pid(engine) != second


def test_translate_errors_also_works_as_a_decorator(engine):
    @translate_errors()
    def broken():
        with engine.connect() as conn:
            conn.execute(text("select * from no_such_table"))

    with pytest.raises(StoreRejected):
        broken()


def test_translate_errors_leaves_other_exceptions_alone():
    with pytest.raises(KeyError):
        with translate_errors():
            raise KeyError("x")


@pytest.mark.parametrize("url", ["not a url", "mysql://u@h/db"])
def test_an_unusable_database_url_is_a_config_error(url):
    with pytest.raises(ConfigError):
        make_engine(url)


def test_a_plain_postgresql_url_gets_the_psycopg_driver():
    engine = make_engine("postgresql://postgres@127.0.0.1:5432/test")
    try:
        assert engine.url.drivername == "postgresql+psycopg"
    finally:
        engine.dispose()

