"""What happens to one item whose processing failed: it backs off, or it is parked.

Three kinds of item fail on their own: a **request** (intake, or its LDAP write in apply), an
**account**'s LDAP write, a **membership**'s LDAP write (a removal from a group). Whatever the
kind, the rule is the same (``parks``):

* a temporary failure (server down, busy, timeout) backs that item off
  (``syncd.core.backoff``: 5 s doubling up to ``jobs.max_backoff_seconds``); the others go on;
* a permanent failure (the directory refused the write: a value, an object class, a constraint)
  **parks** it at once: its reason and time are recorded and no job picks it again until an
  operator runs ``syncd parked retry`` after a fix, or ``syncd parked resolve``;
* a missing entry (noSuchObject: a group not re-created yet, a provider behind in replication)
  and an unexpected crash (a bug) are retried with back-off ``MAX_ATTEMPTS`` times, then parked;
* a refusal of syncd itself rather than of the item (bad credentials, access rights, TLS, a
  read-only replica) backs off like a temporary failure: every item would fail alike, and the
  failing job shows it; parking them all would hide one configuration error behind thousands.

Jobs take work in order of next attempt and skip parked items, so a poison item is never in
the way of the others. ``syncd.store.parked`` lists, counts and retries parked items; this
module also resolves a parked request (the operator's outcome, mailed to the requester).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from prometheus_client import Counter

from syncd.core.backoff import backoff_seconds
from syncd.core.intake import normalise_email
from syncd.core.model import AccountStatus, RequestKind, RequestView, Status
from syncd.directory.connection import NoSuchEntry
from syncd.errors import DecisionRefused, DirectoryRejected, PermanentError, TemporaryError
from syncd.jobs import notify
from syncd.runtime import Runtime
from syncd.store import accounts, audit, grants, leadership, parked, repo
from syncd.store.db import Connection, RowMapping, transaction

log = structlog.get_logger(__name__)

# Served by the daemon (metrics.listen); the web process serves the database's count and oldest.
PARKED = Counter("syncd_items_parked", "Items this process parked (refused for good), by kind", ["kind"])

# Tries of an item that crashes, or whose entry is missing, before it is parked.
MAX_ATTEMPTS = 5


# Refusals that say nothing about the item: the directory refuses syncd itself (credentials,
# access rights, a read-only replica, TLS required). Parking every item would hide that.
_SERVER_WIDE_CODES = frozenset({8, 13, 48, 49, 50, 53})


def _refuses_syncd_itself(error: BaseException) -> bool:
    if not isinstance(error, DirectoryRejected) or not hasattr(error, "result_code"):
        return False
    # No result code on a translated error: a TLS refusal, or a connection that could not open.
    return error.result_code is None or error.result_code in _SERVER_WIDE_CODES


def parks(error: BaseException, attempts: int) -> bool:
    """Whether an item that failed ``attempts`` times, the last time with ``error``, is parked."""
    if isinstance(error, TemporaryError) or _refuses_syncd_itself(error):
        return False
    if isinstance(error, PermanentError) and not isinstance(error, NoSuchEntry):
        return True
    return attempts >= MAX_ATTEMPTS


def describe(error: BaseException) -> str:
    """The error as recorded: its message, or its class and message for a crash."""
    text = str(error) if isinstance(error, (TemporaryError, PermanentError)) else f"{type(error).__name__}: {error}"
    return text[:2000]


def failure_values(error: BaseException, attempts: int, now: datetime, ceiling: float) -> dict[str, Any]:
    """The write-state columns after a failure: backed off, or parked with the reason."""
    text = describe(error)
    if parks(error, attempts):
        return dict(attempts=attempts, last_error=text, next_attempt_at=None, parked_at=now, parked_reason=text)
    return dict(attempts=attempts, last_error=text, next_attempt_at=now + timedelta(seconds=backoff_seconds(
        attempts, ceiling)))


def request_failed(conn: Connection, rt: Runtime, row: RequestView, error: BaseException, now: datetime) -> bool:
    """Record a failure of one request (claimed, or locked in ``conn``); True if it was parked."""
    values = failure_values(error, row.attempts + 1, now, rt.settings.jobs.max_backoff_seconds)
    repo.update_request(conn, row.id, now, claimed_by=None, claimed_until=None, **values)
    parked = "parked_at" in values
    if parked:
        PARKED.labels("requests").inc()
        repo.add_event(conn, row.id, "parked", now, actor="syncd", detail={"reason": values["parked_reason"]})
        audit.record(conn, at=now, actor="syncd", action="parked", request_id=row.id,
                     detail={"reason": values["parked_reason"]})
        log.error("request_parked", request_id=row.id, status=row.status.value, attempt=values["attempts"],
                  error=values["last_error"][:200])
    else:
        log.warning("request_apply_failed" if row.status is not Status.NEW else "intake_retry_later",
                    request_id=row.id, attempt=values["attempts"], error=values["last_error"][:200],
                    retry_at=values["next_attempt_at"].isoformat(), temporary=isinstance(error, TemporaryError))
    return parked


def accounts_failed(rt: Runtime, failures: list[tuple[RowMapping, BaseException]]) -> int:
    """Record failed LDAP writes of accounts, in one transaction; return how many were parked."""
    now = rt.clock()
    parked = 0
    with transaction(rt.engine) as conn:
        for account, error in failures:
            values = failure_values(error, account["ldap_attempts"] + 1, now, rt.settings.jobs.max_backoff_seconds)
            accounts.record_failure(conn, account["id"], values)
            if "parked_at" in values:
                parked += 1
                audit.record(conn, at=now, actor="syncd", action="parked", target=f"account:{account['id']}",
                             detail={"reason": values["parked_reason"]})
                log.error("account_parked", account_id=account["id"], error=values["last_error"][:200])
            else:
                log.warning("account_write_retry_later", account_id=account["id"], attempt=values["attempts"],
                            error=values["last_error"][:200], temporary=isinstance(error, TemporaryError))
    PARKED.labels("accounts").inc(parked)
    return parked


def memberships_failed(rt: Runtime, rows: list[RowMapping], error: BaseException) -> int:
    """Record a failed LDAP write of these memberships; return how many were parked."""
    now = rt.clock()
    parked = 0
    with transaction(rt.engine) as conn:
        for row in rows:
            values = failure_values(error, row["attempts"] + 1, now, rt.settings.jobs.max_backoff_seconds)
            grants.record_failure(conn, row["account_id"], row["role_key"], values)
            if "parked_at" in values:
                parked += 1
                audit.record(conn, at=now, actor="syncd", action="parked", request_id=row["granted_by_request"],
                             target=f"membership:{row['account_id']}:{row['role_key']}",
                             detail={"reason": values["parked_reason"]})
    PARKED.labels("memberships").inc(parked)
    if parked:
        log.error("memberships_parked", count=len(rows), parked=parked, error=describe(error)[:200])
    else:
        log.warning("memberships_retry_later", count=len(rows), error=describe(error)[:200])
    return parked


def refuse_request(rt: Runtime, request_id: int, reason: str, operator: str = "operator") -> str:
    """Resolve a parked request: it is refused with ``reason``, which the requester receives by mail.

    Its membership, if the decision had granted one, is withdrawn (it never reached LDAP; the
    accounts job makes sure). Returns the status it had. Raises ``DecisionRefused`` when the
    request is not parked.
    """
    now = rt.clock()
    with transaction(rt.engine) as conn:
        row = repo.lock_request(conn, request_id)
        if row is None or row.parked_at is None:
            raise DecisionRefused("not_parked", f"request {request_id} is not parked")
        repo.update_request(conn, request_id, now, parked=True, status=Status.REFUSED.value, decided_at=now,
                            decided_by=operator, comment=reason, parked_at=None, parked_reason=None,
                            next_attempt_at=None, claimed_by=None, claimed_until=None)
        grants.revoke_granted_by(conn, request_id, now)
        _forget_unwritten_account(conn, row, now)
        detail = {"status": Status.REFUSED.value, "comment": reason, "was": row.status.value,
                  "parked_reason": row.parked_reason}
        repo.add_event(conn, request_id, "resolved", now, actor=operator, detail=detail)
        audit.record(conn, at=now, actor=operator, action="parked_resolved", request_id=request_id, detail=detail)
        # The e-mail as intake would have left it.
        fresh = replace(repo.get_request(conn, request_id), email=normalise_email(row.email) or row.email)
        notify.to_requester(conn, fresh, "request_refused", rt.mappings, rt.settings.web.base_url, now,
                            language=notify.language_of(rt.settings))
    log.info("parked_request_refused", request_id=request_id, was=row.status.value)
    return row.status.value


def _forget_unwritten_account(conn: Connection, row: RequestView, now: datetime) -> None:
    """An account request refused after its acceptance: the account it created, never written to
    LDAP and used by nothing else, goes, so that the person may ask again with the same address."""
    if row.kind is not RequestKind.ACCOUNT or row.account_id is None:
        return
    account = repo.account_by_id(conn, row.account_id)
    if account is None or account.status != AccountStatus.PENDING or account.ldap_version is not None:
        return
    if not repo.has_other_requests(conn, account.id, row.id):
        repo.update_request(conn, row.id, now, account_id=None)
        accounts.remove(conn, account.id)


def retry(rt: Runtime, refs: list[str] | None, operator: str = "operator") -> list[str]:
    """Put parked items back in line after a fix (``None``: all of them); return those put back."""
    now = rt.clock()
    with transaction(rt.engine) as conn:
        done = parked.retry(conn, refs, now)
        for ref in done:
            kind, key = parked.parse_ref(ref)
            request_id = key[0] if kind == "requests" else None
            if request_id is not None:
                repo.add_event(conn, request_id, "retried", now, actor=operator)
            audit.record(conn, at=now, actor=operator, action="parked_retried", request_id=request_id, target=ref)
        if done:
            leadership.notify(conn, leadership.WAKE_CHANNEL, "apply")   # intake and apply look at once
    log.info("parked_retried", count=len(done))
    return done


def settle_membership(rt: Runtime, ref: str, reason: str, operator: str = "operator") -> None:
    """Resolve a parked membership write by hand: the operator made LDAP right (or the group is
    gone for good); the row is recorded as matching LDAP, with the reason in the audit trail."""
    kind, key = parked.parse_ref(ref)
    if kind != "memberships":
        raise DecisionRefused("wrong_kind", f"{ref} is not a membership")
    now = rt.clock()
    with transaction(rt.engine) as conn:
        row = grants.membership(conn, key[0], key[1], "parked")
        if row is None:
            raise DecisionRefused("not_parked", f"{ref} is not parked")
        grants.settle(conn, key[0], key[1], now)
        audit.record(conn, at=now, actor=operator, action="parked_resolved", request_id=row["granted_by_request"],
                     target=ref, detail={"reason": reason, "parked_reason": row["parked_reason"]})
    log.info("parked_membership_settled", account_id=key[0], role=key[1])
