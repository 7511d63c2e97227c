"""Accounts as the desired state of their LDAP entries: what is due for a write, what was written,
and the changes of state and profile that call for the next write (``version`` moves on).

Functions take a ``Connection`` inside the caller's transaction (see ``syncd.store.repo``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from syncd.core.model import PROVISIONED, AccountStatus
from syncd.store.tables import LDAP_DUE_ORDER, accounts

ACTIVE, PENDING = AccountStatus.ACTIVE.value, AccountStatus.PENDING.value


def due_for_ldap(conn: Connection, now: datetime, limit: int) -> list[RowMapping]:
    """Active or disabled accounts whose LDAP entry is behind, not parked and not backing off,
    by next attempt: an account's change, or the end of its back-off."""
    return list(conn.execute(select(accounts).where(
        accounts.c.status.in_(PROVISIONED),
        or_(accounts.c.ldap_version.is_(None), accounts.c.ldap_version < accounts.c.version),
        accounts.c.ldap_parked_at.is_(None),
        or_(accounts.c.ldap_next_attempt_at.is_(None), accounts.c.ldap_next_attempt_at <= now))
        .order_by(*LDAP_DUE_ORDER)      # ix_accounts_ldap_due's columns: read in order, up to the limit
        .limit(limit)).mappings())


def by_ids(conn: Connection, ids: Iterable[str]) -> dict[str, RowMapping]:
    return {a["id"]: a for a in conn.execute(select(accounts).where(accounts.c.id.in_(set(ids)))).mappings()}


class MailContact(NamedTuple):
    """What a mail about an account's request names of it (``mail_contacts``)."""

    id: str
    email: str
    given_name: str
    family_name: str
    primary_organisation: str


# The ids go as one JSON document: on SQLite no statement of as many parameters; on PostgreSQL
# no array of text, which psycopg dumps element by element.
_MAIL_CONTACTS = {
    "postgresql": "SELECT id, email, given_name, family_name, primary_organisation FROM accounts "
                  "WHERE id IN (SELECT json_array_elements_text(%s::json))",
    "sqlite": "SELECT id, email, given_name, family_name, primary_organisation FROM accounts "
              "WHERE id IN (SELECT value FROM json_each(?))",
}


def mail_contacts(conn: Connection, ids: Iterable[str]) -> dict[str, MailContact]:
    """Of the accounts ``ids``, by id: what a mail about one of their requests names (id, e-mail,
    given and family names, primary organisation). Apply reads hundreds at a time, in the thread
    that records a pass while its groups are written, beside the writers: on the driver, where
    through SQLAlchemy (an ``IN`` of as many parameters, rows made ``Row``) 200 accounts cost
    4-6 ms of that thread's CPU."""
    cur = conn.connection.dbapi_connection.cursor()
    cur.execute(_MAIL_CONTACTS[conn.dialect.name], (json.dumps(sorted(set(ids))),))
    return {row[0]: MailContact(*row) for row in cur.fetchall()}


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
