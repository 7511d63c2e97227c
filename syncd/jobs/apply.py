"""Apply: write accepted requests to LDAP, batched per group, then mark them applied.

Accounts are written first (a member must exist before it joins a group); memberships go in one
batched modify per group. A request whose write fails keeps its status, gains ``attempts``,
``last_error`` and a ``next_attempt_at`` with exponential backoff, and stays visible in
``syncd status``. A directory outage stops the pass: everything left is retried later.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping

from syncd.core.entries import account_attributes
from syncd.core.model import RequestKind, Status
from syncd.directory import names
from syncd.errors import DirectoryUnavailable, PermanentError, TemporaryError
from syncd.jobs import notify, passwords
from syncd.jobs.runtime import Runtime
from syncd.store import audit, repo
from syncd.store.db import transaction
from syncd.store.queue import claim_requests
from syncd.store.tables import accounts, memberships, requests

log = structlog.get_logger(__name__)

ACCEPTED = (Status.ACCEPTED.value, Status.ACCEPTED_TACITLY.value)


def backoff_seconds(attempts: int, ceiling: float) -> float:
    return min(ceiling, 5.0 * 2 ** max(0, attempts - 1))


def apply_accepted(rt: Runtime) -> int:
    """Write one batch of accepted, unapplied requests to LDAP; return how many were applied."""
    now = rt.clock()
    ids = claim_requests(rt.engine, statuses=ACCEPTED, worker_id=rt.worker_id, now=now,
                         lease_seconds=rt.settings.database.lease_seconds, limit=rt.settings.jobs.batch_size,
                         unapplied_only=True)
    if not ids:
        return 0
    with transaction(rt.engine) as conn:
        rows = list(conn.execute(select(requests).where(requests.c.id.in_(ids)).order_by(requests.c.id)).mappings())
    applied: list[RowMapping] = []
    failed: dict[int, tuple[str, bool]] = {}   # request id -> (error, retry helps)
    try:
        _write_accounts(rt, rows, applied, failed)
        _write_memberships(rt, [r for r in rows if r["kind"] != RequestKind.ACCOUNT.value and r["id"] not in failed],
                           applied, failed)
    except DirectoryUnavailable as exc:
        done = {r["id"] for r in applied} | set(failed)
        for r in rows:
            if r["id"] not in done:
                failed[r["id"]] = (str(exc), True)
        log.warning("ldap_unavailable", error=str(exc), pending=len(rows) - len(applied))
    _record(rt, applied, failed, {r["id"]: r for r in rows})
    return len(applied)


def _write_accounts(rt: Runtime, rows: list[RowMapping], applied: list, failed: dict) -> None:
    """Create or refresh the LDAP entry of every account these requests need."""
    layout = rt.mappings.directory
    needed = {r["account_id"] for r in rows if r["account_id"]}
    with transaction(rt.engine) as conn:
        wanted = {a["id"]: a for a in conn.execute(select(accounts).where(accounts.c.id.in_(needed))).mappings()}
    for row in rows:
        account = wanted.get(row["account_id"])
        is_account_request = row["kind"] == RequestKind.ACCOUNT.value
        if account is None:
            failed[row["id"]] = ("the request's account does not exist", False)
            continue
        if account["ldap_version"] is not None and not is_account_request:
            continue
        try:
            push_account(rt, account)
        except PermanentError as exc:
            failed[row["id"]] = (str(exc), False)
            continue
        if is_account_request:
            applied.append(row)


def push_account(rt: Runtime, account: RowMapping) -> None:
    """Write one account's owned attributes to its LDAP entry (creating it if needed)."""
    layout = rt.mappings.directory
    values = dict(account)
    if values["status"] == "pending":
        values["status"] = "active"
    attrs = account_attributes(values, layout.people, first_write=account["ldap_version"] is None,
                               organisation_dn=lambda code: names.organisation_dn(layout, code))
    rt.directory.upsert_account(account["id"], attrs, layout.people.object_classes)
    now = rt.clock()
    with transaction(rt.engine) as conn:
        mark_account_written(conn, account, now)
        audit.record(conn, at=now, actor="syncd", action="ldap_account_written",
                     target=names.person_dn(layout, account["id"]),
                     detail={"attributes": sorted(attrs), "version": account["version"]})
    log.info("account_written", account_id=account["id"])


def mark_account_written(conn, account: RowMapping, now: datetime) -> None:
    """Record that LDAP has this version of the account; a pending account becomes active.

    The version recorded is the one read before the write: a change committed meanwhile keeps
    the account behind, so it is written again.
    """
    conn.execute(update(accounts).where(accounts.c.id == account["id"])
                 .values(ldap_synced_at=now, ldap_version=account["version"]))
    conn.execute(update(accounts).where(accounts.c.id == account["id"], accounts.c.status == "pending")
                 .values(status="active"))


def _write_memberships(rt: Runtime, rows: list[RowMapping], applied: list, failed: dict) -> None:
    layout = rt.mappings.directory
    by_group: dict[str, list[RowMapping]] = defaultdict(list)
    for row in rows:
        role = rt.mappings.role(row["role_key"])
        if role is None:
            failed[row["id"]] = (f"role {row['role_key']!r} is no longer in the mappings", False)
            continue
        by_group[role.group].append(row)
    for group, group_rows in sorted(by_group.items()):
        dns = [names.person_dn(layout, r["account_id"]) for r in group_rows]
        try:
            rt.directory.add_members(group, dns)
        except PermanentError as exc:
            for r in group_rows:
                failed[r["id"]] = (str(exc), False)
            log.error("group_write_failed", group=group, error=str(exc), requests=len(group_rows))
            continue
        applied.extend(group_rows)
        log.info("members_added", group=group, count=len(dns))


def _record(rt: Runtime, applied: list[RowMapping], failed: dict[int, tuple[str, bool]],
            by_id: dict[int, RowMapping]) -> None:
    now = rt.clock()
    ceiling = rt.settings.jobs.max_backoff_seconds
    with transaction(rt.engine) as conn:
        for row in applied:
            repo.update_request(conn, row["id"], now, applied_at=now, last_error=None, next_attempt_at=None,
                                claimed_by=None, claimed_until=None)
            repo.add_event(conn, row["id"], "applied", now)
            if row["kind"] != RequestKind.ACCOUNT.value:
                role = rt.mappings.role(row["role_key"])
                audit.record(conn, at=now, actor="syncd", action="ldap_member_added", request_id=row["id"],
                             target=names.group_dn(rt.mappings.directory, role.group),
                             detail={"member": names.person_dn(rt.mappings.directory, row["account_id"])})
            if row["kind"] == RequestKind.ACCOUNT.value:
                passwords.issue_reset(conn, rt, row["account_id"], now, template="account_created_set_password")
            else:
                conn.execute(update(memberships).where(memberships.c.account_id == row["account_id"],
                                                       memberships.c.role_key == row["role_key"])
                             .values(applied_at=now))
                template = "request_accepted_tacitly" if row["status"] == Status.ACCEPTED_TACITLY.value \
                    else "request_accepted"
                notify.to_requester(conn, repo.get_request(conn, row["id"]), template, rt.mappings,
                                    rt.settings.web.base_url, now)
        for request_id, (error, retry_helps) in failed.items():
            attempts = by_id[request_id]["attempts"] + 1
            # A permanent failure needs a person to fix something: retry rarely, but retry.
            delay = backoff_seconds(attempts, ceiling) if retry_helps else ceiling
            repo.update_request(conn, request_id, now, attempts=attempts, last_error=error[:2000],
                                next_attempt_at=now + timedelta(seconds=delay), claimed_by=None, claimed_until=None)
            log.warning("request_apply_failed", request_id=request_id, attempt=attempts, retry_in=delay,
                        error=error[:200], temporary=retry_helps)
    if applied:
        log.info("requests_applied", count=len(applied))
