"""Applying a reconciliation plan: groups first, then accounts, then member values.

Each write is re-validated against the database just before it is made, because a plan
may be seconds old: an account is written from its row as it is *now* (so a profile change
made meanwhile is not undone), a member is added only if still desired and removed only if
still not desired. Member values go through ``Directory.add_members`` /
``remove_members``: batched per group within the request-size limit, idempotent.

A permanent failure on one object is recorded and the rest goes on; a directory outage
stops the run (``DirectoryUnavailable`` goes up) — what was written stays written, and the
next run plans from what is there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from syncd.core.model import AccountStatus
from syncd.directory import names
from syncd.directory.connection import NoSuchEntry
from syncd.errors import PermanentError
from syncd.jobs.apply import record_stamp
from syncd.runtime import Runtime
from syncd.reconcile.compare import AccountComparer, Keys
from syncd.reconcile.model import Plan
from syncd.reconcile.planning import NoProgress, Progress
from syncd.store import accounts, audit, grants
from syncd.store.db import transaction

log = structlog.get_logger(__name__)

_BATCH = 500
_AUDIT_CHUNK = 1000      # member values per audit row
ACTOR = "reconcile"


@dataclass
class ApplyResult:
    groups_created: int = 0
    accounts_created: int = 0
    accounts_updated: int = 0
    accounts_disabled: int = 0
    members_added: int = 0
    members_removed: int = 0
    skipped: int = 0            # dropped by re-validation: the database changed meanwhile
    errors: list[str] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return (self.groups_created + self.accounts_created + self.accounts_updated + self.accounts_disabled
                + self.members_added + self.members_removed)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _chunks(items: list, size: int = _BATCH) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def apply_plan(rt: Runtime, plan: Plan, progress: Progress | None = None) -> ApplyResult:
    progress = progress or NoProgress()
    result = ApplyResult()
    layout = rt.mappings.directory
    keys = Keys(layout)
    comparer = AccountComparer(layout)
    directory = rt.directory

    for g in plan.missing_groups:
        role = rt.mappings.role(g.role_key)
        app = rt.mappings.application_of(g.role_key)
        if role is None or app is None:
            continue
        try:
            if directory.ensure_group(role.group, role.key, app.key, role.label, application_label=app.label) == "created":
                result.groups_created += 1
                _audit(rt, "ldap_group_created", g.dn, {"role_key": role.key})
        except PermanentError as exc:
            result.errors.append(f"group {role.group}: {exc}")

    writes = [a for a in plan.accounts if a.action in ("create", "update")]
    if writes:
        progress.phase("accounts (writing)", len(writes))
    for batch in _chunks(writes):
        with transaction(rt.engine, readonly=True) as conn:
            fresh = accounts.by_ids(conn, [a.account_id for a in batch])
        written: list[tuple[Any, str, dict, str, str | None]] = []
        try:
            for drift in batch:
                row = fresh.get(drift.account_id)
                if row is None or row["status"] not in (AccountStatus.ACTIVE, AccountStatus.DISABLED):
                    result.skipped += 1
                    continue
                create = drift.action == "create"
                try:
                    attrs = comparer.desired(row, first_write=create)
                    outcome, stamp = directory.write_account(row["id"], attrs, layout.people.object_classes)
                    if not comparer.status_mapped and row["status"] == AccountStatus.DISABLED:
                        directory.disable_account(row["id"])
                        stamp = None            # moved by that second write: verified next run
                except PermanentError as exc:
                    result.errors.append(f"account {row['id']}: {exc}")
                    continue
                if outcome == "created":
                    result.accounts_created += 1
                elif outcome == "updated":
                    result.accounts_updated += 1
                written.append((row, outcome, attrs, drift.kind, stamp))
        finally:
            # One transaction per batch (a commit per account would cost as much as its LDAP
            # write), also when the batch stopped half-way: what was written is recorded.
            if written:
                now = rt.clock()
                with transaction(rt.engine) as conn:
                    for row, outcome, attrs, kind, stamp in written:
                        # The version read before the write: a change committed meanwhile keeps
                        # the account behind (the accounts job writes it next).
                        accounts.mark_written(conn, row, now)
                        record_stamp(conn, rt, row, stamp)
                        if outcome != "unchanged":
                            audit.record(conn, at=now, actor=ACTOR, action="ldap_account_written",
                                         target=names.person_dn(layout, row["id"]),
                                         detail={"attributes": sorted(attrs), "version": row["version"],
                                                 "drift": kind})
        progress.advance(len(batch))

    for drift in plan.accounts:
        if drift.action != "disable":
            continue
        try:
            if directory.disable_account(drift.account_id):
                result.accounts_disabled += 1
                _audit(rt, "ldap_account_disabled", drift.dn, {"drift": drift.kind})
        except NoSuchEntry:
            result.skipped += 1
        except PermanentError as exc:
            result.errors.append(f"account {drift.account_id}: {exc}")

    member_groups = [g for g in plan.groups if g.size]
    if member_groups:
        progress.phase("groups (writing)", len(member_groups))
    trail = _MemberTrail(rt)
    try:
        _write_members(rt, member_groups, keys, directory, result, trail, progress)
    finally:
        trail.flush()
    log.info("reconcile_applied", **{k: v for k, v in result.to_json().items() if k != "errors"},
             errors=len(result.errors))
    return result


def _write_members(rt: Runtime, member_groups: list, keys: Keys, directory: Any, result: ApplyResult,
                   trail: "_MemberTrail", progress: Progress) -> None:
    for g in member_groups:
        try:
            if g.add:
                still = _still_desired(rt, g.role_key, g.add)
                dns = [dn for account_id, dn in zip(g.add, g.add_dns, strict=True) if account_id in still]
                result.skipped += len(g.add) - len(dns)
                if dns:
                    directory.add_members(g.group, dns)
                    result.members_added += len(dns)
                    trail.add("ldap_members_added", g.dn, dns)
            if g.remove:
                ids = {value: keys.account_id_of_dn(value) for value in g.remove}
                now_desired = _still_desired(rt, g.role_key, [i for i in ids.values() if i])
                values = [v for v, account_id in ids.items() if account_id not in now_desired]
                result.skipped += len(g.remove) - len(values)
                if values:
                    change = directory.remove_members(g.group, values)
                    result.members_removed += change.requested - change.conflicts
                    trail.add("ldap_members_removed", g.dn, values)
        except PermanentError as exc:
            result.errors.append(f"group {g.group}: {exc}")
        progress.advance(1)


def _audit(rt: Runtime, action: str, target: str, detail: dict[str, Any]) -> None:
    now = rt.clock()
    with transaction(rt.engine) as conn:
        audit.record(conn, at=now, actor=ACTOR, action=action, target=target, detail=detail)


class _MemberTrail:
    """Audit rows for member changes: one per group and 1,000 values, committed 100 at a time.

    (A row and a transaction per value would cost more than the LDAP writes; rows are flushed
    also when the run stops on an error, so what was written is in the trail.)
    """

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.pending: list[tuple[str, str, list[str]]] = []

    def add(self, action: str, group_dn: str, values: list[str]) -> None:
        for chunk in _chunks(values, _AUDIT_CHUNK):
            self.pending.append((action, group_dn, chunk))
        if len(self.pending) >= 100:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        now = self.rt.clock()
        with transaction(self.rt.engine) as conn:
            for action, group_dn, chunk in rows:
                audit.record(conn, at=now, actor=ACTOR, action=action, target=group_dn,
                             detail={"count": len(chunk), "members": chunk})


def _still_desired(rt: Runtime, role_key: str, account_ids: list[str]) -> set[str]:
    """Which of these accounts the database wants in the role's group right now."""
    found: set[str] = set()
    for batch in _chunks(sorted(set(account_ids))):
        with transaction(rt.engine, readonly=True) as conn:
            found |= grants.active_holders(conn, role_key, batch)
    return found
