"""Parked items in the store: counted, listed, and put back in line (``syncd parked``).

An item is parked when ``parked_at`` is set: a request (``requests.parked_at``, migration 0007),
an account's LDAP write (``accounts.ldap_parked_at``), a membership's (``memberships.parked_at``,
both migration 0008). Jobs skip parked items; why and when they were parked is kept next to them.

Items are named ``request:<id>``, ``account:<id>``, ``membership:<account id>:<role key>``; a bare
number is a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from syncd.errors import StoreRejected
from syncd.store.repo import aware
from syncd.store.tables import accounts, memberships, requests

KINDS = ("requests", "accounts", "memberships")


@dataclass(frozen=True)
class ParkedItem:
    ref: str                 # request:42, account:ab12, membership:ab12:role-key
    kind: str                # request / account / membership
    parked_at: datetime
    reason: str
    attempts: int
    status: str | None = None   # a request's status (new, accepted, …)


def _columns(kind: str):
    """(parked_at, reason, attempts, key columns, table) of one kind."""
    if kind == "requests":
        return requests.c.parked_at, requests.c.parked_reason, requests.c.attempts, (requests.c.id,), requests
    if kind == "accounts":
        return (accounts.c.ldap_parked_at, accounts.c.ldap_parked_reason, accounts.c.ldap_attempts,
                (accounts.c.id,), accounts)
    return (memberships.c.parked_at, memberships.c.parked_reason, memberships.c.attempts,
            (memberships.c.account_id, memberships.c.role_key), memberships)


def _ref(kind: str, key: tuple) -> str:
    return f"{kind[:-1]}:" + ":".join(str(k) for k in key)


def summary(conn: Connection) -> dict[str, dict[str, Any]]:
    """Per kind: how many are parked, and the oldest (its name, when, why)."""
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        parked_at, reason, _, keys, table = _columns(kind)
        count = conn.execute(select(func.count()).select_from(table).where(parked_at.is_not(None))).scalar() or 0
        oldest = conn.execute(select(parked_at, reason, *keys).where(parked_at.is_not(None))
                              .order_by(parked_at, *keys).limit(1)).first()
        out[kind] = {"count": count,
                     "oldest": _ref(kind, tuple(oldest[2:])) if oldest else None,   # as syncd parked names it
                     "oldest_parked_at": aware(oldest[0]) if oldest else None,
                     "oldest_reason": oldest[1] if oldest else None}
    return out


def listing(conn: Connection, limit: int = 1000) -> list[ParkedItem]:
    """Every parked item (up to ``limit`` per kind), oldest first within a kind."""
    items: list[ParkedItem] = []
    for kind in KINDS:
        parked_at, reason, attempts, keys, table = _columns(kind)
        extra = (requests.c.status,) if kind == "requests" else ()
        rows = conn.execute(select(parked_at, reason, attempts, *extra, *keys).where(parked_at.is_not(None))
                            .order_by(parked_at, *keys).limit(limit)).all()
        for r in rows:
            key = tuple(r[3 + len(extra):])
            items.append(ParkedItem(_ref(kind, key), kind[:-1], aware(r[0]), r[1] or "", r[2],
                                    r[3] if extra else None))
    return items


def parse_ref(ref: str) -> tuple[str, tuple]:
    """``request:42`` (or ``42``) → ("requests", (42,)); ``account:x``; ``membership:x:role``."""
    kind, _, rest = ref.partition(":") if not ref.isdigit() else ("request", "", ref)
    if kind == "request" and rest.isdigit():
        return "requests", (int(rest),)
    if kind == "account" and rest:
        return "accounts", (rest,)
    if kind == "membership" and ":" in rest:
        account_id, _, role_key = rest.partition(":")
        return "memberships", (account_id, role_key)
    raise StoreRejected(f"{ref!r} names no parked item: request:ID (or ID), account:ID, membership:ACCOUNT:ROLE")


def canonical(ref: str) -> str:
    """The name ``listing`` gives the item ``ref`` names (``42`` → ``request:42``)."""
    return _ref(*parse_ref(ref))


def retry(conn: Connection, refs: list[str] | None, now: datetime) -> list[str]:
    """Put parked items back in line, their tries counted from zero; ``None``: every one.

    Returns the items put back (an item named but not parked is left alone and not returned).
    """
    done: list[str] = []
    wanted: dict[str, list[tuple]] | None = None
    if refs is not None:
        wanted = {kind: [] for kind in KINDS}
        for ref in refs:
            kind, key = parse_ref(ref)
            wanted[kind].append(key)
    for kind in KINDS:
        parked_at, reason, attempts, keys, table = _columns(kind)
        prefix = "ldap_" if kind == "accounts" else ""
        targets = [None] if wanted is None else wanted[kind]
        for key in targets:
            where = [parked_at.is_not(None)]
            if key is not None:
                where += [column == value for column, value in zip(keys, key, strict=True)]
            found = [tuple(r) for r in conn.execute(select(*keys).where(*where)).all()]
            if not found:
                continue
            conn.execute(update(table).where(*where).values(**{
                f"{prefix}parked_at": None, f"{prefix}parked_reason": None, f"{prefix}attempts": 0,
                f"{prefix}next_attempt_at": None}))
            if kind == "requests":
                conn.execute(update(requests).where(requests.c.id.in_([k[0] for k in found]))
                             .values(updated_at=now, claimed_by=None, claimed_until=None))
            done.extend(_ref(kind, k) for k in found)
    return done
