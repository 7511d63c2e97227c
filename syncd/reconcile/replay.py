"""``syncd replay REQUEST_ID``: write what one accepted request asked for to LDAP again.

Idempotent: the account entry is brought up to date (only the attributes syncd owns, only
those that differ), the role group is created if it is missing, the member is added if it is
not there. Replaying twice writes nothing the second time.

* A request not accepted (pending, refused, rejected) is refused: there is nothing to write.
* A habilitation revoked since its request was accepted is refused: replaying would grant a
  right that was taken away.
* A request not applied yet (the apply job failed or has not run) is marked applied as the
  apply job would do it: ``applied`` event, ``memberships.applied_at``, the acceptance mail.
  One already applied gets a ``replayed`` event saying whether anything had to be written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from syncd.core.model import AccountStatus, RequestKind, Status
from syncd.directory import names
from syncd.errors import PermanentError
from syncd.jobs.apply import record_outcomes
from syncd.runtime import Runtime
from syncd.reconcile.compare import AccountComparer
from syncd.reconcile.ldapread import LeanReader
from syncd.store import accounts, audit, grants, repo
from syncd.store.db import transaction

log = structlog.get_logger(__name__)

ACCEPTED = (Status.ACCEPTED.value, Status.ACCEPTED_TACITLY.value)
ACTOR = "replay"


class ReplayRefused(PermanentError):
    """The request cannot be replayed (not accepted, revoked, unknown role or account)."""


@dataclass
class ReplayResult:
    request_id: int
    kind: str
    account_written: str            # "created" / "updated" / "unchanged"
    group_created: bool = False
    member_added: bool | None = None    # None: not a habilitation
    first_application: bool = False

    @property
    def wrote(self) -> bool:
        return self.account_written != "unchanged" or self.group_created or bool(self.member_added)

    def to_json(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "kind": self.kind, "account": self.account_written,
                "group_created": self.group_created, "member_added": self.member_added,
                "first_application": self.first_application, "wrote": self.wrote}

    def describe(self) -> str:
        parts = [f"account {self.account_written}"]
        if self.member_added is not None:
            if self.group_created:
                parts.append("group created")
            parts.append("member added" if self.member_added else "already a member")
        what = "applied" if self.first_application else ("repaired" if self.wrote else "nothing to do")
        return f"request {self.request_id}: {what} ({', '.join(parts)})"


def replay(rt: Runtime, request_id: int) -> ReplayResult:
    layout = rt.mappings.directory
    with transaction(rt.engine, readonly=True) as conn:
        row = repo.get_request(conn, request_id)
        if row is None:
            raise ReplayRefused(f"no request {request_id}")
        if row.status not in ACCEPTED:
            raise ReplayRefused(f"request {request_id} is {row.status.value}: only accepted requests are written to LDAP")
        account = accounts.by_ids(conn, [row.account_id]).get(row.account_id)   # its LDAP values
        membership = None
        if row.kind is not RequestKind.ACCOUNT:
            membership = grants.membership(conn, row.account_id, row.role_key)
    if account is None:
        raise ReplayRefused(f"request {request_id} has no account to write")
    if account["status"] not in tuple(AccountStatus):
        raise ReplayRefused(f"account {account['id']} is {account['status']}")
    role = app = None
    if row.kind is not RequestKind.ACCOUNT:
        role = rt.mappings.role(row.role_key)
        app = rt.mappings.application_of(row.role_key)
        if role is None or app is None:
            raise ReplayRefused(f"role {row.role_key!r} is no longer in the mappings")
        if membership is None or membership["revoked_at"] is not None:
            raise ReplayRefused(f"request {request_id}: the habilitation {row.role_key} was revoked since; "
                                "replaying it would grant it again")
        if account["status"] != AccountStatus.ACTIVE:
            raise ReplayRefused(f"account {account['id']} is {account['status']}: no habilitation is written for it")

    directory = rt.directory
    comparer = AccountComparer(layout)
    dn = names.person_dn(layout, account["id"])
    exists = directory.read_entry(dn, ["1.1"]) is not None
    written = directory.upsert_account(account["id"], comparer.desired(account, first_write=not exists),
                                       layout.people.object_classes)
    result = ReplayResult(request_id, row.kind.value, written)
    if role is not None and app is not None:
        result.group_created = directory.ensure_group(role.group, role.key, app.key, role.label, application_label=app.label) == "created"
        with LeanReader(rt.settings.ldap) as reader:
            present = reader.compare(names.group_dn(layout, role.group), layout.groups.member_attribute, dn)
        if not present:
            directory.add_members(role.group, [dn])
        result.member_added = not present
    group_target = names.group_dn(layout, role.group) if role is not None else None

    now = rt.clock()
    with transaction(rt.engine) as conn:
        accounts.mark_written(conn, account, now)
        if written != "unchanged":
            audit.record(conn, at=now, actor=ACTOR, action="ldap_account_written", request_id=request_id,
                         target=dn, detail={"version": account["version"], "replay": True})
        fresh = repo.get_request(conn, request_id)
        result.first_application = fresh.applied_at is None
        if not result.first_application:
            if result.member_added:
                audit.record(conn, at=now, actor=ACTOR, action="ldap_member_added", request_id=request_id,
                             target=group_target, detail={"member": dn, "replay": True})
            repo.add_event(conn, request_id, "replayed", now, actor=ACTOR, detail=result.to_json())
    if result.first_application:
        # The apply job's own bookkeeping (applied event, memberships.applied_at, the mail),
        # so a replayed request ends exactly as an applied one.
        record_outcomes(rt, [fresh], {}, {request_id: fresh})
    log.info("request_replayed", **result.to_json())
    return result
