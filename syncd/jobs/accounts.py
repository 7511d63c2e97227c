"""Accounts over time: push profile changes and disablements to LDAP, remove revoked memberships.

The accounts table is the desired state: a row whose ``version`` is ahead of its
``ldap_version`` is written again (only the attributes syncd owns). A disabled account loses
every membership, in the table (marked revoked, history kept) and in LDAP.
"""

from __future__ import annotations

from collections import defaultdict

import structlog
from sqlalchemy import or_, select, update

from syncd.directory import names
from syncd.errors import PermanentError
from syncd.jobs.apply import push_account
from syncd.jobs.runtime import Runtime
from syncd.store import audit
from syncd.store.db import transaction
from syncd.store.tables import accounts, memberships

log = structlog.get_logger(__name__)


def sync_accounts(rt: Runtime) -> int:
    """Write changed or disabled accounts to LDAP; return how many."""
    now = rt.clock()
    with transaction(rt.engine) as conn:
        dirty = list(conn.execute(select(accounts).where(
            accounts.c.status.in_(("active", "disabled")),
            or_(accounts.c.ldap_version.is_(None), accounts.c.ldap_version < accounts.c.version))
            .order_by(accounts.c.updated_at).limit(rt.settings.jobs.batch_size)).mappings())
        for a in dirty:
            if a["status"] == "disabled":
                conn.execute(update(memberships).where(memberships.c.account_id == a["id"],
                                                       memberships.c.revoked_at.is_(None))
                             .values(revoked_at=now, applied_at=None))
    written = 0
    for account in dirty:
        try:
            push_account(rt, account)
            written += 1
        except PermanentError as exc:
            log.error("account_write_failed", account_id=account["id"], error=str(exc))
    remove_revoked(rt)
    return written


def remove_revoked(rt: Runtime) -> int:
    """Take revoked memberships out of their groups, batched per group."""
    layout = rt.mappings.directory
    with transaction(rt.engine) as conn:
        rows = list(conn.execute(select(memberships).where(
            memberships.c.revoked_at.is_not(None), memberships.c.applied_at.is_(None))).mappings())
    by_group: dict[str, list] = defaultdict(list)
    for row in rows:
        role = rt.mappings.role(row["role_key"])
        if role is not None:
            by_group[role.group].append(row)
    removed = 0
    for group, group_rows in sorted(by_group.items()):
        rt.directory.remove_members(group, [names.person_dn(layout, r["account_id"]) for r in group_rows])
        now = rt.clock()
        with transaction(rt.engine) as conn:
            for r in group_rows:
                audit.record(conn, at=now, actor="syncd", action="ldap_member_removed",
                             request_id=r["granted_by_request"], target=names.group_dn(layout, group),
                             detail={"member": names.person_dn(layout, r["account_id"])})
                conn.execute(update(memberships).where(memberships.c.account_id == r["account_id"],
                                                       memberships.c.role_key == r["role_key"],
                                                       memberships.c.revoked_at.is_not(None))
                             .values(applied_at=now))
        removed += len(group_rows)
        log.info("members_removed", group=group, count=len(group_rows))
    return removed
