"""Forgotten password and first password: single-use, expiring reset tokens.

The token is random (``secrets``), stored only as its SHA-256, e-mailed as a link, and good
once before ``RESET_TTL``. The new password goes to LDAP through the Password Modify extended
operation (RFC 3062), so the server hashes it with its own scheme; syncd never stores it.
The outbox holds the link only until the mail is sent (delivery erases it).

The web page behind the link (``syncd.web.password_page``, ``/password/reset``) checks a token with
``reset_is_usable`` (read-only: opening the link consumes nothing) and the new password with
``check_password``, then calls ``reset_password``, which checks both again under the token's
row lock, claims the link, and writes LDAP outside any transaction.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import stringprep
import unicodedata
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager as ContextManager, nullcontext
from datetime import datetime, timedelta
from typing import Any

import structlog

from syncd.core.model import AccountStatus
from syncd.errors import PermanentError, TemporaryError
from syncd.jobs import notify
from syncd.runtime import Runtime
from syncd.mail.outbox import enqueue
from syncd.store import audit, repo
from syncd.store import passwords as links
from syncd.store.db import Connection, transaction

log = structlog.get_logger(__name__)

RESET_TTL = timedelta(hours=24)
FIRST_PASSWORD_TTL = timedelta(days=7)
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
MIN_DISTINCT_CHARACTERS = 5
# Passwords everyone tries first, compared with the password's letters alone ("Azerty2024!" is
# "azerty"). The directory's own policy (ppolicy), when there is one, may refuse more.
COMMON_PASSWORDS = frozenset({
    "motdepasse", "password", "azerty", "azertyuiop", "qwerty", "qwertyuiop", "soleil",
    "bonjour", "bienvenue", "welcome", "changeme", "secret", "admin", "administrateur", "utilisateur",
    "habilitation", "habilitations", "ucanss", "securite", "portail", "iloveyou", "jetaime", "loulou",
    "doudou", "chouchou", "marseille", "paris", "france", "printemps", "ete", "automne", "hiver",
    "janvier", "fevrier", "mars", "avril", "mai", "juin", "juillet", "aout", "septembre", "octobre",
    "novembre", "decembre",
})
# A password that is a stretch of one of these (or of one reversed) is refused.
_SEQUENCES = ("0123456789" * 3, "abcdefghijklmnopqrstuvwxyz" * 2, "azertyuiopqsdfghjklmwxcvbn" * 2,
              "qwertyuiopasdfghjklzxcvbnm" * 2)
# What SASLprep (RFC 4013), which LDAP clients apply to a password before a bind or a Password
# Modify, refuses or silently drops: control, private-use, invisible and formatting characters.
_PROHIBITED = (stringprep.in_table_c21_c22, stringprep.in_table_c3, stringprep.in_table_c4, stringprep.in_table_c5,
               stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8, stringprep.in_table_c9,
               stringprep.in_table_b1)


class ResetRefused(PermanentError):
    """The token is unknown, used or expired, or the new password is not acceptable."""


class WeakPassword(ResetRefused):
    """The new password breaks the policy; ``code`` says which rule: ``too_short``, ``too_long``,
    ``characters``, ``too_simple``, ``common``, ``personal``."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


def _folded(text: str) -> str:
    """Lower case, without accents: "Éléonore" -> "eleonore"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _unusable_characters(password: str) -> bool:
    """Whether SASLprep would refuse or alter ``password`` beyond mapping spaces: a prohibited
    character, or right-to-left letters mixed with left-to-right ones."""
    if any(prohibited(c) for c in password for prohibited in _PROHIBITED):
        return True
    if any(stringprep.in_table_d1(c) for c in password):
        return any(stringprep.in_table_d2(c) for c in password) or \
            not (stringprep.in_table_d1(password[0]) and stringprep.in_table_d1(password[-1]))
    return False


def check_password(password: str, personal: Iterable[str] = ()) -> None:
    """Raise ``WeakPassword`` unless ``password`` meets the policy.

    At least ``MIN_PASSWORD_LENGTH`` characters (a phrase of a few words does), at most
    ``MAX_PASSWORD_LENGTH``, no character LDAP clients refuse (controls, invisible ones), not one character or a keyboard or alphabet
    run repeated, not a well-known password give or take digits and symbols, and not containing
    any of the ``personal`` strings (the person's names, their e-mail address before the @).
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword("too_short", f"The password must hold at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword("too_long", f"The password may hold at most {MAX_PASSWORD_LENGTH} characters.")
    if _unusable_characters(password):
        raise WeakPassword("characters", "The password holds a control, invisible or formatting character.")
    folded = _folded(password)
    if len(set(folded)) < MIN_DISTINCT_CHARACTERS or \
            any(folded in run or folded in run[::-1] for run in _SEQUENCES):
        raise WeakPassword("too_simple", "The password is too simple.")
    if "".join(c for c in folded if c.isalpha()) in COMMON_PASSWORDS:
        raise WeakPassword("common", "The password is a well-known one.")
    for piece in personal:
        for part in re.split(r"[\s._+\-@']+", _folded(piece or "")):
            if len(part) >= 4 and part in folded:
                raise WeakPassword("personal", "The password holds the person's name or e-mail address.")


def _personal(account) -> list[str]:
    return [account.given_name or "", account.family_name or "", (account.email or "").split("@")[0]]


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
    reset_id = links.add_link(conn, account_id, token_hash(token), now, expires_at)
    url = f"{rt.settings.web.base_url.rstrip('/')}/password/reset?token={token}"
    enqueue(conn, recipient=account.email, template=template, now=now, dedupe_key=f"password:{reset_id}",
            language=notify.language_of(rt.settings),
            context={"requester_name": f"{account.given_name} {account.family_name}",
                     "reset_url": url, "expires_at": expires_at.isoformat(), "secret_keys": ["reset_url"]})
    log.info("password_reset_issued", account_id=account_id, reset_id=reset_id)


def request_reset(rt: Runtime, email: str) -> None:
    """The "mot de passe oublié" entry point. Says nothing about whether the account exists."""
    with transaction(rt.engine) as conn:
        request_reset_in(conn, rt, email, rt.clock())


def request_reset_in(conn: Connection, rt: Runtime, email: str, now: datetime) -> None:
    """``request_reset`` in the caller's transaction: the link is queued in the outbox only when an
    active account has this e-mail; nothing else differs, and nothing is sent from here."""
    account = repo.account_by_email(conn, email.strip())
    if account is not None and account.status == AccountStatus.ACTIVE:
        issue_reset(conn, rt, account.id, now)
    else:
        log.info("password_reset_ignored")


def reset_is_usable(rt: Runtime, token: str) -> bool:
    """Whether ``token`` would set a password now (known, unused, unexpired, its account active). Reads only."""
    if not token:
        return False
    with transaction(rt.engine, readonly=True) as conn:
        row = links.link_state(conn, token_hash(token))
    return (row is not None and row.used_at is None and repo.aware(row.expires_at) > rt.clock()
            and row.status == AccountStatus.ACTIVE)


def reset_password(rt: Runtime, token: str, new_password: str,
                   writing: Callable[[], ContextManager[Any]] = nullcontext) -> str:
    """Set a new password with a reset token; return the account id.

    ``WeakPassword`` (a ``ResetRefused``) when the password breaks the policy, ``ResetRefused``
    when the token is unknown, used or expired; either way, and when LDAP refuses or fails, the
    token stays as it was.

    Three steps, so that no transaction is open while LDAP works (on SQLite a write transaction
    holds the whole database, and a directory that hangs would hold it up to its timeout):
    the link is claimed (marked used: a second use of it is refused from then on), the password
    is written to LDAP, then the change is recorded. If LDAP refuses or fails, the claim is
    released and the link stays good. A crash between the steps leaves the link used: the
    person asks for a new one. ``writing()`` is held around each transaction (the web process's
    SQLite write queue), never across the LDAP call.
    """
    now = rt.clock()
    check_password(new_password)
    with writing(), transaction(rt.engine) as conn:
        row = links.lock_link(conn, token_hash(token))
        if row is None or row["used_at"] is not None or repo.aware(row["expires_at"]) <= now:
            raise ResetRefused("This link is unknown, already used or expired.")
        account = repo.account_by_id(conn, row["account_id"])
        if account is None or account.status != AccountStatus.ACTIVE:
            # Disabled after the link was sent: the link must not bring the account back to life.
            raise ResetRefused("This link is unknown, already used or expired.")
        check_password(new_password, _personal(account))
        links.mark_used(conn, row["id"], now)
    try:
        rt.directory.set_password(row["account_id"], new_password)
    except BaseException:
        try:
            with writing(), transaction(rt.engine) as conn:
                links.give_back(conn, row["id"], now)
        except TemporaryError as exc:   # the LDAP error is the one to report; the link stays used
            log.warning("password_link_not_released", account_id=row["account_id"], error=str(exc))
        raise
    try:
        _record_password_set(rt, row, account, now, writing)
    except TemporaryError as exc:
        # The password works in LDAP: tell the person so. What is missing (the audit row, the
        # mail, closing the account's other links) is for the operators, in this error.
        log.error("password_set_not_recorded", account_id=row["account_id"], error=str(exc))
    log.info("password_set", account_id=row["account_id"])
    return row["account_id"]


def _record_password_set(rt: Runtime, row: Any, account: Any, now: datetime,
                         writing: Callable[[], ContextManager[Any]]) -> None:
    with writing(), transaction(rt.engine) as conn:
        # Any other link still open for the account: an older link in a mailbox that has been
        # read by someone else must not set the password again.
        links.password_set(conn, row["account_id"], now)
        audit.record(conn, at=now, actor=row["account_id"], action="password_set", target=row["account_id"])
        # Told at their address, so that a change they did not make does not go unnoticed.
        enqueue(conn, recipient=account.email, template="password_changed", now=now, language=notify.language_of(rt.settings),
                dedupe_key=f"password-changed:{row['id']}",
                context={"requester_name": f"{account.given_name} {account.family_name}",
                         "email": account.email, "changed_at": now.isoformat()})
