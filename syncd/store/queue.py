"""Claiming work safely: several workers (threads or processes) share the ``requests`` queue
table and the ``outbox`` without ever holding the same row at once.

A claim is a lease: ``claimed_by`` (the worker) and ``claimed_until`` (when the lease runs out).
A row is claimable when its status is wanted, it is unclaimed or its lease ran out (the worker
died or hung: the row comes back by itself), and - with ``due_only`` - its ``next_attempt_at``
(retry back-off) is null or not in the future. Rows are claimed in ``id`` order.

* PostgreSQL: one statement, ``WITH chosen AS MATERIALIZED (SELECT id ... ORDER BY id LIMIT n
  FOR UPDATE SKIP LOCKED) UPDATE ... SET <lease> WHERE id IN (SELECT id FROM chosen) RETURNING
  ...``. Concurrent claimers skip each other's rows instead of waiting; a row claimed by a
  transaction that committed in the meantime is re-checked by PostgreSQL and left out.
* SQLite: the same statement (without the row locks) inside ``BEGIN IMMEDIATE`` (the engine's
  default): claimers take turns on the database's single write lock.

``hold_request_rows`` splits a claim in two for a caller with work to start at once (apply): on
PostgreSQL it chooses and locks the rows (``SELECT … FOR UPDATE SKIP LOCKED``) in a transaction it
leaves open, and ``HeldClaim.lease()`` writes their lease and commits later, from another thread
if the caller likes. Until then the row locks keep every other claimer off them; if the lease
fails, the locks go with the rolled-back transaction and the rows are claimable at once, so the
caller must record nothing for them (apply stops its pass). A holder that hangs or vanishes
before its lease holds the rows no longer than a lease would: the transaction's
``idle_in_transaction_session_timeout`` is the lease's length. Elsewhere the claim is made whole
and ``lease()`` has nothing left to do.

A worker that finishes a row should clear the claim in the same statement that records the
outcome, or call ``release``. Every function takes an Engine (a transaction of its own, committed before returning - the usual
way) or a Connection: if the Connection is already in a transaction the work joins it and the
caller commits (on SQLite that transaction must be a write one, i.e. not ``readonly``).

Times are timezone-aware UTC datetimes passed in by the caller (the clock is injected).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, Select, Table, and_, any_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.sql.elements import ColumnElement

from syncd.store.db import transaction, translate_errors
from syncd.store.tables import REQUEST_STATUSES, outbox, requests, status_in

__all__ = [
    "claim_requests",
    "claim_request_rows",
    "hold_request_rows",
    "HeldClaim",
    "claim_outbox",
    "release",
]

OUTBOX_PENDING = "pending"

# Keep IN (...) lists well under SQLite's bound-parameter limit.
_CHUNK = 500


def claim_requests(
    conn_or_engine: Engine | Connection,
    *,
    statuses: Iterable[str | enum.Enum],
    worker_id: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    due_only: bool = True,
    unapplied_only: bool = False,
) -> list[int]:
    """Claim up to ``limit`` requests whose status is in ``statuses``; return their ids, ascending.

    Parked requests (``parked_at`` set) are never claimed.

    ``unapplied_only`` also requires ``applied_at`` to be null (decided requests whose outcome
    is not yet written to the directory).
    """
    return [row[0] for row in claim_request_rows(
        conn_or_engine, statuses=statuses, worker_id=worker_id, now=now, lease_seconds=lease_seconds,
        limit=limit, due_only=due_only, unapplied_only=unapplied_only)]


def claim_request_rows(
    conn_or_engine: Engine | Connection,
    *,
    statuses: Iterable[str | enum.Enum],
    worker_id: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    due_only: bool = True,
    unapplied_only: bool = False,
    columns: Sequence[ColumnElement] = (),
) -> list[Row]:
    """``claim_requests``, each claimed request as a row of its id and ``columns``, read by the
    claim's own statement (apply reads its batch there rather than by thousands of ids after)."""
    wanted, extra = _request_conditions(statuses, unapplied_only)
    return _claim(conn_or_engine, requests, wanted, worker_id, now, lease_seconds, limit, due_only, extra, columns)


class HeldClaim:
    """Requests chosen for a worker whose lease ``lease()`` writes (``hold_request_rows``)."""

    def __init__(self, rows: list[Row], finish: Callable[[], None] | None = None):
        self.rows = rows
        self._finish = finish

    @property
    def leased(self) -> bool:
        """Whether the lease is written and committed (or failed: the rows are not ours)."""
        return self._finish is None

    def lease(self) -> None:
        """Write the rows' lease and commit (once; nothing to do if it is written already).
        Raises ``StoreUnavailable`` / ``StoreRejected``: the rows were then never ours."""
        finish, self._finish = self._finish, None
        if finish is not None:
            finish()


def hold_request_rows(
    engine: Engine,
    *,
    statuses: Iterable[str | enum.Enum],
    worker_id: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    due_only: bool = True,
    unapplied_only: bool = False,
    columns: Sequence[ColumnElement] = (),
) -> HeldClaim:
    """``claim_request_rows`` whose lease is written by ``HeldClaim.lease()`` (module docstring):
    on PostgreSQL the rows are read and locked by one ``SELECT … FOR UPDATE SKIP LOCKED`` in a
    transaction left open until then, about half the time of the whole claim; elsewhere the claim
    is made whole."""
    if engine.dialect.name != "postgresql":
        return HeldClaim(claim_request_rows(engine, statuses=statuses, worker_id=worker_id, now=now,
                                            lease_seconds=lease_seconds, limit=limit, due_only=due_only,
                                            unapplied_only=unapplied_only, columns=columns))
    wanted, extra = _request_conditions(statuses, unapplied_only)
    until = _lease_end(now, lease_seconds)
    _check_worker(worker_id)
    _check_limit(limit)
    if not wanted:
        return HeldClaim([])
    chosen = (_claimable(requests, wanted, now, limit, due_only, extra).with_only_columns(requests.c.id, *columns)
              .with_for_update(skip_locked=True, of=requests))
    with translate_errors():
        conn = engine.connect()
        try:
            conn.begin()
            # A holder that hangs or whose host vanishes before its lease keeps the rows no longer
            # than a lease would: the server ends a session left idle in its transaction that long.
            conn.execute(select(func.set_config("idle_in_transaction_session_timeout",
                                                str(max(1, round(lease_seconds * 1000))), True)))
            rows = conn.execute(chosen).all()
        except BaseException:
            conn.close()        # rolls the transaction back: the locks go with it
            raise
    if not rows:
        with translate_errors():
            conn.close()
        return HeldClaim([])

    def write_lease() -> None:
        with translate_errors():
            try:
                conn.execute(update(requests).where(requests.c.id == any_(bindparam("ids", [row[0] for row in rows],
                                                                                     type_=ARRAY(BigInteger))))
                             .values(claimed_by=worker_id, claimed_until=until))
                conn.commit()
            finally:
                conn.close()
    return HeldClaim(rows, write_lease)


def _request_conditions(statuses: Iterable[str | enum.Enum], unapplied_only: bool
                        ) -> tuple[list[str], list[ColumnElement[bool]]]:
    wanted = _status_values(statuses)
    unknown = sorted(set(wanted) - set(REQUEST_STATUSES))
    if unknown:
        raise ValueError(f"unknown request statuses: {unknown}")
    # A parked request waits for an operator (syncd parked), never for a job.
    extra = [requests.c.parked_at.is_(None)]
    if unapplied_only:
        extra.append(requests.c.applied_at.is_(None))
    return wanted, extra


def claim_outbox(
    conn_or_engine: Engine | Connection,
    *,
    worker_id: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    due_only: bool = True,
) -> list[int]:
    """Claim up to ``limit`` pending outbox messages; return their ids, ascending."""
    rows = _claim(conn_or_engine, outbox, [OUTBOX_PENDING], worker_id, now, lease_seconds, limit, due_only)
    return [row[0] for row in rows]


def release(
    conn_or_engine: Engine | Connection,
    ids: Iterable[int],
    worker_id: str,
    *,
    table: Table = requests,
) -> list[int]:
    """Clear the claim on those of ``ids`` still claimed by ``worker_id``; return them, ascending.

    Rows another worker holds now (our lease ran out and was taken over) are left alone.
    """
    return _update_own_claims(conn_or_engine, table, ids, worker_id, claimed_by=None, claimed_until=None)


# --------------------------------------------------------------------------- the common part


def _claim(
    conn_or_engine: Engine | Connection,
    table: Table,
    statuses: Sequence[str],
    worker_id: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    due_only: bool,
    extra: Sequence[ColumnElement[bool]] = (),
    columns: Sequence[ColumnElement] = (),
) -> list[Row]:
    _check_table(table)
    _check_worker(worker_id)
    until = _lease_end(now, lease_seconds)
    _check_limit(limit)
    if not statuses:
        return []

    c = table.c
    chosen = _claimable(table, statuses, now, limit, due_only, extra)
    with _tx(conn_or_engine) as conn:
        if conn.dialect.name == "postgresql":
            chosen = chosen.with_for_update(skip_locked=True)
        # The rows are chosen (and locked) in a CTE that runs once: as a plain ``IN (subquery)`` the
        # planner may run the subquery again while it updates, and claim more than ``limit`` rows.
        chosen = chosen.cte("chosen").prefix_with("MATERIALIZED", dialect="postgresql")
        claim = (update(table).where(c.id.in_(select(chosen.c.id)))
                 .values(claimed_by=worker_id, claimed_until=until).returning(c.id, *columns))
        return sorted(conn.execute(claim).all(), key=lambda row: row[0])    # RETURNING has no order


def _claimable(table: Table, statuses: Sequence[str], now: datetime, limit: int, due_only: bool,
               extra: Sequence[ColumnElement[bool]]) -> Select:
    """The ids of the first ``limit`` rows a worker may claim now, by id."""
    c = table.c
    conditions = [
        status_in(table, statuses),     # written into the SQL: a partial index may serve it (tables.py)
        or_(c.claimed_until.is_(None), c.claimed_until <= now),  # free, or the lease ran out
    ]
    if due_only:
        conditions.append(or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now))
    conditions.extend(extra)
    return select(c.id).where(and_(*conditions)).order_by(c.id).limit(limit)


def _update_own_claims(conn_or_engine: Engine | Connection, table: Table, ids: Iterable[int], worker_id: str,
                       **values: object) -> list[int]:
    """Set ``values`` on those of ``ids`` still claimed by ``worker_id``; return them, ascending."""
    _check_table(table)
    _check_worker(worker_id)
    ids = sorted(set(ids))
    if not ids:
        return []
    with _tx(conn_or_engine) as conn:
        ours = _still_ours(conn, table, ids, worker_id)
        for chunk in _chunks(ours):
            conn.execute(update(table).where(table.c.id.in_(chunk), table.c.claimed_by == worker_id).values(**values))
    return ours


def _still_ours(conn: Connection, table: Table, ids: list[int], worker_id: str) -> list[int]:
    found: list[int] = []
    for chunk in _chunks(ids):
        query = select(table.c.id).where(table.c.id.in_(chunk), table.c.claimed_by == worker_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        found.extend(conn.execute(query).scalars())
    return sorted(found)


@contextmanager
def _tx(conn_or_engine: Engine | Connection) -> Iterator[Connection]:
    if isinstance(conn_or_engine, Engine):
        with transaction(conn_or_engine) as conn:
            yield conn
    elif isinstance(conn_or_engine, Connection):
        with translate_errors():
            if conn_or_engine.in_transaction():
                yield conn_or_engine
            else:
                with conn_or_engine.begin():
                    yield conn_or_engine
    else:
        raise TypeError(f"expected an Engine or a Connection, got {type(conn_or_engine).__name__}")


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]


def _status_values(statuses: Iterable[str | enum.Enum]) -> list[str]:
    if isinstance(statuses, (str, enum.Enum)):
        statuses = [statuses]
    # Enum members go in by value: drivers would otherwise bind their *name* ("NEW").
    return sorted({s.value if isinstance(s, enum.Enum) else str(s) for s in statuses})


def _lease_end(now: datetime, lease_seconds: float) -> datetime:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    if lease_seconds <= 0:
        raise ValueError(f"lease_seconds must be positive, got {lease_seconds!r}")
    return now + timedelta(seconds=lease_seconds)


def _check_table(table: Table) -> None:
    if table is not requests and table is not outbox:
        raise ValueError(f"table {getattr(table, 'name', table)!r} is not a claimable queue")


def _check_limit(limit: int) -> None:
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")


def _check_worker(worker_id: str) -> None:
    if not worker_id or not isinstance(worker_id, str):
        raise ValueError("worker_id must be a non-empty string")
    if len(worker_id) > 100:  # claimed_by is VARCHAR(100)
        raise ValueError("worker_id is longer than 100 characters")
