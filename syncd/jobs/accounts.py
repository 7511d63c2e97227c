"""Accounts over time: push profile changes and disablements to LDAP, remove revoked memberships.

The accounts table is the desired state: a row whose ``version`` is ahead of its
``ldap_version`` is written again (only the attributes syncd owns). A disabled account loses
every membership, in the table (marked revoked, history kept) and in LDAP.

Work is taken in order of next attempt (an account's change, or the end of its back-off) and a
write that fails is that item's alone (``syncd.jobs.parking``): a temporary failure backs it
off, a refusal parks it. So however many accounts the directory refuses, a disable behind them
reaches LDAP in the next pass. Disabling a parked account gives it a new try, and the disable is
written on its own before the other attributes, so a refused value does not keep it out.
"""

from __future__ import annotations

from collections import defaultdict

import structlog

from syncd.core.model import AccountStatus
from syncd.directory import names
from syncd.errors import PermanentError, TemporaryError
from syncd.jobs import parking
from syncd.jobs.apply import push_account
from syncd.runtime import Runtime
from syncd.store import accounts, audit, grants
from syncd.store.db import transaction

log = structlog.get_logger(__name__)


def sync_accounts(rt: Runtime) -> int:
    """Write changed or disabled accounts to LDAP; return how many."""
    now = rt.clock()
    with transaction(rt.engine) as conn:
        dirty = accounts.due_for_ldap(conn, now, rt.settings.jobs.batch_size)
        for a in dirty:
            if a["status"] == AccountStatus.DISABLED:
                grants.revoke(conn, a["id"], None, now)
    written = 0
    failures: list = []
    try:
        for account in dirty:
            try:
                _write(rt, account)
                written += 1
            except (TemporaryError, PermanentError) as exc:
                failures.append((account, exc))
                if isinstance(exc, TemporaryError):
                    raise              # the directory is down: this one backs off, the job too
    finally:
        if failures:
            parking.accounts_failed(rt, failures)
    remove_revoked(rt)
    return written


def _write(rt: Runtime, account) -> None:
    if account["status"] == AccountStatus.DISABLED and account["ldap_version"] is not None:
        # The disable on its own first: a value the directory refuses elsewhere in the entry
        # (which parks the account below) must not leave a disabled person able to log in.
        rt.directory.disable_account(account["id"])
    push_account(rt, account)


def remove_revoked(rt: Runtime) -> int:
    """Take revoked memberships out of their groups, batched per group.

    A group that refuses the removal parks its memberships (or backs them off, if temporary);
    the other groups go on.
    """
    layout = rt.mappings.directory
    now = rt.clock()
    with transaction(rt.engine) as conn:
        rows = grants.removals_due(conn, now)
    by_group: dict[str, list] = defaultdict(list)
    unmapped = []
    for row in rows:
        role = rt.mappings.role(row["role_key"])
        if role is not None:
            by_group[role.group].append(row)
        else:
            unmapped.append(row)
    if unmapped:
        parking.memberships_failed(rt, unmapped, PermanentError(
            "the role is no longer in the mappings: its group is unknown"))
    removed = 0
    for group, group_rows in sorted(by_group.items()):
        try:
            rt.directory.remove_members(group, [names.person_dn(layout, r["account_id"]) for r in group_rows])
        except TemporaryError as exc:
            parking.memberships_failed(rt, group_rows, exc)
            raise
        except PermanentError as exc:
            parking.memberships_failed(rt, group_rows, exc)
            continue
        now = rt.clock()
        with transaction(rt.engine) as conn:
            for r in group_rows:
                audit.record(conn, at=now, actor="syncd", action="ldap_member_removed",
                             request_id=r["granted_by_request"], target=names.group_dn(layout, group),
                             detail={"member": names.person_dn(layout, r["account_id"])})
                grants.mark_removed(conn, r["account_id"], r["role_key"], now)
        removed += len(group_rows)
        log.info("members_removed", group=group, count=len(group_rows))
    return removed
