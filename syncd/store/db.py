"""Engines, transactions and the translation of driver errors (the store's boundary).

* ``make_engine(url)`` builds an Engine for SQLite (the embedded default) or PostgreSQL.
* ``transaction(engine)`` yields a Connection inside a transaction, committed on success.
* ``Connection``, ``Engine``, ``Row`` and ``RowMapping`` are named here for the type hints of the
  modules above the store, which import no driver.
* ``translate_errors()`` turns every SQLAlchemy / driver exception into ``StoreUnavailable``
  (temporary: retry later) or ``StoreRejected`` (permanent). No ``sqlalchemy`` exception
  escapes the store package.

SQLite is configured for one writer at a time: WAL (readers never block the writer), a busy
timeout (a writer waits for the lock instead of failing at once), ``foreign_keys=ON``, and every
transaction is opened with ``BEGIN IMMEDIATE`` (SQLAlchemy's documented pysqlite recipe:
pysqlite's own BEGIN handling is switched off and SQLAlchemy's ``begin`` event emits ours).
Taking the write lock up front means two writers queue on the busy timeout; with a deferred
BEGIN, a transaction that read first and writes later would fail with "database is locked"
half-way, where waiting cannot help. Pure readers may ask for a deferred ``BEGIN`` with
``transaction(engine, readonly=True)``; in WAL mode they then never wait.

PostgreSQL connections are pinged before use when they sat idle in the pool for more than
``PING_AFTER_IDLE_SECONDS``, and all of them for ``PING_ALL_AFTER_DISCONNECT_SECONDS`` after the
engine saw a connection die (``ping_when_in_doubt``). SQLAlchemy's ``pool_pre_ping`` pings on
every checkout: one round trip more per transaction, a tenth of a web decision's cost. In
steady use a connection was alive a moment ago; what is left uncovered is a server that went away
less than a second after a connection's last use, with no error seen yet: the first statement on
it fails as a disconnect, SQLAlchemy replaces the whole pool, and the caller gets
``StoreUnavailable`` (retry later), as the transactions in flight at that moment do anyway.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from sqlalchemy import Table, event, exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, Row, RowMapping, create_engine, make_url
from sqlalchemy.engine.url import URL

from syncd.errors import ConfigError, StoreRejected, StoreUnavailable
from syncd.store import wakeup

try:  # psycopg is a hard dependency; keep the store importable without it all the same
    import psycopg
except ImportError:  # pragma: no cover
    psycopg = None  # type: ignore[assignment]

log = structlog.get_logger(__name__)

__all__ = ["make_engine", "transaction", "translate_errors", "is_sqlite", "SQLITE_BEGIN_OPTION", "ping",
           "dialect_insert", "insert_ignoring", "Connection", "Engine", "Row", "RowMapping"]

# Execution option read by the ``begin`` hook: "IMMEDIATE" (default) or "DEFERRED".
SQLITE_BEGIN_OPTION = "syncd_sqlite_begin"

DEFAULT_SQLITE_BUSY_TIMEOUT = 15.0  # seconds a writer waits for the SQLite write lock
DEFAULT_PG_CONNECT_TIMEOUT = 10     # seconds
DEFAULT_PG_LOCK_TIMEOUT_MS = 30_000  # a statement waiting longer for a lock fails (55P03: temporary)
PING_AFTER_IDLE_SECONDS = 1.0       # a pooled connection idle longer than this is pinged before use
PING_ALL_AFTER_DISCONNECT_SECONDS = 30.0   # every connection is, this long after one was seen dead

# PostgreSQL SQLSTATEs (and classes) worth retrying.
_PG_TEMPORARY_SQLSTATES = frozenset({
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available (lock_timeout, NOWAIT)
    "55006",  # object_in_use
    "25006",  # read_only_sql_transaction: connected to a standby, e.g. during a fail-over
})
_PG_TEMPORARY_CLASSES = frozenset({
    "08",  # connection exception
    "53",  # insufficient resources (disk full, out of memory, too many connections)
    "57",  # operator intervention (query_canceled by statement_timeout, admin_shutdown, ...)
    "58",  # system error (I/O)
})

# SQLite primary result codes worth retrying (the rest, e.g. SQLITE_ERROR for "no such
# table" or a syntax error, SQLITE_CORRUPT, SQLITE_READONLY, are permanent).
_SQLITE_TEMPORARY_CODES = frozenset({
    5,   # SQLITE_BUSY ("database is locked")
    6,   # SQLITE_LOCKED ("database table is locked")
    7,   # SQLITE_NOMEM
    9,   # SQLITE_INTERRUPT
    10,  # SQLITE_IOERR
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
})
_SQLITE_TEMPORARY_MESSAGES = ("database is locked", "database table is locked", "disk i/o error",
                              "unable to open database file", "database or disk is full")


# --------------------------------------------------------------------------- engines


def _parse_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as exc:
        raise ConfigError(f"database url: cannot be parsed ({exc})") from None
    # "postgres" is the spelling some tools use; psycopg 3 is the driver we ship with
    if parsed.get_backend_name() == "postgres" or parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"database url: backend {parsed.get_backend_name()!r} is not supported "
            "(use sqlite:///path or postgresql+psycopg://...)"
        )
    return parsed


def make_engine(
    url: str | URL,
    echo: bool = False,
    *,
    sqlite_busy_timeout: float = DEFAULT_SQLITE_BUSY_TIMEOUT,
    pool_size: int = 5,
    max_overflow: int = 5,
) -> Engine:
    """Build an Engine for ``url`` (SQLite or PostgreSQL), configured as described above.

    A URL that cannot be parsed or names another backend raises ``ConfigError``. Creating the
    engine does not connect: an unreachable server shows up as ``StoreUnavailable`` on first use.
    """
    parsed = _parse_url(url)
    with translate_errors():
        if parsed.get_backend_name() == "sqlite":
            engine = _make_sqlite_engine(parsed, echo, sqlite_busy_timeout)
        else:
            engine = _make_postgresql_engine(parsed, echo, pool_size, max_overflow)
    log.debug("store_engine_created", url=parsed.render_as_string(hide_password=True))
    return engine


def _make_sqlite_engine(url: URL, echo: bool, busy_timeout: float) -> Engine:
    engine = create_engine(url, echo=echo, connect_args={"timeout": busy_timeout})
    busy_ms = int(busy_timeout * 1000)
    in_memory = url.database in (None, "", ":memory:") or "mode=memory" in str(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop pysqlite from emitting BEGIN itself (and from committing before DDL):
        # the "begin" hook below emits ours. COMMIT / ROLLBACK still work as usual.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        # On the driver's connection: SQLAlchemy's own execution costs more than the statement
        # (a decision is a few of them); its errors are translated by ``transaction`` as well.
        conn.connection.dbapi_connection.execute("BEGIN" if mode == "DEFERRED" else "BEGIN IMMEDIATE")

    return engine


def _make_postgresql_engine(url: URL, echo: bool, pool_size: int, max_overflow: int) -> Engine:
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = DEFAULT_PG_CONNECT_TIMEOUT
    if "application_name" not in url.query:
        connect_args["application_name"] = "syncd"
    # The operator's options, or our lock timeout; then DateStyle: psycopg reads times only in
    # PostgreSQL's ISO output style, and a server, database, role or URL set to another ('SQL,
    # DMY', 'German') would make every read of a time fail. Of two -c, the last one counts.
    options = url.query.get("options", f"-c lock_timeout={DEFAULT_PG_LOCK_TIMEOUT_MS}")
    connect_args["options"] = " ".join([options] if isinstance(options, str) else options) + " -c DateStyle=ISO"
    engine = create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=30,         # waiting longer for a pooled connection raises StoreUnavailable
        pool_recycle=1800,       # stay under idle-connection cut-offs of proxies and firewalls
        connect_args=connect_args,
    )
    ping_when_in_doubt(engine, PING_AFTER_IDLE_SECONDS, PING_ALL_AFTER_DISCONNECT_SECONDS)
    return engine


def ping_when_in_doubt(engine: Engine, idle_seconds: float, after_disconnect_seconds: float) -> None:
    """Ping a pooled connection at checkout when it was idle for more than ``idle_seconds``, or
    when the engine saw a connection die less than ``after_disconnect_seconds`` ago (a restart or
    a fail-over kills the idle ones too). One that does not answer is replaced: the pool retries
    with a fresh one (SQLAlchemy's ``DisconnectionError`` protocol of the ``checkout`` event)."""
    last_disconnect = [float("-inf")]

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        if context.is_disconnect:
            last_disconnect[0] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["syncd_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _taken(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("syncd_idle_since", None)
        now = time.monotonic()
        if since is None:
            return   # connected just now
        if now - since <= idle_seconds and now - last_disconnect[0] > after_disconnect_seconds:
            return   # in use a moment ago, and no sign of trouble
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure means "do not use this one"
            last_disconnect[0] = time.monotonic()
            log.info("store_connection_replaced", reason=_first_line(exc))
            raise sa_exc.DisconnectionError(str(exc)) from exc
        if not alive:
            raise sa_exc.DisconnectionError("the connection did not answer the ping")


# The INSERT constructs that know ON CONFLICT, per dialect (both engines syncd runs on): the one map.
DIALECT_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def dialect_insert(conn: Connection, table: Table) -> Any:
    """``INSERT INTO table`` in ``conn``'s dialect, which knows ``on_conflict_do_nothing``."""
    return DIALECT_INSERTS[conn.dialect.name](table)


def insert_ignoring(conn: Connection, table: Table, conflict: list[str]) -> Any:
    """``INSERT … ON CONFLICT (conflict) DO NOTHING``: whoever inserts first wins, without a race."""
    return dialect_insert(conn, table).on_conflict_do_nothing(index_elements=conflict)


def is_sqlite(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "sqlite"


def threads_share_database(engine: Engine) -> bool:
    """Whether a connection checked out in another thread sees the same database: not so for an
    in-memory SQLite database (one per thread, or one connection shared by all, which two
    threads must not use at once)."""
    from sqlalchemy.pool import SingletonThreadPool, StaticPool
    return not isinstance(engine.pool, (SingletonThreadPool, StaticPool))


def ping(conn: Connection) -> None:
    """One round trip: the database answers (readiness probes)."""
    conn.exec_driver_sql("select 1")


# --------------------------------------------------------------------------- transactions


@contextmanager
def transaction(engine: Engine, *, readonly: bool = False) -> Iterator[Connection]:
    """Yield a Connection in a transaction: committed if the block succeeds, else rolled back.

    Errors inside the block are translated (``StoreUnavailable`` / ``StoreRejected``). On
    SQLite the transaction holds the database's write lock from its start (``BEGIN
    IMMEDIATE``) unless ``readonly``; keep transactions short, and never open a second one
    on the same SQLite database while holding one in the same thread (it would wait for
    itself until the busy timeout).
    """
    with translate_errors():
        with engine.connect() as conn:
            if readonly and is_sqlite(conn):
                conn.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})
            try:
                with conn.begin():
                    yield conn
            except BaseException:
                wakeup.forget_request(conn)
                raise
            wakeup.send_if_asked(conn)    # SQLite's NOTIFY: only once the commit is done


# --------------------------------------------------------------------------- errors


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn SQLAlchemy and driver exceptions into ``StoreUnavailable`` / ``StoreRejected``.

    Usable as a context manager or as a decorator (``@translate_errors()``). The new
    exception's message names the driver error without the SQL parameters (which may hold
    personal data); the original stays attached as ``__cause__``.
    """
    try:
        yield
    except (StoreUnavailable, StoreRejected):
        raise
    except (sa_exc.SQLAlchemyError, sqlite3.Error) as exc:  # sqlite3's: raised outside SQLAlchemy's wrapping (rare)
        raise _translate(exc) from exc
    except Exception as exc:
        if psycopg is not None and isinstance(exc, psycopg.Error):
            raise _translate(exc) from exc
        raise


def _translate(exc: BaseException) -> StoreUnavailable | StoreRejected:
    temporary, detail = _classify(exc)
    return (StoreUnavailable if temporary else StoreRejected)(detail)


def _classify(exc: BaseException) -> tuple[bool, str]:
    """(temporary?, a one-line description) for a SQLAlchemy or driver exception."""
    if isinstance(exc, sa_exc.DisconnectionError):
        return True, f"database connection lost: {_first_line(exc)}"
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection became free in time
        return True, f"database connection pool exhausted: {_first_line(exc)}"
    orig: BaseException = exc
    if isinstance(exc, sa_exc.DBAPIError):
        orig = exc.orig if exc.orig is not None else exc
        if exc.connection_invalidated:
            return True, f"database connection lost: {_describe(orig)}"
    elif isinstance(exc, sa_exc.SQLAlchemyError):
        # Not a driver error: bind processing (e.g. a naive datetime), a closed result,
        # a bad argument... a bug or bad data, which retrying does not fix.
        return False, f"{type(exc).__name__}: {_first_line(exc)}"

    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:  # PostgreSQL told us precisely what happened
        temporary = sqlstate in _PG_TEMPORARY_SQLSTATES or sqlstate[:2] in _PG_TEMPORARY_CLASSES
        return temporary, _describe(orig, sqlstate=sqlstate)

    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if isinstance(orig, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError)):
            return False, _describe(orig)
        if code is not None:
            return (code & 0xFF) in _SQLITE_TEMPORARY_CODES, _describe(orig)
        message = str(orig).lower()
        return any(m in message for m in _SQLITE_TEMPORARY_MESSAGES), _describe(orig)

    # No SQLSTATE (e.g. psycopg could not connect at all) : decide by class.
    temporary_classes: tuple[type[BaseException], ...] = (
        sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
    )
    if psycopg is not None:
        temporary_classes += (psycopg.OperationalError, psycopg.InterfaceError)
    if isinstance(exc, temporary_classes) or isinstance(orig, temporary_classes):
        return True, _describe(orig)
    return False, _describe(orig)


def _describe(orig: BaseException, sqlstate: str | None = None) -> str:
    name = f"{type(orig).__module__.split('.')[0]}.{type(orig).__name__}"
    code = f" [{sqlstate}]" if sqlstate else ""
    return f"{name}{code}: {_first_line(orig)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, sa_exc.StatementError):
        # SQLAlchemy appends "[SQL: ...]" and "[parameters: ...]": keep only the message.
        text = text.split("\n[SQL:", 1)[0].split("\n(Background", 1)[0]
    return (text.splitlines() or [""])[0][:500]
