"""Desired memberships: which (account, role) pairs are held, and writing grants in bulk.

Functions take a ``Connection`` inside the caller's transaction (see ``syncd.store.repo``).
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import Any

from sqlalchemy import ARRAY, String, and_, bindparam, func, insert, null, select, tuple_, update
from sqlalchemy.engine import Connection, RowMapping

from syncd.store.tables import memberships

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
