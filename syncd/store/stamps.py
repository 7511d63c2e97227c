"""The ``ldap_stamps`` and ``reconcile_cursors`` tables: change stamps syncd saw, and where the
incremental reconciliation starts (``syncd.directory.stamps``, docs/reconcile.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select

from syncd.store.tables import accounts, ldap_stamps, reconcile_cursors

_CHUNK = 1000


# Account fields every entry depends on, besides the mapped ones.
ALWAYS = ("id", "status", "director", "email", "given_name", "family_name")


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


def cursor(conn: Any, name: str) -> str | None:
    return conn.execute(select(reconcile_cursors.c.stamp).where(reconcile_cursors.c.name == name)).scalar()


def set_cursor(conn: Any, name: str, stamp: str, now: datetime) -> None:
    conn.execute(delete(reconcile_cursors).where(reconcile_cursors.c.name == name))
    conn.execute(insert(reconcile_cursors).values(name=name, stamp=stamp, updated_at=now))


def _stamped(columns: list[Any]):
    return (select(*columns, ldap_stamps.c.digest.label("stamped_digest"), ldap_stamps.c.stamp.label("stamp"),
                   ldap_stamps.c.layout.label("stamped_layout"))
            .select_from(accounts.outerjoin(ldap_stamps, ldap_stamps.c.account_id == accounts.c.id)))


def stream_stamped(conn: Any, columns: list[Any]) -> Iterable[Any]:
    """Every account's ``columns``, then its recorded digest, stamp and layout (the last three of
    each row), streamed by 5,000: the whole table is read, never held."""
    return conn.execution_options(stream_results=True, yield_per=5000).execute(_stamped(columns))


def stamped(conn: Any, columns: list[Any], ids: list[str]) -> dict[str, Any]:
    """By id, these accounts' ``columns`` with ``stamped_digest``, ``stamp`` and ``stamped_layout``."""
    return {r["id"]: r for r in conn.execute(_stamped(columns).where(accounts.c.id.in_(ids))).mappings()}
