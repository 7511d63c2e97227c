"""Singleton jobs (advisory locks) and LISTEN/NOTIFY wake-up hints, on PostgreSQL and SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from syncd.errors import StoreUnavailable
from syncd.store.db import make_engine, transaction
from syncd.store.leadership import WAKE_CHANNEL, listen, lock_key, notify, singleton

REPO = Path(__file__).resolve().parents[2]


def holders(engine: Engine) -> dict[int, str]:
    """Advisory-lock key → ``application_name`` of its holder (PostgreSQL; {} on SQLite)."""
    if engine.dialect.name != "postgresql":
        return {}
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT ((l.classid::bigint << 32) | l.objid::bigint) AS key, a.application_name "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"))
        return {int(k): n for k, n in rows}


@pytest.fixture
def pg(postgres_url):
    engines = []

    def make():
        e = make_engine(postgres_url)
        engines.append(e)
        return e

    yield make
    for e in engines:
        e.dispose()


def _wait_for(predicate, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def test_the_lock_key_is_stable_and_differs_per_job():
    assert lock_key("tacit") == lock_key("tacit")
    assert lock_key("tacit") != lock_key("remind")
    assert -2**63 <= lock_key("tacit") < 2**63


# -- SQLite: one writer, always the leader ------------------------------------------------------

def test_on_sqlite_every_worker_may_run_and_the_hints_are_no_ops(sqlite_engine):
    with singleton(sqlite_engine, "tacit", "w1") as a, singleton(sqlite_engine, "tacit", "w2") as b:
        assert a and b and a.still_held()
    with transaction(sqlite_engine) as conn:
        notify(conn, WAKE_CHANNEL, "apply")
    with listen(sqlite_engine) as listener:
        started = time.monotonic()
        assert listener.wait(0.1) == []
        assert time.monotonic() - started >= 0.09
    assert holders(sqlite_engine) == {}


# -- PostgreSQL: advisory locks -----------------------------------------------------------------

@pytest.mark.postgres
def test_of_two_workers_only_one_gets_the_lock_and_the_other_gets_it_after(pg):
    one, two = pg(), pg()
    with singleton(one, "tacit", "host-a:1") as a:
        assert a
        with singleton(two, "tacit", "host-b:2") as b:
            assert not b and not b.still_held()
        with singleton(two, "remind", "host-b:2") as other_job:
            assert other_job, "another job's lock is independent"
        assert a.still_held()
        assert any("host-a:1 tacit" in name for name in holders(two).values())
    with singleton(two, "tacit", "host-b:2") as b:
        assert b


@pytest.mark.postgres
def test_the_same_engine_cannot_take_the_lock_twice_and_the_pool_keeps_no_lock(pg):
    engine = pg()
    with singleton(engine, "provision", "w") as a:
        with singleton(engine, "provision", "w") as again:
            assert a and not again, "a second session of the same process is refused too"
    assert lock_key("provision") not in holders(engine), "the lock went back with the block"
    with engine.connect() as conn:   # the pooled connection the lock was taken on
        assert conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                 "AND pid = pg_backend_pid()")).scalar() == 0


@pytest.mark.postgres
def test_a_holder_whose_session_is_killed_releases_the_lock(pg):
    one, two = pg(), pg()
    with singleton(one, "accounts", "victim") as a:
        assert a
        with two.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE application_name LIKE 'syncd victim accounts%'"))
            conn.commit()
        assert _wait_for(lambda: not a.still_held(), timeout=5)
        with singleton(two, "accounts", "survivor") as b:
            assert b, "the lock died with the session"
    # leaving the block with a dead session is quiet and leaks nothing
    with singleton(one, "accounts", "victim") as again:
        assert again


@pytest.mark.postgres
def test_a_crashed_holder_process_releases_the_lock(pg, postgres_url):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from syncd.store.db import make_engine
        from syncd.store.leadership import singleton
        with singleton(make_engine({postgres_url!r}), "reroute", "doomed") as leader:
            print("held" if leader else "busy", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = ""
        while line not in ("held", "busy"):   # (log lines may come first)
            line = proc.stdout.readline().strip()
            assert line or proc.poll() is None, "the holder process died"
        assert line == "held"
        with singleton(pg(), "reroute", "standby") as b:
            assert not b
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        started = time.monotonic()

        def free() -> bool:
            with singleton(pg(), "reroute", "standby") as leader:
                return bool(leader)

        assert _wait_for(free, timeout=10)
        assert time.monotonic() - started < 5, "the server noticed the closed socket at once"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.postgres
def test_an_unreachable_server_is_a_temporary_error():
    from syncd.devslapd import free_port
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test")
    with pytest.raises(StoreUnavailable):
        with singleton(engine, "tacit", "w"):
            pass


# -- PostgreSQL: LISTEN / NOTIFY ----------------------------------------------------------------

@pytest.mark.postgres
def test_a_notification_wakes_the_listener_when_the_transaction_commits(pg):
    engine = pg()
    with listen(engine, WAKE_CHANNEL) as listener:
        assert listener.wait(0.05) == []
        with transaction(engine) as conn:
            notify(conn, WAKE_CHANNEL, "apply")
            assert listener.wait(0.2) == [], "nothing before the commit"
        assert listener.wait(2) == ["apply"]
        try:
            with transaction(engine) as conn:
                notify(conn, WAKE_CHANNEL, "rolled-back")
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        assert listener.wait(0.3) == []


@pytest.mark.postgres
def test_wait_returns_as_soon_as_a_hint_arrives(pg):
    engine = pg()
    with listen(engine) as listener:
        def later():
            time.sleep(0.3)
            with transaction(engine) as conn:
                notify(conn, payload="intake")
                notify(conn, payload="deliver")
        threading.Thread(target=later).start()
        started = time.monotonic()
        got = listener.wait(10)
        assert time.monotonic() - started < 3
        got += listener.wait(0.2)
        assert sorted(got) == ["deliver", "intake"]


@pytest.mark.postgres
def test_a_listener_whose_session_died_raises_once_then_reconnects(pg):
    engine = pg()
    with listen(engine, "syncd_test_reconnect") as listener:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity s "
                              "WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN syncd_test_reconnect%'"))
            conn.commit()
        with pytest.raises(StoreUnavailable):
            for _ in range(20):
                listener.wait(0.1)
        assert listener.wait(0.05) == []        # reconnected and listening again
        with transaction(engine) as conn:
            notify(conn, "syncd_test_reconnect", "x")
        assert listener.wait(2) == ["x"]


def test_channel_names_are_checked():
    from syncd.store.leadership import _check_channel
    for bad in ("", "Syncd", "a-b", "x; DROP TABLE requests", "a" * 64):
        with pytest.raises(ValueError):
            _check_channel(bad)
