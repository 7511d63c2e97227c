"""Forgotten password and first password: single-use, expiring reset tokens.

The token is random (``secrets``), stored only as its SHA-256, e-mailed as a link, and good
once before ``RESET_TTL``. The new password goes to LDAP through the Password Modify extended
operation (RFC 3062), so the server hashes it with its own scheme; syncd never stores it.
The outbox holds the link only until the mail is sent (delivery erases it).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from syncd.errors import PermanentError
from syncd.jobs.runtime import Runtime
from syncd.mail.outbox import enqueue
from syncd.store import audit, repo
from syncd.store.db import transaction
from syncd.store.tables import accounts, password_resets

log = structlog.get_logger(__name__)

RESET_TTL = timedelta(hours=24)
FIRST_PASSWORD_TTL = timedelta(days=7)
MIN_PASSWORD_LENGTH = 12


class ResetRefused(PermanentError):
    """The token is unknown, used or expired, or the new password is not acceptable."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_reset(conn: Connection, rt: Runtime, account_id: str, now: datetime,
                template: str = "password_reset") -> None:
    account = repo.account_by_id(conn, account_id)
    if account is None:
        return
    token = secrets.token_urlsafe(32)
    ttl = FIRST_PASSWORD_TTL if template == "account_created_set_password" else RESET_TTL
    expires_at = now + ttl
    reset_id = conn.execute(insert(password_resets).values(
        account_id=account_id, token_hash=token_hash(token), created_at=now, expires_at=expires_at)
    ).inserted_primary_key[0]
    url = f"{rt.settings.web.base_url.rstrip('/')}/password/reset?token={token}"
    enqueue(conn, recipient=account["email"], template=template, now=now, dedupe_key=f"password:{reset_id}",
            context={"requester_name": f"{account['given_name']} {account['family_name']}",
                     "reset_url": url, "expires_at": expires_at.isoformat(), "secret_keys": ["reset_url"]})
    log.info("password_reset_issued", account_id=account_id, reset_id=reset_id)


def request_reset(rt: Runtime, email: str) -> None:
    """The "mot de passe oublié" entry point. Says nothing about whether the account exists."""
    now = rt.clock()
    with transaction(rt.engine) as conn:
        account = repo.account_by_email(conn, email.strip())
        if account is not None and account["status"] == "active":
            issue_reset(conn, rt, account["id"], now)
        else:
            log.info("password_reset_ignored")


def reset_password(rt: Runtime, token: str, new_password: str) -> str:
    """Set a new password with a reset token; return the account id."""
    now = rt.clock()
    if len(new_password) < MIN_PASSWORD_LENGTH:
        raise ResetRefused(f"The password must hold at least {MIN_PASSWORD_LENGTH} characters.")
    with transaction(rt.engine) as conn:
        row = conn.execute(select(password_resets).where(password_resets.c.token_hash == token_hash(token))
                           .with_for_update()).mappings().first()
        if row is None or row["used_at"] is not None or repo.aware(row["expires_at"]) <= now:
            raise ResetRefused("This link is unknown, already used or expired.")
        # The LDAP write happens while the token row is locked: a failure rolls back and the link
        # stays good; two uses of one link are serialised and the second finds it used.
        rt.directory.set_password(row["account_id"], new_password)
        conn.execute(update(password_resets).where(password_resets.c.id == row["id"]).values(used_at=now))
        conn.execute(update(accounts).where(accounts.c.id == row["account_id"]).values(password_set_at=now))
        audit.record(conn, at=now, actor=row["account_id"], action="password_set", target=row["account_id"])
    log.info("password_set", account_id=row["account_id"])
    return row["account_id"]
