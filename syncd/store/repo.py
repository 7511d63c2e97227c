"""Queries the jobs share: reading requests, accounts and deciders, writing history.

Memberships are written through ``syncd.store.grants``; the daemon's own bookkeeping and what
``syncd status`` reads are in ``syncd.store.health``.

Every function takes a SQLAlchemy ``Connection`` already inside the caller's transaction, so a
state change, its history event and its outbox mail commit together or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from syncd.core.intake import ExistingAccount, IntakeFacts
from syncd.core.model import Decider, DeciderScope, RequestKind, RequestView, Status
from syncd.store.tables import (accounts, deciders, memberships, organisations, request_deciders, request_events,
                                requests)

OPEN_STATUSES = (Status.NEW.value, Status.PENDING.value)
UNDECIDED_STATUSES = (Status.PENDING.value, Status.AWAITING_DECIDER.value)
GRANTED_STATUSES = (Status.ACCEPTED.value, Status.ACCEPTED_TACITLY.value)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time syncd stores is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def new_account_id() -> str:
    """A stable, opaque account id: the LDAP uid. Never the e-mail, which changes."""
    return uuid.uuid4().hex


# --- requests ---------------------------------------------------------------------------------

def get_request(conn: Connection, request_id: int, *, for_update: bool = False) -> RowMapping | None:
    stmt = select(requests).where(requests.c.id == request_id)
    if for_update:
        stmt = stmt.with_for_update()   # PostgreSQL row lock; SQLite's write lock covers it
    return conn.execute(stmt).mappings().first()


def routed_to(conn: Connection, request_id: int) -> tuple[str, ...]:
    rows = conn.execute(select(request_deciders.c.account_id)
                        .where(request_deciders.c.request_id == request_id)
                        .order_by(request_deciders.c.account_id))
    return tuple(r[0] for r in rows)


def request_view(row: RowMapping, routed: tuple[str, ...] = ()) -> RequestView:
    return RequestView(
        id=row["id"],
        kind=RequestKind(row["kind"]),
        status=Status(row["status"]),
        submitted_at=aware(row["submitted_at"]),
        requester_account_id=row["account_id"],
        organisation_code=row["organisation_code"] or "",
        role_key=row["role_key"],
        deadline_at=aware(row["deadline_at"]),
        decided_by=row["decided_by"],
        applied_at=aware(row["applied_at"]),
        routed_to=routed,
        internal=None if row["internal"] is None else bool(row["internal"]),
        first_routed_at=aware(row["first_routed_at"]),
    )


def set_routing(conn: Connection, request_id: int, decider_ids: Iterable[str]) -> None:
    conn.execute(delete(request_deciders).where(request_deciders.c.request_id == request_id))
    rows = [{"request_id": request_id, "account_id": d} for d in sorted(set(decider_ids))]
    if rows:
        conn.execute(insert(request_deciders), rows)


def update_request(conn: Connection, request_id: int, now: datetime, **values: Any) -> None:
    conn.execute(update(requests).where(requests.c.id == request_id).values(updated_at=now, **values))


_INSERT_EVENT = insert(request_events)   # built once: values as parameters


def add_event(conn: Connection, request_id: int, event: str, at: datetime, actor: str | None = None,
              detail: dict | None = None) -> None:
    conn.execute(_INSERT_EVENT, {"request_id": request_id, "event": event, "at": at, "actor": actor,
                                 "detail": detail})


def add_events(conn: Connection, events: list[dict[str, Any]]) -> None:
    """Many history events in one statement; each dict has ``request_id``, ``event``, ``at``
    and optionally ``actor`` and ``detail``."""
    if events:
        conn.execute(insert(request_events),
                     [{"actor": None, "detail": None} | e for e in events])


def events_of(conn: Connection, request_id: int) -> list[RowMapping]:
    return list(conn.execute(select(request_events).where(request_events.c.request_id == request_id)
                             .order_by(request_events.c.id)).mappings())


# --- accounts and deciders -----------------------------------------------------------------------

def account_by_email(conn: Connection, email: str) -> RowMapping | None:
    return conn.execute(select(accounts).where(func.lower(accounts.c.email) == email.lower())).mappings().first()


def account_by_id(conn: Connection, account_id: str) -> RowMapping | None:
    return conn.execute(select(accounts).where(accounts.c.id == account_id)).mappings().first()


def find_account(conn: Connection, id_or_email: str) -> RowMapping | None:
    return account_by_id(conn, id_or_email) or account_by_email(conn, id_or_email)


def current_deciders(conn: Connection, organisation_code: str | None = None) -> list[Decider]:
    """Deciders whose account is active: the input of routing and of authorisation.

    With ``organisation_code``, only those who can matter for that organisation: its
    correspondents and the central administrators.
    """
    stmt = (select(deciders.c.account_id, deciders.c.scope, deciders.c.organisation_code, accounts.c.email)
            .join(accounts, accounts.c.id == deciders.c.account_id)
            .where(accounts.c.status == "active"))
    if organisation_code is not None:
        stmt = stmt.where(or_(deciders.c.scope == DeciderScope.CENTRAL.value,
                              deciders.c.organisation_code == organisation_code))
    rows = conn.execute(stmt)
    return [Decider(r.account_id, r.email, DeciderScope(r.scope), r.organisation_code) for r in rows]


# --- one request, locked (a decision's own statements are in ``syncd.store.decision``) ---------------

# Built once: building a statement costs more than running it on an indexed row.
_LOCK_REQUEST = select(requests).where(requests.c.id == bindparam("request_id")).with_for_update()


def lock_request(conn: Connection, request_id: int) -> RowMapping | None:
    """``get_request(conn, request_id, for_update=True)``, from a statement built once."""
    return conn.execute(_LOCK_REQUEST, {"request_id": request_id}).mappings().first()


def intake_facts(conn: Connection, kind: str | None, email: str | None, role_key: str | None) -> IntakeFacts:
    if not isinstance(email, str) or not email.strip():
        return IntakeFacts()
    email = email.strip().lower()
    row = account_by_email(conn, email)
    account = (ExistingAccount(row["id"], row["status"], bool(row["internal"]), row["primary_organisation"],
                               bool(row["director"])) if row else None)
    account_open = False
    hab_dup = False
    if kind == RequestKind.ACCOUNT.value:
        # Rows still "new" are being taken in one at a time, so a pending one is the only rival.
        account_open = conn.execute(
            select(requests.c.id).where(func.lower(requests.c.email) == email,
                                        requests.c.kind == RequestKind.ACCOUNT.value,
                                        requests.c.status.in_(UNDECIDED_STATUSES)).limit(1)
        ).first() is not None
    elif kind == RequestKind.MOBILITY.value and row is not None:
        mobility_open = conn.execute(
            select(requests.c.id).where(requests.c.account_id == row["id"],
                                        requests.c.kind == RequestKind.MOBILITY.value,
                                        requests.c.status.in_(UNDECIDED_STATUSES)).limit(1)).first() is not None
        return IntakeFacts(account, mobility_open=mobility_open)
    elif row is not None and isinstance(role_key, str):
        hab_dup = conn.execute(
            select(requests.c.id).where(requests.c.account_id == row["id"], requests.c.role_key == role_key,
                                        requests.c.status.in_(UNDECIDED_STATUSES)).limit(1)
        ).first() is not None or conn.execute(
            select(memberships.c.account_id).where(memberships.c.account_id == row["id"],
                                                   memberships.c.role_key == role_key,
                                                   memberships.c.revoked_at.is_(None)).limit(1)
        ).first() is not None
    return IntakeFacts(account, account_open, hab_dup)


def upsert_organisations(conn: Connection, orgs: Iterable[Any], now: datetime) -> int:
    """Make the organisations table match the mappings; unknown codes are kept but inactive."""
    known = {r.code: r for r in conn.execute(select(organisations))}
    seen = set()
    changed = 0
    for org in orgs:
        seen.add(org.code)
        row = known.get(org.code)
        if row is None:
            conn.execute(insert(organisations).values(code=org.code, name=org.name, branch=org.branch,
                                                      active=True, updated_at=now))
            changed += 1
        elif (row.name, row.branch, bool(row.active)) != (org.name, org.branch, True):
            conn.execute(update(organisations).where(organisations.c.code == org.code)
                         .values(name=org.name, branch=org.branch, active=True, updated_at=now))
            changed += 1
    for code in set(known) - seen:
        if known[code].active:
            conn.execute(update(organisations).where(organisations.c.code == code)
                         .values(active=False, updated_at=now))
            changed += 1
    return changed
