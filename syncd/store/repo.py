"""Queries the jobs share: reading requests, accounts and deciders, writing history.

Every function takes a SQLAlchemy ``Connection`` already inside the caller's transaction, so a
state change, its history event and its outbox mail commit together or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from syncd.core.intake import ExistingAccount, IntakeFacts
from syncd.core.model import Decider, DeciderScope, RequestKind, RequestView, Status
from syncd.store.tables import (accounts, deciders, job_runs, memberships, organisations, outbox,
                                request_deciders, request_events, requests)

OPEN_STATUSES = (Status.NEW.value, Status.PENDING.value)
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
    )


def set_routing(conn: Connection, request_id: int, decider_ids: Iterable[str]) -> None:
    conn.execute(delete(request_deciders).where(request_deciders.c.request_id == request_id))
    rows = [{"request_id": request_id, "account_id": d} for d in sorted(set(decider_ids))]
    if rows:
        conn.execute(insert(request_deciders), rows)


def update_request(conn: Connection, request_id: int, now: datetime, **values: Any) -> None:
    conn.execute(update(requests).where(requests.c.id == request_id).values(updated_at=now, **values))


def add_event(conn: Connection, request_id: int, event: str, at: datetime, actor: str | None = None,
              detail: dict | None = None) -> None:
    conn.execute(insert(request_events).values(request_id=request_id, event=event, at=at, actor=actor,
                                               detail=detail))


def add_events(conn: Connection, events: list[dict[str, Any]]) -> None:
    """Many history events in one statement; each dict has ``request_id``, ``event``, ``at``
    and optionally ``actor`` and ``detail``."""
    if events:
        conn.execute(insert(request_events), [{"actor": None, "detail": None} | e for e in events])


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


def intake_facts(conn: Connection, kind: str | None, email: str | None, role_key: str | None) -> IntakeFacts:
    if not isinstance(email, str) or not email.strip():
        return IntakeFacts()
    email = email.strip().lower()
    row = account_by_email(conn, email)
    account = (ExistingAccount(row["id"], row["status"], bool(row["internal"]), row["primary_organisation"])
               if row else None)
    account_open = False
    hab_dup = False
    if kind == RequestKind.ACCOUNT.value:
        # Rows still "new" are being taken in one at a time, so a pending one is the only rival.
        account_open = conn.execute(
            select(requests.c.id).where(func.lower(requests.c.email) == email,
                                        requests.c.kind == RequestKind.ACCOUNT.value,
                                        requests.c.status == Status.PENDING.value).limit(1)
        ).first() is not None
    elif row is not None and isinstance(role_key, str):
        hab_dup = conn.execute(
            select(requests.c.id).where(requests.c.account_id == row["id"], requests.c.role_key == role_key,
                                        requests.c.status == Status.PENDING.value).limit(1)
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


# --- status --------------------------------------------------------------------------------------

def status_counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(requests.c.status, func.count()).group_by(requests.c.status))
    return {status: count for status, count in rows}


def oldest_open_submitted_at(conn: Connection) -> datetime | None:
    value = conn.execute(select(func.min(requests.c.submitted_at))
                         .where(requests.c.status.in_(OPEN_STATUSES))).scalar()
    return aware(value)


def unapplied_count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(requests).where(
        requests.c.status.in_(GRANTED_STATUSES), requests.c.applied_at.is_(None))).scalar() or 0


def failing_requests(conn: Connection, limit: int = 10) -> list[RowMapping]:
    return list(conn.execute(select(requests.c.id, requests.c.status, requests.c.attempts,
                                    requests.c.last_error, requests.c.next_attempt_at)
                             .where(requests.c.last_error.is_not(None), requests.c.applied_at.is_(None),
                                    requests.c.status.in_(GRANTED_STATUSES))
                             .order_by(requests.c.id).limit(limit)).mappings())


def waiting_work(conn: Connection, now: datetime) -> set[str]:
    """The cheap wake-up probe: which jobs have work right now (indexed lookups, LIMIT 1 each)."""
    due = or_(requests.c.next_attempt_at.is_(None), requests.c.next_attempt_at <= now)
    found = set()
    if conn.execute(select(requests.c.id).where(requests.c.status == Status.NEW.value, due).limit(1)).first():
        found.add("intake")
    if conn.execute(select(requests.c.id).where(requests.c.status.in_(GRANTED_STATUSES),
                                                requests.c.applied_at.is_(None), due).limit(1)).first():
        found.add("apply")
    out_due = or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= now)
    if conn.execute(select(outbox.c.id).where(outbox.c.status == "pending", out_due).limit(1)).first():
        found.add("deliver")
    return found


def record_job_run(conn: Connection, job: str, worker: str, started_at: datetime, error: str | None) -> int:
    """Remember how a job's last run went; return its count of consecutive failures."""
    row = conn.execute(select(job_runs).where(job_runs.c.job == job)).mappings().first()
    failures = 0 if error is None else (row["consecutive_failures"] + 1 if row else 1)
    values = dict(worker=worker, last_started_at=started_at, consecutive_failures=failures)
    if error is None:
        values.update(last_ok_at=started_at)
    else:
        values.update(last_error_at=started_at, last_error=error[:2000])
    if row is None:
        conn.execute(insert(job_runs).values(job=job, **values))
    else:
        conn.execute(update(job_runs).where(job_runs.c.job == job).values(**values))
    return failures


def job_health(conn: Connection) -> list[RowMapping]:
    return list(conn.execute(select(job_runs).order_by(job_runs.c.job)).mappings())
