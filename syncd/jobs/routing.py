"""Routing against current data, and re-routing undecided requests when their deciders change.

Authorisation at decision time uses ``current_route`` too: whoever may decide *now*, not whoever
was e-mailed when the request came in.

A request nobody can decide waits in ``awaiting_decider`` (never accepted tacitly); ``reroute``
routes it as soon as someone can, and sends a pending request whose deciders all left back there.
The deciders' window starts at the *first* routing to one of them (``first_routed_at``) and a
later re-route never moves it. An external account request past its deadline is escalated: its
route becomes the central administrators, who get a mail saying so.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import structlog

from syncd.core import lifecycle, routing, tacit
from syncd.core.model import RequestKind, RequestView, Status
from syncd.jobs import notify
from syncd.runtime import Runtime
from syncd.store import repo
from syncd.store.db import Connection, transaction

log = structlog.get_logger(__name__)


def current_route(conn: Connection, rt: Runtime, row: RequestView, deciders=None) -> routing.Route:
    management = rt.mappings.management_of(row.role_key) if row.role_key and rt.mappings.role(row.role_key) else None
    escalated = lifecycle.is_escalated(row, now=rt.clock(),
                                       internal_accounts=rt.mappings.policy.internal_account_tacit)
    return routing.route(kind=row.kind, management=management, organisation_code=row.organisation_code,
                         requester_account_id=row.account_id, escalated=escalated,
                         deciders=deciders if deciders is not None
                         else repo.current_deciders(conn, row.organisation_code))


def tacit_deadline(rt: Runtime, kind: str, role_key: str | None, submitted_at: datetime,
                   first_routed_at: datetime) -> datetime:
    """The deadline of a request first routed to a decider at ``first_routed_at``: its delay after
    submission, but never less than the policy's decision window after that first routing."""
    m = rt.mappings
    if kind == RequestKind.ACCOUNT.value:
        delay = m.policy.account_tacit_delay_days
    else:
        delay = m.tacit_delay_of(role_key) if role_key and m.role(role_key) else m.policy.tacit_delay_days
    return tacit.decision_deadline(repo.aware(submitted_at), delay, first_routed_at,
                                   m.policy.decision_window_business_days, m.policy.calendar)


def ask_to_decide(conn: Connection, rt: Runtime, row: RequestView, decider_ids, route: routing.Route,
                  now: datetime) -> None:
    """Mail these deciders about a request routed to them: the "à valider" mail, or after an
    escalation the mail saying the deadline passed."""
    if not decider_ids:
        return
    language = notify.language_of(rt.settings)
    if route.reason is routing.RouteReason.ESCALATED:
        # No deadline any more: the link lasts its default length, not a day past a passed deadline.
        notify.to_deciders(conn, replace(row, deadline_at=None), sorted(decider_ids), "request_escalated",
                           rt.mappings, rt.settings.web, now, purpose="escalated", language=language, desk=rt.settings.desk)
    else:
        tacit_applies = lifecycle.tacit_applies(row,
                                                internal_accounts=rt.mappings.policy.internal_account_tacit)
        notify.to_deciders(conn, row, sorted(decider_ids), "request_to_decide", rt.mappings, rt.settings.web,
                           now, purpose="to_decide", language=language, desk=rt.settings.desk, tacit=tacit_applies)


def reroute_pending(rt: Runtime) -> int:
    """Send undecided requests to their current deciders: when some were added or left, when a
    request is escalated, when nobody can decide one any more or someone now can. Return how many
    requests changed."""
    now = rt.clock()
    changed = 0
    with transaction(rt.engine) as conn:
        deciders = repo.current_deciders(conn)
        rows = repo.undecided(conn)
        for row in rows:
            route = current_route(conn, rt, row, deciders)
            before = set(repo.routed_to(conn, row.id))
            if before == set(route.decider_ids) and row.status is route.waiting_status:
                continue
            if not route.deciders:
                _wait(conn, row, before, route, now)
            elif row.status is Status.AWAITING_DECIDER:
                _route_waiting(conn, rt, row, route, now)
            else:
                _reroute(conn, rt, row, before, route, now)
            changed += 1
    return changed


def _wait(conn: Connection, row: RequestView, before: set[str], route: routing.Route, now: datetime) -> None:
    """Nobody can decide the request any more: it waits, never accepted tacitly meanwhile."""
    values: dict = {"status": Status.AWAITING_DECIDER.value}
    if not before:
        # Pending and routed to nobody: taken in by a version that let such requests run to tacit
        # acceptance. It never reached a decider, so their window has not started.
        values |= {"first_routed_at": None, "deadline_at": None}
    repo.update_request(conn, row.id, now, **values)
    repo.set_routing(conn, row.id, ())
    if row.status is not Status.AWAITING_DECIDER:
        repo.add_event(conn, row.id, "awaiting_decider", now,
                       detail={"previous": sorted(before), "reason": route.reason.value})
        log.warning("request_awaiting_decider", request_id=row.id, organisation=row.organisation_code,
                    reason=route.reason.value)


def _route_waiting(conn: Connection, rt: Runtime, row: RequestView, route: routing.Route, now: datetime) -> None:
    """Someone can now decide a waiting request: it is routed, and its window starts if it never did."""
    values: dict = {"status": Status.PENDING.value}
    if row.first_routed_at is None:
        values |= {"first_routed_at": now,
                   "deadline_at": tacit_deadline(rt, row.kind, row.role_key, row.submitted_at, now)}
    repo.update_request(conn, row.id, now, **values)
    repo.set_routing(conn, row.id, route.decider_ids)
    fresh = repo.get_request(conn, row.id)
    repo.add_event(conn, row.id, "routed", now, detail={
        "deciders": sorted(route.decider_ids), "reason": route.reason.value,
        "deadline_at": fresh.deadline_at.isoformat() if fresh.deadline_at else None})
    # Its window was spent before its deciders left and came back: the sweep accepts it next, and
    # an « à valider » mail for a request about to be decided would only mislead.
    if not (lifecycle.tacit_applies(fresh, internal_accounts=rt.mappings.policy.internal_account_tacit)
            and tacit.is_due(fresh.deadline_at, now)):
        ask_to_decide(conn, rt, fresh, route.decider_ids, route, now)
    log.info("request_routed", request_id=row.id, deciders=len(route.deciders), reason=route.reason.value)


def _reroute(conn: Connection, rt: Runtime, row: RequestView, before: set[str], route: routing.Route,
             now: datetime) -> None:
    repo.set_routing(conn, row.id, route.decider_ids)
    escalated = route.reason is routing.RouteReason.ESCALATED
    repo.add_event(conn, row.id, "escalated" if escalated else "rerouted", now, detail={
        "deciders": sorted(route.decider_ids), "previous": sorted(before), "reason": route.reason.value})
    ask_to_decide(conn, rt, row, set(route.decider_ids) - before, route, now)
    log.info("request_escalated" if escalated else "request_rerouted", request_id=row.id,
             deciders=len(route.deciders), reason=route.reason.value)
