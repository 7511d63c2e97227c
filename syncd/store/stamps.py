"""The ``ldap_stamps`` and ``reconcile_cursors`` tables: change stamps syncd saw, and where the
incremental reconciliation starts (``syncd.directory.stamps``, docs/reconcile.md).

A cursor counted by one server only (AD's uSNChanged, per domain controller) is stored with the
identity of that server (the DC's ``invocationId``) in the same ``stamp`` column, as
``<stamp>@<server>``: one row, so the two never disagree, and no migration (a stamp holds no
``@``; a cursor stored before, with no server, is one of an unknown server)."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, insert, select

from syncd.store.tables import UtcDateTime, accounts, ldap_stamps, reconcile_cursors

_CHUNK = 1000


# Account fields every entry depends on, besides the mapped ones.
ALWAYS = ("id", "status", "director", "email", "given_name", "family_name")
# Those read as the driver gives them by ``read_stamped`` (strings on every engine).
ALWAYS_RAW = ("id", "status", "email")


def source_columns(people: Any) -> list[Any]:
    """The ``accounts`` columns an entry is computed from (``syncd.core.entries``), in table order."""
    wanted = set(ALWAYS) | set(people.attributes)
    return [c for c in accounts.c if c.name in wanted]


def row_digest(row: Any, columns: list[Any]) -> str:
    """A digest of the fields the entry is computed from (a mapping holding ``columns``)."""
    return fields_digest(tuple(row[c.name] for c in columns), _status_index(columns))


def fields_digest(values: tuple, status_index: int) -> str:
    """``row_digest`` of the values of ``source_columns``, in order; pending is written as active."""
    if values[status_index] == "pending":
        values = (*values[:status_index], "active", *values[status_index + 1:])
    return hashlib.blake2b("\x1f".join(map(repr, values)).encode(), digest_size=16).hexdigest()


def _status_index(columns: list[Any]) -> int:
    return next(i for i, c in enumerate(columns) if c.name == "status")


def record(conn: Any, items: Iterable[tuple[str, str, str]], layout: str) -> int:
    """Record (account id, row digest, stamp) triples, replacing what each account had."""
    rows = [{"account_id": a, "digest": d, "stamp": s, "layout": layout} for a, d, s in items if s]
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        conn.execute(delete(ldap_stamps).where(ldap_stamps.c.account_id.in_([r["account_id"] for r in chunk])))
        conn.execute(insert(ldap_stamps), chunk)
    return len(rows)


def forget(conn: Any, account_ids: Iterable[str]) -> None:
    """Drop the stamps of these accounts: their entries are read in full next time."""
    ids = list(account_ids)
    for start in range(0, len(ids), _CHUNK):
        conn.execute(delete(ldap_stamps).where(ldap_stamps.c.account_id.in_(ids[start:start + _CHUNK])))


class Cursor(NamedTuple):
    """Where the next incremental run starts, and the server that counted it (None: any, or unknown)."""

    stamp: str
    server: str | None = None


def cursor_of(conn: Any, name: str) -> Cursor | None:
    value = conn.execute(select(reconcile_cursors.c.stamp).where(reconcile_cursors.c.name == name)).scalar()
    if value is None:
        return None
    stamp, _, server = value.partition("@")
    return Cursor(stamp, server or None)


def cursor(conn: Any, name: str) -> str | None:
    """The stamp of the cursor ``name``, whichever server counted it."""
    found = cursor_of(conn, name)
    return found.stamp if found else None


def set_cursor(conn: Any, name: str, stamp: str, now: datetime, server: str | None = None) -> None:
    if "@" in stamp or (server is not None and ("@" in server or not server)):
        raise ValueError(f"a cursor's stamp and server hold no '@': {stamp!r}, {server!r}")
    conn.execute(delete(reconcile_cursors).where(reconcile_cursors.c.name == name))
    conn.execute(insert(reconcile_cursors).values(name=name, stamp=f"{stamp}@{server}" if server else stamp,
                                                  updated_at=now))


def _stamped(columns: list[Any]):
    return (select(*columns, ldap_stamps.c.digest.label("stamped_digest"), ldap_stamps.c.stamp.label("stamp"),
                   ldap_stamps.c.layout.label("stamped_layout"))
            .select_from(accounts.outerjoin(ldap_stamps, ldap_stamps.c.account_id == accounts.c.id)))


def stream_stamped(conn: Any, columns: list[Any]) -> Iterable[Any]:
    """Every account's ``columns``, then its recorded digest, stamp and layout (the last three of
    each row), streamed by 5,000: the whole table is read, never held."""
    return conn.execution_options(stream_results=True, yield_per=5000).execute(_stamped(columns))


def values_digest(columns: list[Any]) -> Callable[[Sequence[Any]], str]:
    """``fields_digest`` of a row holding the values of ``columns`` first, as SQLAlchemy gives them."""
    width, status_index = len(columns), _status_index(columns)

    def digest(row: Sequence[Any]) -> str:
        return fields_digest(tuple(row[:width]), status_index)
    return digest


def read_stamped(conn: Any, columns: list[Any]) -> tuple[Iterable[Sequence[Any]], Callable[[Sequence[Any]], str]]:
    """``stream_stamped``'s rows, and the digest of a row of them (``values_digest``).

    On SQLite the rows are the driver's own: the values of the columns SQLAlchemy converts
    (booleans, times) are converted only for the digest, by the same result processors, and
    the rows are not made into SQLAlchemy's (0.02-0.05 s of 0.45 s at 50k accounts). Every
    other column must come as the driver gives it."""
    dialect = conn.dialect
    processors = [(i, c.type.dialect_impl(dialect).result_processor(dialect, None)) for i, c in enumerate(columns)]
    processors = [(i, p) for i, p in processors if p is not None]
    if dialect.name != "sqlite" or any(columns[i].name in ALWAYS_RAW for i, _ in processors):
        return stream_stamped(conn, columns), values_digest(columns)
    width, status_index = len(columns), _status_index(columns)

    def digest(row: Sequence[Any]) -> str:
        values = list(row[:width])
        for i, process in processors:
            values[i] = process(values[i])
        return fields_digest(tuple(values), status_index)

    cursor = conn.connection.dbapi_connection.cursor()
    cursor.arraysize = 5000
    cursor.execute(str(_stamped(columns).compile(dialect=dialect)))
    return _batches(cursor), digest


def _batches(cursor: Any) -> Iterator[Sequence[Any]]:
    try:
        while rows := cursor.fetchmany():
            yield from rows
    finally:
        cursor.close()


def stamped(conn: Any, columns: list[Any], ids: list[str]) -> dict[str, Any]:
    """By id, these accounts' ``columns`` with ``stamped_digest``, ``stamp`` and ``stamped_layout``."""
    return {r["id"]: r for r in conn.execute(_stamped(columns).where(accounts.c.id.in_(ids))).mappings()}


class Prefetch:
    """``stream_stamped``'s rows on PostgreSQL, fetched by a thread on a connection of its own
    while the caller does other work (the people's LDAP read): the thread runs no Python per
    row, only libpq's blocking calls, which release the GIL (psycopg's ``PGconn.exec_``); the rows
    are made by psycopg's loaders in the caller's thread when it iterates. At most ``ahead``
    batches of 5,000 rows wait in memory. The rows are those of the thread's snapshot, taken when
    it starts: the caller decides what that earlier read may decide."""

    def __init__(self, engine: Any, sql: str, ahead: int) -> None:
        self._raw = engine.raw_connection()
        self._driver = self._raw.driver_connection
        self.encoding = self._driver.info.encoding
        self._sql = sql
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fetch, name="syncd-stamped-prefetch", daemon=True)
        if self.encoding == "utf-8":
            self._thread.start()

    def _fetch(self) -> None:
        from psycopg import pq
        pg = self._driver.pgconn
        try:
            for command in (b"BEGIN READ ONLY", b"DECLARE syncd_stamped BINARY NO SCROLL CURSOR FOR " + self._sql.encode()):
                result = pg.exec_(command)
                if result.status != pq.ExecStatus.COMMAND_OK:
                    raise RuntimeError(f"prefetch of the accounts failed: {pg.error_message.decode(errors='replace')}")
            while not self._stop.is_set():
                result = pg.exec_(b"FETCH 5000 FROM syncd_stamped")
                if result.status != pq.ExecStatus.TUPLES_OK:
                    raise RuntimeError(f"prefetch of the accounts failed: {pg.error_message.decode(errors='replace')}")
                self._put(result)
                if result.ntuples == 0:
                    break
            pg.exec_(b"ROLLBACK")
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            self._put(exc)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def rows(self) -> Iterator[tuple]:
        """The rows, as ``stream_stamped`` gives them (the same values, as tuples)."""
        from psycopg.adapt import Transformer
        # No connection: the loaders then return times in UTC as ``timezone.utc``, as
        # ``UtcDateTime`` does, and decode text as UTF-8 (``prefetch_stamped`` checks the encoding).
        loader = Transformer(None)
        while True:
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            n = item.ntuples
            if n == 0:
                return
            loader.set_pgresult(item)
            yield from loader.load_rows(0, n, tuple)

    def close(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()
        if self._driver.pgconn.transaction_status != 0:     # not idle: ended early or failed
            self._raw.invalidate()
        self._raw.close()


def prefetch_stamped(engine: Any, columns: list[Any], ahead: int = 12) -> Prefetch | None:
    """A ``Prefetch`` of every account's ``columns`` with its stamp, started now, on PostgreSQL
    when psycopg's binary values are already those SQLAlchemy gives (no result processor but
    ``UtcDateTime``'s, whose values psycopg's loaders give in UTC: the digests must match); None
    otherwise. On SQLite a thread would not overlap: sqlite3 releases the GIL only inside each
    row's step and takes it back to make the row, so a reading thread waits on the main thread's
    Python (measured: 50k rows, 0.12 s alone, done only when a busy main thread stopped)."""
    dialect = engine.dialect
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        return None
    if any(not isinstance(c.type, UtcDateTime) and c.type.dialect_impl(dialect).result_processor(dialect, None)
           for c in columns):
        return None
    found = Prefetch(engine, str(_stamped(columns).compile(dialect=dialect)), ahead)
    if found.encoding != "utf-8":
        found.close()
        return None
    return found
