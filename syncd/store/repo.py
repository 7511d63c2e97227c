"""Queries the jobs share: reading requests, accounts and deciders, writing history.

Memberships are written through ``syncd.store.grants``; the daemon's own bookkeeping and what
``syncd status`` reads are in ``syncd.store.health``.

Every function takes a SQLAlchemy ``Connection`` already inside the caller's transaction, so a
state change, its history event and its outbox mail commit together or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import bindparam, cast, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine, Row, RowMapping

from syncd.core import lifecycle
from syncd.core.intake import IntakeFacts
from syncd.core.model import Account, AccountStatus, Decider, DeciderScope, RequestKind, RequestView, Status
from syncd.errors import StoreRejected
from syncd.store.db import dialect_insert
from syncd.store.queue import HeldClaim, hold_request_rows
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

def get_request(conn: Connection, request_id: int, *, for_update: bool = False) -> RequestView | None:
    stmt = select(requests).where(requests.c.id == request_id)
    if for_update:
        stmt = stmt.with_for_update()   # PostgreSQL row lock; SQLite's write lock covers it
    return request_view(conn.execute(stmt).mappings().first())


def requests_by_ids(conn: Connection, ids: Iterable[int]) -> list[RequestView]:
    """The requests ``ids``, by id: only the columns a ``RequestView`` holds, as tuples (apply reads
    a batch of thousands before its first write; this is half the time of whole rows as mappings)."""
    stmt = select(*_VIEW_COLUMNS).where(requests.c.id.in_(list(ids))).order_by(requests.c.id)
    return [_view_of_values(values) for values in conn.execute(stmt)]


def claim_with_accounts(engine: Engine, **claim: Any) -> list[tuple[RequestView, bool | None]]:
    """``queue.claim_request_rows`` (same arguments), each request claimed as its ``RequestView``
    and whether LDAP has its account: True, False (the account exists, never written), None (no
    account) — read by the claim's own statement, where reading them by thousands of ids after it
    was, on PostgreSQL, a quarter of apply's time outside its writes."""
    views, held = hold_with_accounts(engine, **claim)
    held.lease()
    return views


def hold_with_accounts(engine: Engine, **claim: Any) -> tuple[list[tuple[RequestView, bool | None]], HeldClaim]:
    """``claim_with_accounts`` whose lease ``HeldClaim.lease()`` writes (``queue.hold_request_rows``)."""
    held = hold_request_rows(engine, columns=(*_VIEW_COLUMNS, _ACCOUNT_WRITTEN), **claim)
    return [(_view_of_values(row[1:-1]), row[-1]) for row in held.rows], held


# The cast is a no-op but for SQLite, which gives a column in RETURNING no affinity and then
# compares it with the accounts' ids by scanning them all, not by their index.
_ACCOUNT_WRITTEN = (select(accounts.c.ldap_version.is_not(None))
                    .where(accounts.c.id == cast(requests.c.account_id, accounts.c.id.type)).scalar_subquery())


def undecided(conn: Connection) -> list[RequestView]:
    """Requests waiting for a decision (pending, or nobody can decide them), by id."""
    return [request_view(r) for r in conn.execute(select(requests).where(requests.c.status.in_(UNDECIDED_STATUSES))
                                                  .order_by(requests.c.id)).mappings()]


def _any(conn: Connection, stmt) -> bool:
    """Whether ``stmt`` finds a row (it reads one at most)."""
    return conn.execute(stmt.limit(1)).first() is not None


def renewal_asked_since(conn: Connection, account_id: str, role_key: str, since: datetime) -> bool:
    return _any(conn, select(requests.c.id).where(requests.c.kind == RequestKind.RENEWAL.value,
                                                   requests.c.account_id == account_id,
                                                   requests.c.role_key == role_key, requests.c.submitted_at >= since))


def follow_mobility(conn: Connection, account_id: str, besides: int, organisation_code: str, now: datetime) -> None:
    """The account's undecided requests (but ``besides``) move to its new organisation."""
    conn.execute(update(requests).where(requests.c.account_id == account_id, requests.c.id != besides,
                                        requests.c.status.in_(UNDECIDED_STATUSES))
                 .values(organisation_code=organisation_code, updated_at=now))


def has_other_requests(conn: Connection, account_id: str, besides: int) -> bool:
    return _any(conn, select(requests.c.id).where(requests.c.account_id == account_id, requests.c.id != besides))


def deadline_of(conn: Connection, request_id: int) -> datetime | None:
    return conn.execute(select(requests.c.deadline_at).where(requests.c.id == request_id)).scalar()


def submit_request(conn: Connection, values: dict[str, Any]) -> tuple[int | None, RowMapping | None]:
    """Insert a request as docs/queue.md tells the portal to: (its id, None); or, when its
    ``portal_ref`` is recorded already, nothing is inserted: (None, the request recorded)."""
    stmt = dialect_insert(conn, requests).values(**values)
    if values.get("portal_ref") is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["portal_ref"])
    request_id = conn.execute(stmt.returning(requests.c.id)).scalar_one_or_none()
    if request_id is not None:
        return request_id, None
    return None, conn.execute(select(requests).where(requests.c.portal_ref == values["portal_ref"])).mappings().first()


def routed_to(conn: Connection, request_id: int) -> tuple[str, ...]:
    rows = conn.execute(select(request_deciders.c.account_id)
                        .where(request_deciders.c.request_id == request_id)
                        .order_by(request_deciders.c.account_id))
    return tuple(r[0] for r in rows)


_VIEW_FIELDS = tuple(f.name for f in fields(RequestView))
_REQUEST_FIELDS = frozenset(_VIEW_FIELDS)
_VIEW_COLUMNS = tuple(requests.c[name] for name in _VIEW_FIELDS)


def _view_of_values(values: Sequence[Any]) -> RequestView:
    """``request_view`` of the values of ``_VIEW_COLUMNS``, in that order."""
    view = dict(zip(_VIEW_FIELDS, values, strict=True))
    view["kind"], view["status"] = RequestKind(view["kind"]), Status(view["status"])
    view["organisation_code"] = view["organisation_code"] or ""
    return RequestView(**view)


def request_view(row: Mapping[str, Any] | None) -> RequestView | None:
    """The core's value of a ``requests`` row, or of the columns a lean read selects (times aware, booleans)."""
    if row is None:
        return None
    values = {k: v for k, v in row.items() if k in _REQUEST_FIELDS}
    return RequestView(**values | {"kind": RequestKind(row["kind"]), "status": Status(row["status"]),
                                   "organisation_code": values.get("organisation_code") or ""})


def set_routing(conn: Connection, request_id: int, decider_ids: Iterable[str]) -> None:
    conn.execute(delete(request_deciders).where(request_deciders.c.request_id == request_id))
    rows = [{"request_id": request_id, "account_id": d} for d in sorted(set(decider_ids))]
    if rows:
        conn.execute(insert(request_deciders), rows)


def update_request(conn: Connection, request_id: int, now: datetime, *, parked: bool = False, **values: Any) -> None:
    """Write ``values``. A new ``status`` is written only from a status the state machine moves
    from (``lifecycle.sources``; ``parked``: the request must be parked): else nothing changes and
    ``StoreRejected`` is raised."""
    stmt = update(requests).where(requests.c.id == request_id)
    if "status" in values:
        froms = lifecycle.sources(Status(values["status"]), parked=parked)
        stmt = stmt.where(requests.c.status.in_(sorted(s.value for s in froms)))
        stmt = stmt.where(requests.c.parked_at.is_not(None)) if parked else stmt
    if conn.execute(stmt.values(updated_at=now, **values)).rowcount != 1 and "status" in values:
        raise StoreRejected(f"request {request_id}: the state machine has no move to {values['status']} from "
                            "its status")


_INSERT_EVENT = insert(request_events)   # built once: values as parameters


def add_event(conn: Connection, request_id: int, event: str, at: datetime, actor: str | None = None,
              detail: dict | None = None) -> None:
    conn.execute(_INSERT_EVENT, {"request_id": request_id, "event": event, "at": at, "actor": actor,
                                 "detail": detail})


def events_of(conn: Connection, request_id: int) -> list[RowMapping]:
    return list(conn.execute(select(request_events).where(request_events.c.request_id == request_id)
                             .order_by(request_events.c.id)).mappings())


# --- accounts and deciders -----------------------------------------------------------------------

_ACCOUNT_COLUMNS = [accounts.c[f.name] for f in fields(Account)]


def _account(row: Row | None) -> Account | None:
    """The core's value of an ``accounts`` row (selected as ``_ACCOUNT_COLUMNS``)."""
    return None if row is None else Account(**row._asdict() | {"status": AccountStatus(row.status)})


def account_by_email(conn: Connection, email: str) -> Account | None:
    return _account(conn.execute(select(*_ACCOUNT_COLUMNS).where(func.lower(accounts.c.email) == email.lower())).first())


def account_by_id(conn: Connection, account_id: str) -> Account | None:
    return _account(conn.execute(select(*_ACCOUNT_COLUMNS).where(accounts.c.id == account_id)).first())


def add_account(conn: Connection, **values: Any) -> None:
    conn.execute(insert(accounts).values(**values))


def add_decider(conn: Connection, account_id: str, scope: str, organisation_code: str | None, now: datetime) -> None:
    """Idempotent, and safe when two run at once: the unique key, or for a central administrator
    the partial unique index, turns the second insert into nothing."""
    conn.execute(dialect_insert(conn, deciders).values(
        account_id=account_id, scope=scope, organisation_code=organisation_code, created_at=now
    ).on_conflict_do_nothing())


def add_deciders(conn: Connection, rows: list[dict[str, Any]]) -> None:
    conn.execute(insert(deciders), rows)


def remove_decider(conn: Connection, account_id: str, scope: str, organisation_code: str | None) -> None:
    conn.execute(delete(deciders).where(
        deciders.c.account_id == account_id, deciders.c.scope == scope,
        deciders.c.organisation_code.is_(None) if organisation_code is None
        else deciders.c.organisation_code == organisation_code))


def find_account(conn: Connection, id_or_email: str) -> Account | None:
    return account_by_id(conn, id_or_email) or account_by_email(conn, id_or_email)


def current_deciders(conn: Connection, organisation_code: str | None = None) -> list[Decider]:
    """Deciders whose account is active: the input of routing and of authorisation.

    With ``organisation_code``, only those who can matter for that organisation: its
    correspondents and the central administrators.
    """
    # Each decider's account looked up by its key, not joined: as a join SQLite's planner (no
    # statistics) read every account to find the few deciders, intake's routing of each request too.
    active_email = (select(accounts.c.email).where(accounts.c.id == deciders.c.account_id,
                                                   accounts.c.status == AccountStatus.ACTIVE.value)
                    .scalar_subquery().label("email"))
    stmt = select(deciders.c.account_id, deciders.c.scope, deciders.c.organisation_code, active_email)
    if organisation_code is not None:
        stmt = stmt.where(or_(deciders.c.scope == DeciderScope.CENTRAL.value,
                              deciders.c.organisation_code == organisation_code))
    rows = conn.execute(stmt.order_by(deciders.c.id))
    return [Decider(r.account_id, r.email, DeciderScope(r.scope), r.organisation_code)
            for r in rows if r.email is not None]


# --- one request, locked (a decision's own statements are in ``syncd.store.decision``) ---------------

# Built once: building a statement costs more than running it on an indexed row.
_LOCK_REQUEST = select(requests).where(requests.c.id == bindparam("request_id")).with_for_update()


def lock_request(conn: Connection, request_id: int) -> RequestView | None:
    """``get_request(conn, request_id, for_update=True)``, from a statement built once."""
    return request_view(conn.execute(_LOCK_REQUEST, {"request_id": request_id}).mappings().first())


def intake_facts(conn: Connection, kind: str | None, email: str | None, role_key: str | None) -> IntakeFacts:
    if not isinstance(email, str) or not email.strip():
        return IntakeFacts()
    email = email.strip().lower()
    account = account_by_email(conn, email)
    undecided = requests.c.status.in_(UNDECIDED_STATUSES)
    if kind == RequestKind.ACCOUNT.value:
        # Rows still "new" are being taken in one at a time, so a pending one is the only rival.
        return IntakeFacts(account, account_request_open=_any(conn, select(requests.c.id).where(
            func.lower(requests.c.email) == email, requests.c.kind == RequestKind.ACCOUNT.value, undecided)))
    if kind == RequestKind.MOBILITY.value and account is not None:
        return IntakeFacts(account, mobility_open=_any(conn, select(requests.c.id).where(
            requests.c.account_id == account.id, requests.c.kind == RequestKind.MOBILITY.value, undecided)))
    if account is not None and isinstance(role_key, str):
        return IntakeFacts(account, habilitation_open_or_granted=_any(conn, select(requests.c.id).where(
            requests.c.account_id == account.id, requests.c.role_key == role_key, undecided)) or _any(
            conn, select(memberships.c.account_id).where(memberships.c.account_id == account.id,
                                                         memberships.c.role_key == role_key,
                                                         memberships.c.revoked_at.is_(None))))
    return IntakeFacts(account)


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
