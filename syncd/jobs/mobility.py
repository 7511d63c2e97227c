"""An accepted mobility: the account moves to its new organisation, with what it may keep.

Written in the decision's transaction (``decisions.grant``): the account's
``primary_organisation`` and ``version`` (so the ``accounts`` job, or the apply job right away,
writes the new organisation to LDAP), and the withdrawal of every right held through the old
organisation's local management (``routing.withdrawn_on_mobility``), each through the one
withdrawal use-case (``habilitations.withdraw``: a mail to the holder, the member taken out of
its group by the ``accounts`` job). The person's undecided requests move with them (the
``reroute`` job sends them to the new organisation's deciders). An ``organisation_changed``
event on the request records what moved, for the history and the requester's mail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from syncd.core import routing
from syncd.core.model import RequestView
from syncd.errors import PermanentError
from syncd.jobs.habilitations import withdraw
from syncd.runtime import Runtime
from syncd.store import accounts, audit, grants, repo
from syncd.store.db import Connection

log = structlog.get_logger(__name__)

CHANGED_EVENT = "organisation_changed"


def move(conn: Connection, rt: Runtime, row: RequestView, decided_by: str | None, now: datetime) -> None:
    """Move the request's account to the request's organisation (an accepted mobility)."""
    account = repo.account_by_id(conn, row.account_id) if row.account_id else None
    if account is None:
        raise PermanentError("the mobility's account does not exist")
    old, new = account.primary_organisation, row.organisation_code
    accounts.move_organisation(conn, account.id, new, now)
    # Requests still undecided follow the person: the reroute job sends them to the new
    # organisation's deciders, and the old organisation's can no longer decide them.
    repo.follow_mobility(conn, account.id, row.id, new, now)
    held = {m["role_key"]: m for m in grants.held_by(conn, account.id)
            if rt.mappings.role(m["role_key"]) is not None}
    gone = routing.withdrawn_on_mobility({k: rt.mappings.management_of(k) for k in held})
    old_name = _name(rt, old)
    reason = (f"Changement d'organisme : vous quittez {old_name} pour {_name(rt, new)}, "
              f"et cette habilitation était gérée localement par {old_name}.")
    actor = decided_by or "syncd"
    for role_key in gone:
        withdraw(conn, rt, account, role_key, actor, reason, now, granted_by_request=held[role_key]["granted_by_request"])
    detail: dict[str, Any] = {"from": old, "to": new, "withdrawn": gone}
    repo.add_event(conn, row.id, CHANGED_EVENT, now, actor=actor, detail=detail)
    audit.record(conn, at=now, actor=actor, action="organisation_changed", request_id=row.id,
                 target=account.id, detail=detail)
    log.info("organisation_changed", request_id=row.id, account_id=account.id, from_organisation=old,
             to_organisation=new, withdrawn=len(gone))


def withdrawn_labels(conn: Connection, rt: Runtime, request_id: int) -> list[str]:
    """The labels of the rights a mobility withdrew, from its ``organisation_changed`` event."""
    for event in reversed(repo.events_of(conn, request_id)):
        if event["event"] == CHANGED_EVENT:
            keys = (event["detail"] or {}).get("withdrawn", [])
            return [r.label if (r := rt.mappings.role(k)) else k for k in keys]
    return []


def _name(rt: Runtime, code: str) -> str:
    org = rt.mappings.organisation(code)
    return org.name if org else code
