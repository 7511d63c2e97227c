"""Desired memberships: which (account, role) pairs are held, writing grants in bulk, revoking,
and recording what LDAP has.

Functions take a ``Connection`` inside the caller's transaction (see ``syncd.store.repo``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import ARRAY, String, and_, bindparam, func, insert, null, or_, select, tuple_, update
from sqlalchemy.engine import Connection, Engine, RowMapping

from syncd.core.model import AccountStatus, MembershipState
from syncd.store.db import is_sqlite, translate_errors
from syncd.store.tables import accounts, memberships

_HELD = (memberships.c.account_id, memberships.c.role_key, memberships.c.expires_at, memberships.c.revoked_at)
# Each engine looks pairs up its own way. SQLite uses no index for a row-value IN list (it
# scans the table): the redundant account_id test lets it search the primary key. PostgreSQL
# plans a long IN list as one OR branch per pair, slowly: it joins the pairs unnested instead.
_MEMBERSHIPS_AT_SQLITE = (select(*_HELD)
                          .where(memberships.c.account_id.in_(bindparam("account_ids", expanding=True)),
                                 tuple_(memberships.c.account_id, memberships.c.role_key)
                                 .in_(bindparam("keys", expanding=True))))
_PAIRS = func.unnest(bindparam("account_ids", type_=ARRAY(String)), bindparam("role_keys", type_=ARRAY(String))) \
    .table_valued("account_id", "role_key").render_derived(name="pairs")
_MEMBERSHIPS_AT_POSTGRESQL = select(*_HELD).select_from(_PAIRS.join(
    memberships, and_(memberships.c.account_id == _PAIRS.c.account_id, memberships.c.role_key == _PAIRS.c.role_key)))
_INSERT_MEMBERSHIPS = insert(memberships)
# A grant lifts any revocation and leaves LDAP to catch up: constant, so not bound row by row.
_GRANT_AGAIN = (update(memberships)
                .where(memberships.c.account_id == bindparam("key_account_id"),
                       memberships.c.role_key == bindparam("key_role_key"))
                .values(revoked_at=null(), applied_at=null()))


def memberships_at(conn: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], RowMapping]:
    """The memberships among these (account id, role key) pairs that exist, by pair: their
    ``expires_at`` and ``revoked_at``."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    if conn.dialect.name == "postgresql":
        found = conn.execute(_MEMBERSHIPS_AT_POSTGRESQL, {"account_ids": [a for a, _ in keys],
                                                          "role_keys": [r for _, r in keys]})
    else:
        found = conn.execute(_MEMBERSHIPS_AT_SQLITE, {"account_ids": sorted({a for a, _ in keys}), "keys": keys})
    return {(r["account_id"], r["role_key"]): r for r in found.mappings()}


def grant_memberships(conn: Connection, new: list[dict[str, Any]], existing: list[dict[str, Any]]) -> None:
    """Write granted memberships: insert the ``new`` pairs, overwrite the ``existing`` ones.

    Each dict holds ``account_id``, ``role_key``, ``granted_by_request``, ``granted_at`` and
    ``expires_at``; either way the membership ends up not revoked and not applied yet. Rows are
    written in key order, so two transactions writing overlapping sets lock them in the same
    order and wait for each other instead of deadlocking.
    """
    key = itemgetter("account_id", "role_key")
    if new:
        conn.execute(_INSERT_MEMBERSHIPS, sorted(new, key=key))
    if existing:
        conn.execute(_GRANT_AGAIN, [
            {"key_account_id": r["account_id"], "key_role_key": r["role_key"], "granted_by_request":
             r["granted_by_request"], "granted_at": r["granted_at"], "expires_at": r["expires_at"]}
            for r in sorted(existing, key=key)])


def held_by(conn: Connection, account_id: str) -> list[RowMapping]:
    """Every membership of ``account_id`` not revoked."""
    return list(conn.execute(select(memberships).where(
        memberships.c.account_id == account_id, memberships.c.revoked_at.is_(None))).mappings())


def revoke(conn: Connection, account_id: str, role_key: str | None, now: datetime, *, if_held: bool = True) -> None:
    """Revoke a membership (every one of the account when ``role_key`` is None); LDAP follows.
    ``if_held=False`` revokes it again even if it was revoked already (an expiry's new date)."""
    where = [memberships.c.account_id == account_id]
    if role_key is not None:
        where.append(memberships.c.role_key == role_key)
    if if_held:
        where.append(memberships.c.revoked_at.is_(None))
    conn.execute(update(memberships).where(*where).values(revoked_at=now, applied_at=None))


def expiring(conn: Connection, until: datetime, excluding_roles: Iterable[str] = ()) -> list[RowMapping]:
    """Memberships held whose expiry comes before ``until``, outside the roles ``excluding_roles``."""
    return list(conn.execute(select(memberships).where(
        memberships.c.revoked_at.is_(None), memberships.c.expires_at.is_not(None),
        memberships.c.expires_at <= until, memberships.c.role_key.not_in(list(excluding_roles)))).mappings())


def removals_due(conn: Connection, now: datetime) -> list[RowMapping]:
    """Revoked memberships not yet out of their LDAP group, not parked and not backing off."""
    return list(conn.execute(select(memberships).where(
        memberships.c.revoked_at.is_not(None), memberships.c.applied_at.is_(None), memberships.c.parked_at.is_(None),
        or_(memberships.c.next_attempt_at.is_(None), memberships.c.next_attempt_at <= now))).mappings())


def mark_removed(conn: Connection, account_id: str, role_key: str, now: datetime) -> None:
    """A revoked membership is out of its LDAP group now."""
    conn.execute(update(memberships).where(memberships.c.account_id == account_id, memberships.c.role_key == role_key,
                                           memberships.c.revoked_at.is_not(None))
                 .values(applied_at=now, attempts=0, next_attempt_at=None, last_error=None))


def record_failure(conn: Connection, account_id: str, role_key: str, values: dict[str, Any]) -> None:
    """A failed LDAP write of a membership: its attempts, last error, and back-off or parking."""
    conn.execute(update(memberships).where(memberships.c.account_id == account_id,
                                           memberships.c.role_key == role_key).values(**values))


def revoke_granted_by(conn: Connection, request_id: int, now: datetime) -> None:
    """Revoke the membership a request granted, if still held."""
    conn.execute(update(memberships).where(memberships.c.granted_by_request == request_id,
                                           memberships.c.revoked_at.is_(None)).values(revoked_at=now, applied_at=None))


def settle(conn: Connection, account_id: str, role_key: str, now: datetime) -> None:
    """A parked membership an operator made right by hand: recorded as matching LDAP."""
    conn.execute(update(memberships).where(memberships.c.account_id == account_id, memberships.c.role_key == role_key,
                                           _IN_STATE["parked"]).values(
        applied_at=now, parked_at=None, parked_reason=None, attempts=0, next_attempt_at=None))


_IN_STATE = {MembershipState.HELD: memberships.c.revoked_at.is_(None), "parked": memberships.c.parked_at.is_not(None)}


def membership(conn: Connection, account_id: str, role_key: str, state: str | None = None) -> RowMapping | None:
    """The membership row of the pair; with ``state``, only if it is "held" (not revoked) or "parked"."""
    stmt = select(memberships).where(memberships.c.account_id == account_id, memberships.c.role_key == role_key)
    return conn.execute(stmt if state is None else stmt.where(_IN_STATE[state])).mappings().first()


def held_role_keys(conn: Connection) -> list[str]:
    """The role of every membership held, once per membership."""
    return [r[0] for r in conn.execute(select(memberships.c.role_key).where(memberships.c.revoked_at.is_(None)))]


def active_holders(conn: Connection, role_key: str, account_ids: list[str]) -> set[str]:
    """Which of these accounts hold ``role_key`` and are active: wanted in its group now."""
    return {r[0] for r in conn.execute(
        select(memberships.c.account_id).join(accounts, accounts.c.id == memberships.c.account_id)
        .where(memberships.c.role_key == role_key, memberships.c.account_id.in_(account_ids),
               memberships.c.revoked_at.is_(None), accounts.c.status == AccountStatus.ACTIVE.value))}


_ROLE_ROWS: dict[str, tuple[str, list[str] | None]] = {}   # per dialect: the SQL and its parameter order


def role_rows(conn: Connection, role_key: str) -> list[tuple]:
    """(account id, not revoked) of a role's rows, through the driver: SQLAlchemy's row handling
    and statement compilation cost more than the query itself (measured)."""
    if conn.dialect.name not in _ROLE_ROWS:
        compiled = (select(memberships.c.account_id, memberships.c.revoked_at.is_(None))
                    .where(memberships.c.role_key == bindparam("role_key"))).compile(dialect=conn.dialect)
        _ROLE_ROWS[conn.dialect.name] = (str(compiled),
                                         list(compiled.positiontup or []) if compiled.positional else None)
    sql, order = _ROLE_ROWS[conn.dialect.name]
    params: Any = tuple(role_key for _ in order) if order is not None else {"role_key": role_key}
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchall()
    finally:
        cursor.close()


# SQLite: a role's account ids as two strings, held and revoked, joined by the unit separator
# and split in C: the driver makes two strings per role instead of a tuple per row (0.13 s of
# 0.4 s for the groups at 50k accounts). One pass of the covering index of 0009, in its order,
# as ``role_rows``'s. Each list is counted too, so an id holding the separator is seen (the role's
# rows are then read one by one).
_SEPARATOR = "\x1f"
_ROLE_IDS_SQLITE = ("SELECT count(CASE WHEN revoked_at IS NULL THEN 1 END), "
                    "group_concat(CASE WHEN revoked_at IS NULL THEN account_id END, char(31)), "
                    "count(revoked_at), "
                    "group_concat(CASE WHEN revoked_at IS NOT NULL THEN account_id END, char(31)) "
                    "FROM memberships WHERE role_key = ?")

# PostgreSQL: the same two strings for several roles in one statement (one round trip). For 100
# roles holding 310,000 rows: 484 ms and 290 ms of the client's CPU as a tuple per row, 176 and 31.
_ROLES_IDS_POSTGRESQL = ("SELECT role_key, count(*) FILTER (WHERE revoked_at IS NULL), "
                         "string_agg(account_id, chr(31)) FILTER (WHERE revoked_at IS NULL), "
                         "count(revoked_at), "
                         "string_agg(account_id, chr(31)) FILTER (WHERE revoked_at IS NOT NULL) "
                         "FROM memberships WHERE role_key = ANY(%s) GROUP BY role_key")


def role_ids(conn: Connection, role_key: str) -> tuple[list[str], list[str]]:
    """Account ids of a role's rows: (held, revoked), each in ``role_rows``'s order."""
    if is_sqlite(conn):
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            held_n, held, revoked_n, revoked = cursor.execute(_ROLE_IDS_SQLITE, (role_key,)).fetchone()
        finally:
            cursor.close()
        ids = _joined_ids(held_n, held, revoked_n, revoked)
        if ids is not None:
            return ids
    return _split(role_rows(conn, role_key))


def _joined_ids(held_n: int, held: str | None, revoked_n: int, revoked: str | None
                ) -> tuple[list[str], list[str]] | None:
    """(held, revoked) ids from the two joined strings; None when the counts disagree (an id
    holds the separator: the role is then read row by row)."""
    held_ids = held.split(_SEPARATOR) if held is not None else []
    revoked_ids = revoked.split(_SEPARATOR) if revoked is not None else []
    return (held_ids, revoked_ids) if len(held_ids) == held_n and len(revoked_ids) == revoked_n else None


def _split(rows: list[tuple]) -> tuple[list[str], list[str]]:
    held = [r[0] for r in rows if r[1]]
    return held, ([r[0] for r in rows if not r[1]] if len(held) < len(rows) else [])


class RoleRows:
    """Reads of roles' rows on one connection (``role_rows_reader``)."""

    def __init__(self, conn: Connection):
        self._conn = conn

    def ids(self, role_key: str) -> tuple[list[str], list[str]]:
        """``role_ids``."""
        return role_ids(self._conn, role_key)

    def ids_many(self, role_keys: list[str]) -> dict[str, tuple[list[str], list[str]]]:
        """``role_ids`` of several roles: on PostgreSQL one statement (one round trip), each
        role's ids as two strings, in the order the server aggregates them (reconcile makes sets
        of them); on SQLite, in the process, a statement per role: there is no
        round trip to save, and the role's key on each row would cost more."""
        if is_sqlite(self._conn):
            return {key: role_ids(self._conn, key) for key in role_keys}
        found: dict[str, tuple[list[str], list[str]]] = {key: ([], []) for key in role_keys}
        cursor = self._conn.connection.dbapi_connection.cursor()
        try:
            counted = cursor.execute(_ROLES_IDS_POSTGRESQL, (list(role_keys),)).fetchall()
        finally:
            cursor.close()
        for key, *joined in counted:
            found[key] = _joined_ids(*joined) or _split(role_rows(self._conn, key))
        return found


@contextmanager
def role_rows_reader(engine: Engine) -> Iterator[RoleRows]:
    """Roles' rows read one after another on one connection, each read a statement of its own
    outside any transaction: it sees what was committed when it runs, as a transaction per
    read would, without a BEGIN and a COMMIT (two round trips on PostgreSQL) around each.

    SQLite's connections already run statements on their own (the store's ``BEGIN`` is emitted
    only by ``transaction``); PostgreSQL's is put in autocommit for the time of the block."""
    with translate_errors(), engine.connect() as conn:
        if not is_sqlite(conn):
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        yield RoleRows(conn)


def roles_of(conn: Connection, account_id: str) -> list[tuple[str, bool]]:
    """(role key, not revoked) of every membership row of an account."""
    return [tuple(r) for r in conn.execute(select(memberships.c.role_key, memberships.c.revoked_at.is_(None))
                                           .where(memberships.c.account_id == account_id))]


def add_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    conn.execute(_INSERT_MEMBERSHIPS, rows)
