"""Password links (``password_resets``): issued, checked, used, given back when LDAP failed.

A link is kept as the hash of its token only. Functions take a ``Connection`` inside the
caller's transaction (see ``syncd.store.repo``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Row, RowMapping

from syncd.store.tables import accounts, password_resets


def add_link(conn: Connection, account_id: str, token_hash: str, now: datetime, expires_at: datetime) -> int:
    """Record a new link; its id (which names its mail's dedupe key)."""
    return conn.execute(insert(password_resets).values(
        account_id=account_id, token_hash=token_hash, created_at=now, expires_at=expires_at)).inserted_primary_key[0]


def link_state(conn: Connection, token_hash: str) -> Row | None:
    """(used_at, expires_at, the account's status) of the link with this hash."""
    return conn.execute(select(password_resets.c.used_at, password_resets.c.expires_at, accounts.c.status)
                        .join(accounts, accounts.c.id == password_resets.c.account_id)
                        .where(password_resets.c.token_hash == token_hash)).first()


def lock_link(conn: Connection, token_hash: str) -> RowMapping | None:
    """The link with this hash, locked until the transaction ends."""
    return conn.execute(select(password_resets).where(password_resets.c.token_hash == token_hash)
                        .with_for_update()).mappings().first()


def mark_used(conn: Connection, link_id: int, now: datetime) -> None:
    conn.execute(update(password_resets).where(password_resets.c.id == link_id).values(used_at=now))


def give_back(conn: Connection, link_id: int, used_at: datetime) -> None:
    """Undo ``mark_used(link_id, used_at)``, when setting the password failed."""
    conn.execute(update(password_resets).where(password_resets.c.id == link_id, password_resets.c.used_at == used_at)
                 .values(used_at=None))


def password_set(conn: Connection, account_id: str, now: datetime) -> None:
    """The account's password was set: every link of it still open is spent."""
    conn.execute(update(password_resets).where(password_resets.c.account_id == account_id,
                                               password_resets.c.used_at.is_(None)).values(used_at=now))
    conn.execute(update(accounts).where(accounts.c.id == account_id).values(password_set_at=now))
