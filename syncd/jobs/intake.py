"""Intake: take in the rows the portal wrote, validate them, route the valid ones to deciders.

Each row is handled in its own transaction, so one bad row never blocks the rows behind it.
A row that fails for an unexpected reason (a bug: not the requester's doing) is retried with
backoff, then parked after ``parking.MAX_ATTEMPTS`` tries (``syncd.jobs.parking``): it cannot loop
forever, and the requester still reads « En attente … » until an operator retries or resolves it.
"""

from __future__ import annotations

from dataclasses import replace

import structlog

from syncd.core import intake, routing
from syncd.core.model import RequestKind, RequestView, Status
from syncd.errors import TemporaryError
from syncd.jobs import notify, parking
from syncd.jobs import routing as reroute
from syncd.runtime import Runtime
from syncd.store import audit, repo
from syncd.store.db import Connection, transaction
from syncd.store.queue import claim_requests, release

log = structlog.get_logger(__name__)

def take_in(rt: Runtime) -> int:
    """Validate and route every due ``new`` row (up to a batch); return how many were handled."""
    now = rt.clock()
    ids = claim_requests(rt.engine, statuses=(Status.NEW.value,), worker_id=rt.worker_id, now=now,
                         lease_seconds=rt.settings.database.lease_seconds, limit=rt.settings.jobs.batch_size)
    handled = 0
    for position, request_id in enumerate(ids):
        bound = log.bind(request_id=request_id)
        try:
            with transaction(rt.engine) as conn:
                _take_in_one(conn, rt, request_id)
            handled += 1
        except TemporaryError as exc:
            bound.warning("intake_interrupted", error=str(exc))
            with transaction(rt.engine) as conn:
                release(conn, ids[position:], rt.worker_id)
            raise
        except Exception as exc:  # a bug or bad data in one row must not stop the others
            bound.exception("intake_failed")
            _record_failure(rt, request_id, exc)
    return handled


def route_and_schedule(conn: Connection, rt: Runtime, row: RequestView, *, kind: RequestKind,
                       account_id: str | None, organisation_code: str, role_key: str | None) -> routing.Route:
    """Route a valid request, fix its tacit deadline, record history and tell the deciders.

    With nobody to decide it, the request waits in ``awaiting_decider``, with no deadline: the
    ``reroute`` job routes it, and starts the deciders' window, once someone can decide it.
    """
    now = rt.clock()
    m = rt.mappings
    route = routing.route(kind=kind, management=m.management_of(role_key) if role_key else None,
                          organisation_code=organisation_code, requester_account_id=account_id,
                          deciders=repo.current_deciders(conn, organisation_code))
    deadline_at = (reroute.tacit_deadline(rt, kind.value, role_key, row.submitted_at, now) if route.deciders else None)
    repo.update_request(conn, row.id, now, status=route.waiting_status.value, deadline_at=deadline_at,
                        first_routed_at=now if route.deciders else None,
                        account_id=account_id, organisation_code=organisation_code,
                        claimed_by=None, claimed_until=None, last_error=None, next_attempt_at=None)
    repo.set_routing(conn, row.id, route.decider_ids)
    repo.add_event(conn, row.id, "submitted", row.submitted_at, actor=account_id or row.email)
    if not route.deciders:
        repo.add_event(conn, row.id, "awaiting_decider", now, detail={"previous": [], "reason": route.reason.value})
        log.warning("request_awaiting_decider", request_id=row.id, organisation=organisation_code,
                    reason=route.reason.value)
        return route
    repo.add_event(conn, row.id, "routed", now, detail={
        "deciders": sorted(route.decider_ids), "reason": route.reason.value, "deadline_at": deadline_at.isoformat()})
    reroute.ask_to_decide(conn, rt, repo.get_request(conn, row.id), route.decider_ids, route, now)
    return route


def _take_in_one(conn: Connection, rt: Runtime, request_id: int) -> None:
    row = repo.get_request(conn, request_id, for_update=True)
    if row is None or row.status is not Status.NEW:
        return   # another worker or an operator got there first
    facts = repo.intake_facts(conn, row.kind, row.email, row.role_key)
    outcome = intake.validate_row(vars(row), facts, rt.mappings)
    now = rt.clock()
    if isinstance(outcome, intake.Rejection):
        _reject(conn, rt, row, outcome.code, outcome.reason)
    elif isinstance(outcome, intake.ValidAccountRequest):
        repo.update_request(conn, request_id, now, email=outcome.email, civility=outcome.civility,
                            given_name=outcome.given_name, family_name=outcome.family_name,
                            terms_version=outcome.terms_version)
        route = route_and_schedule(conn, rt, row, kind=RequestKind.ACCOUNT, account_id=None,
                                   organisation_code=outcome.organisation_code, role_key=None)
        log.info("request_routed", request_id=request_id, kind="account", reason=route.reason.value,
                 deciders=len(route.deciders))
    elif isinstance(outcome, intake.ValidMobilityRequest):
        # The new organisation decides: its correspondents know whether the person joins them.
        route = route_and_schedule(conn, rt, row, kind=RequestKind.MOBILITY, account_id=outcome.account_id,
                                   organisation_code=outcome.organisation_code, role_key=None)
        log.info("request_routed", request_id=request_id, kind="mobility", organisation=outcome.organisation_code,
                 reason=route.reason.value, deciders=len(route.deciders))
    else:
        route = route_and_schedule(conn, rt, row, kind=row.kind, account_id=outcome.account_id,
                                   organisation_code=outcome.organisation_code, role_key=outcome.role_key)
        log.info("request_routed", request_id=request_id, kind=row.kind.value, role=outcome.role_key,
                 reason=route.reason.value, deciders=len(route.deciders))


def _reject(conn: Connection, rt: Runtime, row: RequestView, code: str, reason: str) -> None:
    now = rt.clock()
    email = intake.normalise_email(row.email)
    repo.update_request(conn, row.id, now, status=Status.REJECTED.value, reason=reason,
                        claimed_by=None, claimed_until=None, next_attempt_at=None)
    repo.add_event(conn, row.id, "rejected", now, detail={"code": code, "reason": reason})
    audit.record(conn, at=now, actor="syncd", action="rejected", request_id=row.id, detail={"code": code})
    log.info("request_rejected", request_id=row.id, code=code)
    if email:
        fresh = replace(repo.get_request(conn, row.id), email=email)
        notify.to_requester(conn, fresh, "request_rejected", rt.mappings, rt.settings.web.base_url, now,
                            language=notify.language_of(rt.settings))


def _record_failure(rt: Runtime, request_id: int, exc: Exception) -> None:
    now = rt.clock()
    with transaction(rt.engine) as conn:
        row = repo.get_request(conn, request_id, for_update=True)
        if row is None or row.status is not Status.NEW:
            return
        parking.request_failed(conn, rt, row, exc, now)
