"""SQLite's wake-up hints: sent once a transaction commits, never for a rollback, to every daemon."""

from __future__ import annotations

import os
import socket

import pytest
from sqlalchemy import text

from syncd.store import leadership, wakeup
from syncd.store.db import transaction


def test_a_commit_that_asked_for_it_wakes_a_listener(sqlite_engine):
    with leadership.listen(sqlite_engine) as listener:
        assert listener.active
        with transaction(sqlite_engine) as conn:
            leadership.notify(conn)
            assert listener.wait(0.05) == [], "nothing may wake anyone before the commit"
        assert listener.wait(2.0) == [""]


def test_a_rolled_back_transaction_wakes_nobody_then_or_later(sqlite_engine):
    with leadership.listen(sqlite_engine) as listener:
        with pytest.raises(RuntimeError):
            with transaction(sqlite_engine) as conn:
                leadership.notify(conn)
                raise RuntimeError("the decision failed")
        with transaction(sqlite_engine) as conn:       # the same pooled connection, reused
            conn.execute(text("select 1"))
        assert listener.wait(0.2) == []


def test_every_daemon_of_the_database_is_woken(sqlite_engine):
    with leadership.listen(sqlite_engine) as first, leadership.listen(sqlite_engine) as second:
        with transaction(sqlite_engine) as conn:
            leadership.notify(conn)
        assert first.wait(2.0) and second.wait(2.0)


def test_a_socket_left_by_a_killed_daemon_is_removed_by_the_next_sender(sqlite_engine):
    folder = wakeup.wake_folder(sqlite_engine)
    folder.mkdir(exist_ok=True)
    dead = folder / "killed.sock"
    orphan = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    orphan.bind(str(dead))
    orphan.close()                      # the file stays, nobody listens: as after kill -9
    assert wakeup.send(folder) == 0
    assert not dead.exists()


def test_a_closed_listener_removes_its_socket(sqlite_engine):
    with leadership.listen(sqlite_engine):
        pass
    assert [name for name in os.listdir(wakeup.wake_folder(sqlite_engine)) if name.endswith(".sock")] == []


def test_an_in_memory_database_has_no_wake_folder():
    from syncd.store.db import make_engine
    engine = make_engine("sqlite://")
    try:
        assert wakeup.wake_folder(engine) is None
    finally:
        engine.dispose()
