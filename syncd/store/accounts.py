"""Accounts as the desired state of their LDAP entries: what is due for a write, what was written,
and the changes of state and profile that call for the next write (``version`` moves on).

Functions take a ``Connection`` inside the caller's transaction (see ``syncd.store.repo``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Row, RowMapping

from syncd.core.model import PROVISIONED, AccountStatus
from syncd.store.tables import accounts

ACTIVE, PENDING = AccountStatus.ACTIVE.value, AccountStatus.PENDING.value


def due_for_ldap(conn: Connection, now: datetime, limit: int) -> list[RowMapping]:
    """Active or disabled accounts whose LDAP entry is behind, not parked and not backing off,
    by next attempt: an account's change, or the end of its back-off."""
    return list(conn.execute(select(accounts).where(
        accounts.c.status.in_(PROVISIONED),
        or_(accounts.c.ldap_version.is_(None), accounts.c.ldap_version < accounts.c.version),
        accounts.c.ldap_parked_at.is_(None),
        or_(accounts.c.ldap_next_attempt_at.is_(None), accounts.c.ldap_next_attempt_at <= now))
        .order_by(func.coalesce(accounts.c.ldap_next_attempt_at, accounts.c.updated_at), accounts.c.id)
        .limit(limit)).mappings())


def by_ids(conn: Connection, ids: Iterable[str]) -> dict[str, RowMapping]:
    return {a["id"]: a for a in conn.execute(select(accounts).where(accounts.c.id.in_(set(ids)))).mappings()}


def mail_contacts(conn: Connection, ids: Iterable[str]) -> dict[str, Row]:
    """Of the accounts ``ids``, by id: what a mail about one of their requests names (id, e-mail,
    given and family names, primary organisation), as attributes. Apply reads thousands at a
    time, in the thread that records a pass while its groups are written: for 2,500 accounts,
    whole rows took 53 ms of CPU on SQLite and 74 ms on PostgreSQL, these columns 21 and 50."""
    columns = (accounts.c.id, accounts.c.email, accounts.c.given_name, accounts.c.family_name,
               accounts.c.primary_organisation)
    return {row.id: row for row in conn.execute(select(*columns).where(accounts.c.id.in_(set(ids))))}


def mark_written(conn: Connection, account: RowMapping, now: datetime) -> None:
    """Record that LDAP has this version of the account; a pending account becomes active.

    The version recorded is the one read before the write: a change committed meanwhile keeps
    the account behind, so it is written again.
    """
    conn.execute(update(accounts).where(accounts.c.id == account["id"])
                 .values(ldap_synced_at=now, ldap_version=account["version"], ldap_attempts=0,
                         ldap_next_attempt_at=None, ldap_last_error=None))
    conn.execute(update(accounts).where(accounts.c.id == account["id"], accounts.c.status == PENDING)
                 .values(status=ACTIVE))


def set_status(conn: Connection, account_id: str, status: AccountStatus | str, now: datetime) -> None:
    """A new status, and a new try for its LDAP write, parked or not."""
    conn.execute(update(accounts).where(accounts.c.id == account_id)
                 .values(status=AccountStatus(status).value, updated_at=now, version=accounts.c.version + 1,
                         ldap_parked_at=None, ldap_parked_reason=None, ldap_attempts=0, ldap_next_attempt_at=None))


def change_profile(conn: Connection, account_id: str, version: int, now: datetime, values: dict[str, Any]) -> bool:
    """Write ``values`` if the account is still at ``version`` (checked in the update itself, so
    two writers cannot both pass); False if it moved on."""
    return conn.execute(update(accounts).where(accounts.c.id == account_id, accounts.c.version == version)
                        .values(updated_at=now, version=accounts.c.version + 1, **values)).rowcount == 1


def move_organisation(conn: Connection, account_id: str, organisation_code: str, now: datetime) -> None:
    conn.execute(update(accounts).where(accounts.c.id == account_id)
                 .values(primary_organisation=organisation_code, updated_at=now, version=accounts.c.version + 1))


def record_failure(conn: Connection, account_id: str, values: dict[str, Any]) -> None:
    """A failed LDAP write: ``values`` (attempts, last_error, next_attempt_at or parked_at…) go to
    the account's ``ldap_`` columns."""
    conn.execute(update(accounts).where(accounts.c.id == account_id)
                 .values(**{f"ldap_{k}": v for k, v in values.items()}))


def remove(conn: Connection, account_id: str) -> None:
    conn.execute(delete(accounts).where(accounts.c.id == account_id))


def inactive_ids(conn: Connection) -> frozenset[str]:
    return frozenset(r[0] for r in conn.execute(select(accounts.c.id).where(accounts.c.status != ACTIVE)))


def count_provisioned(conn: Connection) -> int:
    """Accounts that have (or should have) an LDAP entry: active or disabled."""
    return conn.execute(select(func.count()).select_from(accounts)
                        .where(accounts.c.status.in_(PROVISIONED))).scalar_one()


def ids_and_emails(conn: Connection) -> list[tuple[str, str]]:
    return [tuple(r) for r in conn.execute(select(accounts.c.id, accounts.c.email))]


def add_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    conn.execute(insert(accounts), rows)
