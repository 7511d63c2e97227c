"""Applying deciders' decisions and tacit acceptance to the store.

The status change, its history event, the desired-state change (a new account, a membership)
and the requester's mail are written in one transaction. LDAP is changed later by the apply
job, which is what ``applied_at`` records.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime

import structlog

from syncd.core import lifecycle
from syncd.core.model import AccountStatus, Decision, RequestKind, RequestView, Status, Verdict
from syncd.errors import DecisionRefused
from syncd.jobs import mobility, notify
from syncd.jobs.routing import current_route
from syncd.runtime import Runtime
from syncd.store import decision as decision_store, grants, repo
from syncd.store.db import Connection, transaction

log = structlog.get_logger(__name__)


def decide_request(rt: Runtime, request_id: int, decider_ref: str, verdict: Verdict,
                   comment: str | None = None, channel: str = "cli", *,
                   single_use: Callable[[Connection, DecisionRefused | None], None] | None = None
                   ) -> lifecycle.Transition:
    """Take one decision, or raise ``DecisionRefused`` (recorded in the history as an attempt).

    One write transaction either way. ``single_use`` is called in it once the outcome is known
    (None: the decision stands), before anything is written: the web hook records there the
    call's nonce or the decision link, so that the marker and the decision commit together, and
    it raises to write nothing (a replay).
    """
    with transaction(rt.engine) as conn:
        outcome = decide_in(conn, rt, request_id, decider_ref, verdict, comment, channel, single_use=single_use)
    return settled(outcome, request_id, channel)


def decide_in(conn: Connection, rt: Runtime, request_id: int, decider_ref: str, verdict: Verdict,
              comment: str | None = None, channel: str = "cli", *,
              single_use: Callable[[Connection, DecisionRefused | None], None] | None = None
              ) -> lifecycle.Transition | DecisionRefused:
    """``decide_request``'s writes in the caller's write transaction: the transition written, or
    the refusal recorded as an attempt. Pass what it returns to ``settled`` once committed."""
    now = rt.clock()
    refusal: DecisionRefused | None = None
    decider_id: str = decider_ref
    row, role_rows, held = decision_store.read(conn, request_id, decider_ref)
    if row is None:
        refusal = DecisionRefused("not_found", f"There is no request {request_id}.")
    else:
        decider, deciders = decision_store.decider_and_rivals(conn, decider_ref, row.organisation_code,
                                                               row.account_id, role_rows)
        decider_id = decider["id"] if decider else decider_ref
        authorised = decider is not None and decider["status"] == AccountStatus.ACTIVE and \
            decider_id in current_route(conn, rt, row, deciders).decider_ids
        try:
            transition = lifecycle.decide(row,
                                          Decision(request_id, verdict, decider_id, comment),
                                          now=now, authorised=authorised,
                                          internal_accounts=rt.mappings.policy.internal_account_tacit)
        except DecisionRefused as exc:
            refusal = exc
    if single_use is not None:
        single_use(conn, refusal)
    if refusal is not None:
        detail = {"code": refusal.code, "verdict": verdict.value, "channel": channel}
        known = refusal.code != "not_found"     # an attempt on no request is audited all the same
        if known:
            decision_store.add_event(conn, request_id, "decision_refused", now, decider_id, detail)
        decision_store.audit(conn, at=now, actor=str(decider_id), action="decision_refused",
                             request_id=request_id if known else None, target=None, detail=detail)
        return refusal
    # PostgreSQL: an acceptance's writes in one round trip. Not the other transitions: the
    # mails they queue go through SQLAlchemy, which reads results the pipeline holds back.
    lean = transition.to_status.is_accepted and row.kind not in _ONE_BY_ONE
    with decision_store.pipelined(conn) if lean else nullcontext():
        decision_store.wake_apply(conn)   # delivered at commit
        record_transition(conn, rt, row, transition, channel=channel, held=held)
    return transition


def settled(outcome: lifecycle.Transition | DecisionRefused, request_id: int, channel: str) -> lifecycle.Transition:
    """What ``decide_in`` returned, once its transaction committed: logged, and the refusal raised."""
    if isinstance(outcome, DecisionRefused):
        log.info("decision_refused", request_id=request_id, code=outcome.code, channel=channel)
        raise outcome
    log.info("request_decided", request_id=request_id, status=outcome.to_status.value, channel=channel)
    return outcome


def record_transition(conn: Connection, rt: Runtime, row: RequestView, t: lifecycle.Transition,
                      channel: str | None = None, held=decision_store.NOT_READ) -> None:
    """Write one transition of a request locked in ``conn``'s transaction, with its audit row
    (unsealed: it neither locks nor reads the chain, so concurrent decisions do not wait for each other).
    ``held``: the membership the request's (account, role) holds, when the caller read it already."""
    decision_store.record_decision(conn, row.id, t.to_status.value, t.at, t.decided_by, t.comment)
    detail = {"status": t.to_status.value}
    if channel:
        detail["channel"] = channel
    if t.comment:
        detail["comment"] = t.comment
    decision_store.add_event(conn, row.id, t.event, t.at, t.decided_by, detail)
    if t.to_status.is_accepted:
        grant(conn, rt, row, t.at, decided_by=t.decided_by, held=held)
    elif t.to_status is Status.REFUSED:
        # The request as the update above left it, without reading it back.
        decided = replace(row, status=t.to_status, decided_at=t.at, decided_by=t.decided_by, comment=t.comment)
        notify.to_requester(conn, decided, "request_refused", rt.mappings, rt.settings.web.base_url, t.at,
                            language=notify.language_of(rt.settings))
    decision_store.audit(conn, at=t.at, actor=t.decided_by or "syncd", action=t.event, request_id=row.id,
                         target=f"{row.kind.value}:{row.role_key or row.email}", detail=detail)


def grant(conn: Connection, rt: Runtime, row: RequestView, now: datetime, *, decided_by: str | None = None,
          held=decision_store.NOT_READ) -> None:
    """Write the desired state an accepted request asks for: a new account, a membership, or the
    account in its new organisation (``syncd.jobs.mobility``)."""
    if row.kind is RequestKind.MOBILITY:
        mobility.move(conn, rt, row, decided_by, now)
        return
    if row.kind is RequestKind.ACCOUNT:
        existing = repo.account_by_email(conn, row.email)
        account_id = existing.id if existing else repo.new_account_id()
        if existing is None:
            decision_store.create_account(conn, account_id, row, now)
        repo.update_request(conn, row.id, now, account_id=account_id)
        return
    # One membership: the membership held, the rule (validity, renewal) in the core, one upsert.
    account_id, role_key = row.account_id, row.role_key
    if held is decision_store.NOT_READ:
        held = decision_store.membership_held(conn, account_id, role_key)
    role = rt.mappings.role(role_key)
    expires_at = lifecycle.validity_end(row.kind, now, role.validity_months if role else None,
                                        held[0] if held else None, bool(held and held[1]))
    decision_store.grant(conn, account_id, role_key, row.id, now, expires_at)


_ONE_BY_ONE = (RequestKind.ACCOUNT, RequestKind.MOBILITY)


def grant_many(conn: Connection, rt: Runtime, rows: list[RequestView], now: datetime) -> None:
    """``grant`` for many accepted requests: one read of their memberships, then bulk writes.

    The rows are taken in order, so a request sees what an earlier one in the same call granted
    (a renewal right after a habilitation extends it), as calling ``grant`` on each would. New
    accounts and mobilities still go through ``grant`` one at a time: they are rare.
    """
    found = grants.memberships_at(conn, ((r.account_id, r.role_key) for r in rows if r.kind not in _ONE_BY_ONE))
    held = {key: (m["expires_at"], m["revoked_at"]) for key, m in found.items()}
    granted: dict[tuple[str, str], dict] = {}
    months_of: dict[str, int | None] = {}
    for row in rows:
        if row.kind in _ONE_BY_ONE:
            grant(conn, rt, row, now)
            continue
        key = (row.account_id, row.role_key)
        if key[1] not in months_of:
            role = rt.mappings.role(key[1])
            months_of[key[1]] = role.validity_months if role else None
        months = months_of[key[1]]
        held_until, held_revoked = held.get(key, (None, None))
        expires_at = lifecycle.validity_end(row.kind, now, months, held_until, bool(held_revoked))
        held[key] = (expires_at, None)
        granted[key] = dict(account_id=key[0], role_key=key[1], granted_by_request=row.id, granted_at=now,
                            expires_at=expires_at)
    grants.grant_memberships(conn, new=[v for k, v in granted.items() if k not in found],
                           existing=[v for k, v in granted.items() if k in found])
