"""Applying deciders' decisions and tacit acceptance to the store.

The status change, its history event, the desired-state change (a new account, a membership)
and the requester's mail are written in one transaction. LDAP is changed later by the apply
job, which is what ``applied_at`` records.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from syncd.core import lifecycle
from syncd.core.model import Decision, RequestKind, Status, Verdict
from syncd.errors import DecisionRefused
from syncd.jobs import notify
from syncd.jobs.routing import current_route
from syncd.jobs.runtime import Runtime
from syncd.store import audit, leadership, repo
from syncd.store.db import transaction
from syncd.store.tables import accounts, memberships

log = structlog.get_logger(__name__)


def decide_request(rt: Runtime, request_id: int, decider_ref: str, verdict: Verdict,
                   comment: str | None = None, channel: str = "cli") -> lifecycle.Transition:
    """Take one decision, or raise ``DecisionRefused`` (recorded in the history as an attempt)."""
    now = rt.clock()
    refusal: DecisionRefused | None = None
    with transaction(rt.engine) as conn:
        row = repo.get_request(conn, request_id, for_update=True)
        if row is None:
            raise DecisionRefused("not_found", f"There is no request {request_id}.")
        decider = repo.find_account(conn, decider_ref)
        decider_id = decider["id"] if decider else decider_ref
        authorised = decider is not None and decider["status"] == "active" and \
            decider_id in current_route(conn, rt, row).decider_ids
        try:
            transition = lifecycle.decide(repo.request_view(row), Decision(request_id, verdict, decider_id, comment),
                                          now=now, authorised=authorised)
        except DecisionRefused as exc:
            refusal = exc
        else:
            record_transition(conn, rt, row, transition, channel=channel)
            leadership.notify(conn, leadership.WAKE_CHANNEL, "apply")   # delivered at commit
    if refusal is not None:
        with transaction(rt.engine) as conn:
            detail = {"code": refusal.code, "verdict": verdict.value, "channel": channel}
            if refusal.code != "not_found":
                repo.add_event(conn, request_id, "decision_refused", now, actor=decider_id, detail=detail)
            audit.record(conn, at=now, actor=str(decider_id)[:100], action="decision_refused",
                         request_id=request_id if refusal.code != "not_found" else None, detail=detail)
        log.info("decision_refused", request_id=request_id, code=refusal.code, channel=channel)
        raise refusal
    log.info("request_decided", request_id=request_id, status=transition.to_status.value, channel=channel)
    return transition


def record_transition(conn: Connection, rt: Runtime, row: RowMapping, t: lifecycle.Transition,
                      channel: str | None = None) -> None:
    repo.update_request(conn, row["id"], t.at, status=t.to_status.value, decided_at=t.at,
                        decided_by=t.decided_by, comment=t.comment)
    detail = {"status": t.to_status.value}
    if channel:
        detail["channel"] = channel
    if t.comment:
        detail["comment"] = t.comment
    repo.add_event(conn, row["id"], t.event, t.at, actor=t.decided_by, detail=detail)
    audit.record(conn, at=t.at, actor=t.decided_by or "syncd", action=t.event, request_id=row["id"],
                 target=f"{row['kind']}:{row['role_key'] or row['email']}", detail=detail)
    if t.to_status.is_accepted:
        grant(conn, rt, row, t.at)
    elif t.to_status is Status.REFUSED:
        fresh = repo.get_request(conn, row["id"])
        notify.to_requester(conn, fresh, "request_refused", rt.mappings, rt.settings.web.base_url, t.at)


def grant(conn: Connection, rt: Runtime, row: RowMapping, now: datetime) -> None:
    """Write the desired state an accepted request asks for: a new account, or a membership."""
    if row["kind"] == RequestKind.ACCOUNT.value:
        existing = repo.account_by_email(conn, row["email"])
        account_id = existing["id"] if existing else repo.new_account_id()
        if existing is None:
            conn.execute(insert(accounts).values(
                id=account_id, email=row["email"], civility=row["civility"], given_name=row["given_name"],
                family_name=row["family_name"], primary_organisation=row["organisation_code"],
                internal=bool(row["internal"]), terms_version=row["terms_version"],
                terms_accepted_at=repo.aware(row["submitted_at"]), status="pending",
                created_at=now, updated_at=now))
        repo.update_request(conn, row["id"], now, account_id=account_id)
        return
    role = rt.mappings.role(row["role_key"])
    months = role.validity_months if role else None
    key = (memberships.c.account_id == row["account_id"]) & (memberships.c.role_key == row["role_key"])
    current = conn.execute(select(memberships).where(key)).mappings().first()
    start = now
    if row["kind"] == RequestKind.RENEWAL.value and current and current["expires_at"] and not current["revoked_at"]:
        start = max(now, current["expires_at"])   # a renewal extends the validity, it does not cut it
    expires_at = start + timedelta(days=30 * months) if months else None
    values = dict(granted_by_request=row["id"], granted_at=now, expires_at=expires_at, revoked_at=None,
                  applied_at=None)
    if current:
        conn.execute(update(memberships).where(key).values(**values))
    else:
        conn.execute(insert(memberships).values(account_id=row["account_id"], role_key=row["role_key"], **values))
