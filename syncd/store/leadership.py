"""Singleton jobs and wake-up hints when several daemons share one PostgreSQL database.

Claim-based jobs (intake, apply, delivery) are safe with any number of daemons: rows are
claimed with leases (``syncd.store.queue``). Sweeps that scan the whole table (tacit
acceptance, reminders, re-routing, provisioning, account sync) are safe too, but wasteful
and noisy when every daemon runs them at once; ``singleton`` lets one daemon at a time run
them.

``singleton(engine, name, worker_id)`` — a context manager yielding a ``Leadership``, true
when this worker may run the job named ``name`` now:

* **PostgreSQL**: ``pg_try_advisory_lock(key)`` on a connection held (checked out of the
  engine's pool, in autocommit: no transaction stays open) for the duration of the block,
  ``pg_advisory_unlock(key)`` at the end. The key is a stable 64-bit hash of
  ``"syncd:" + name``. The lock belongs to the server session, so a holder that crashes,
  is killed or loses its connection releases it at once (the server sees the socket close);
  a holder whose *host* vanishes releases it when the server's TCP keepalive gives up, which
  ``ttl`` bounds (``tcp_keepalives_*`` of that session). While it holds the lock, the
  session's ``application_name`` names the worker and the job, so
  ``SELECT application_name FROM pg_stat_activity JOIN pg_locks USING (pid) WHERE
  locktype = 'advisory'`` shows who runs what.
* **SQLite**: always true. One SQLite file has one writer host; daemons on it take turns on
  its write lock anyway.

``listen(engine, channel)`` / ``notify(conn, channel, payload)`` — PostgreSQL
``LISTEN`` / ``NOTIFY`` as a *wake-up hint*. A ``notify`` in a transaction is delivered
when it commits (never for a rollback). ``Listener.wait(timeout)`` returns the payloads
received (``[]`` after ``timeout`` with nothing). Polling stays the guarantee: a hint can be
lost (the listener was reconnecting), so a daemon still polls, just less often. On SQLite
the same calls use a datagram socket per daemon beside the database file (``wakeup``): a
``notify`` inside ``db.transaction`` wakes every listener once the commit is done.

Errors are translated like the rest of the store (``StoreUnavailable`` when the server is
down: the caller's backoff decides).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from syncd.store import wakeup
from syncd.store.db import translate_errors

log = structlog.get_logger(__name__)

__all__ = ["singleton", "Leadership", "lock_key", "listen", "Listener", "notify", "WAKE_CHANNEL"]

WAKE_CHANNEL = "syncd_wake"
_CHANNEL_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DEFAULT_TTL = 60.0


def lock_key(name: str) -> int:
    """The advisory-lock key of job ``name``: a stable signed 64-bit integer."""
    digest = hashlib.sha256(f"syncd:{name}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class Leadership:
    """What ``singleton`` yields: true when this worker holds the job's lock."""

    name: str
    worker_id: str
    acquired: bool
    key: int | None = None
    _conn: Connection | None = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return self.acquired

    def still_held(self) -> bool:
        """Whether the lock is still ours (False if the session died: someone else may run).

        Long jobs may check between batches and stop early when it is not.
        """
        if not self.acquired:
            return False
        if self._conn is None:   # SQLite: one writer, nothing to lose
            return True
        try:
            with translate_errors():
                return bool(self._conn.execute(text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND objsubid = 1 "
                    "AND ((classid::bigint << 32) | objid::bigint) = :key)"), {"key": self.key}).scalar())
        except Exception:  # noqa: BLE001 - a dead session holds nothing
            return False


def _keepalive_settings(ttl: float) -> dict[str, int]:
    # Idle for a third of ttl, then 4 probes spread over the rest: a vanished host is noticed
    # by the server within about ttl seconds, and its lock released.
    ttl = max(ttl, 4.0)
    idle = max(1, int(ttl / 3))
    interval = max(1, int((ttl - idle) / 4))
    return {"tcp_keepalives_idle": idle, "tcp_keepalives_interval": interval, "tcp_keepalives_count": 4}


@contextmanager
def singleton(engine: Engine, name: str, worker_id: str, ttl: float = DEFAULT_TTL) -> Iterator[Leadership]:
    """Whether this worker may run the singleton job ``name`` now (see the module docstring).

        with singleton(rt.engine, "tacit", rt.worker_id) as leader:
            if leader:
                tacit.sweep(rt)

    The lock is held until the block ends; the block runs either way (check the value).
    Raises ``StoreUnavailable`` when the database cannot be reached.
    """
    if not name:
        raise ValueError("a singleton job needs a name")
    if engine.dialect.name != "postgresql":
        yield Leadership(name, worker_id, True)
        return
    key = lock_key(name)
    with translate_errors():
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    leader = Leadership(name, worker_id, False, key, conn)
    try:
        with translate_errors():
            for setting, value in _keepalive_settings(ttl).items():
                conn.execute(text(f"SET {setting} = {int(value)}"))
            conn.execute(text("SELECT set_config('application_name', :n, false)"),
                         {"n": f"syncd {worker_id} {name}"[:63]})
            leader.acquired = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
    except BaseException:
        _discard(conn)
        raise
    if not leader.acquired:
        log.debug("singleton_busy", job=name, worker=worker_id)
        leader._conn = None
        _return(conn)
        yield leader
        return
    log.debug("singleton_acquired", job=name, worker=worker_id)
    try:
        yield leader
    finally:
        _release(conn, leader)


def _release(conn: Connection, leader: Leadership) -> None:
    try:
        with translate_errors():
            released = bool(conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": leader.key}).scalar())
    except Exception as exc:  # noqa: BLE001 - the session is gone, and the lock with it
        log.info("singleton_session_lost", job=leader.name, error=str(exc))
        released = False
    leader.acquired = False
    if released:
        _return(conn)
    else:
        _discard(conn)   # never hand a pooled connection that may hold the lock to someone else


def _return(conn: Connection) -> None:
    try:
        for setting in ("application_name", "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count"):
            conn.execute(text(f"RESET {setting}"))
        conn.close()
    except Exception:  # noqa: BLE001
        _discard(conn)


def _discard(conn: Connection) -> None:
    with suppress(Exception):
        conn.invalidate()
    with suppress(Exception):
        conn.close()


# --------------------------------------------------------------------------- LISTEN / NOTIFY


def _check_channel(channel: str) -> str:
    if not _CHANNEL_RE.match(channel or ""):
        raise ValueError(f"channel {channel!r}: use lower-case letters, digits and _ (at most 63)")
    return channel


def notify(conn: Connection, channel: str = WAKE_CHANNEL, payload: str = "") -> None:
    """Send a wake-up hint on ``channel`` when ``conn``'s transaction commits.

    PostgreSQL: NOTIFY. SQLite: a datagram to the database's daemons after the commit
    (``syncd.store.wakeup``; only inside ``db.transaction``, which sends it).
    """
    _check_channel(channel)
    if conn.dialect.name != "postgresql":
        wakeup.wake_after_commit(conn)
        return
    with translate_errors():
        conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload[:7000]})


class Listener:
    """A dedicated PostgreSQL session LISTENing on a channel (see ``listen``)."""

    def __init__(self, engine: Engine, channel: str):
        self.channel = _check_channel(channel)
        self.engine = engine
        self._raw: Any = None      # the psycopg connection
        self._lock = threading.Lock()
        self._socket: wakeup.WakeSocket | None = None    # SQLite's stand-in for LISTEN
        if engine.dialect.name == "postgresql":
            self._connect()
        elif (folder := wakeup.wake_folder(engine)) is not None:
            try:
                self._socket = wakeup.WakeSocket(folder, f"{os.getpid()}-{secrets.token_hex(4)}")
            except OSError as exc:     # a read-only folder: polling alone still does the job
                log.warning("wake_socket_unavailable", error=str(exc))

    @property
    def active(self) -> bool:
        return self._raw is not None or (self._socket is not None and self._socket.active)

    def _connect(self) -> None:
        with translate_errors():
            raw = self.engine.raw_connection()   # the engine's connect arguments, timeouts included
            driver = raw.driver_connection
            raw.detach()            # ours for good: it never goes back to the pool
            try:
                driver.rollback()
                driver.autocommit = True
                driver.execute(f"LISTEN {self.channel}")
            except BaseException:
                driver.close()
                raise
        self._raw = driver
        log.debug("listening", channel=self.channel)

    def wait(self, timeout: float) -> list[str]:
        """Payloads of the notifications received within ``timeout`` seconds ([] if none).

        Returns as soon as one arrives (with any others already queued). Raises
        ``StoreUnavailable`` if the session broke; call again to reconnect.
        """
        if self.engine.dialect.name != "postgresql":
            if self._socket is not None and self._socket.active:
                return [""] if self._socket.wait(timeout) else []
            time.sleep(max(0.0, timeout))
            return []
        with self._lock:
            if self._raw is None:
                self._connect()
            driver = self._raw
            try:
                with translate_errors():
                    got = [n.payload for n in driver.notifies(timeout=max(0.0, timeout), stop_after=1)]
                    # anything else already queued comes along
                    got += [n.payload for n in driver.notifies(timeout=0)]
                    return got
            except BaseException:
                self._close_raw()
                raise

    def _close_raw(self) -> None:
        driver, self._raw = self._raw, None
        if driver is not None:
            with suppress(Exception):
                driver.close()

    def close(self) -> None:
        with self._lock:
            self._close_raw()
            if self._socket is not None:
                self._socket.close()

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def listen(engine: Engine, channel: str = WAKE_CHANNEL) -> Listener:
    """Start LISTENing on ``channel`` on a dedicated session; use as a context manager."""
    return Listener(engine, channel)
