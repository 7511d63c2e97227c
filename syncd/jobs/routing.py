"""Routing against current data, and re-routing pending requests when deciders change.

Authorisation at decision time uses ``current_route`` too: whoever may decide *now*, not whoever
was e-mailed when the request came in.
"""

from __future__ import annotations

import structlog
from sqlalchemy import select
from sqlalchemy.engine import Connection, RowMapping

from syncd.core import routing
from syncd.core.model import RequestKind, Status
from syncd.jobs import notify
from syncd.jobs.runtime import Runtime
from syncd.store import repo
from syncd.store.db import transaction
from syncd.store.tables import requests

log = structlog.get_logger(__name__)


def current_route(conn: Connection, rt: Runtime, row: RowMapping, deciders=None) -> routing.Route:
    kind = RequestKind(row["kind"])
    management = rt.mappings.management_of(row["role_key"]) if row["role_key"] and rt.mappings.role(row["role_key"]) else None
    return routing.route(kind=kind, management=management, organisation_code=row["organisation_code"] or "",
                         requester_account_id=row["account_id"],
                         deciders=deciders if deciders is not None
                         else repo.current_deciders(conn, row["organisation_code"] or ""))


def reroute_pending(rt: Runtime) -> int:
    """Send pending requests to their current deciders when an organisation gained or lost some."""
    now = rt.clock()
    changed = 0
    with transaction(rt.engine) as conn:
        deciders = repo.current_deciders(conn)
        rows = list(conn.execute(select(requests).where(requests.c.status == Status.PENDING.value)
                                 .order_by(requests.c.id)).mappings())
        for row in rows:
            route = current_route(conn, rt, row, deciders)
            before = set(repo.routed_to(conn, row["id"]))
            if before == set(route.decider_ids):
                continue
            repo.set_routing(conn, row["id"], route.decider_ids)
            repo.add_event(conn, row["id"], "rerouted", now, detail={
                "deciders": sorted(route.decider_ids), "previous": sorted(before), "reason": route.reason.value})
            newcomers = sorted(set(route.decider_ids) - before)
            notify.to_deciders(conn, row, newcomers, "request_to_decide", rt.mappings, rt.settings.web,
                               now, purpose="to_decide", language=notify.language_of(rt.settings))
            log.info("request_rerouted", request_id=row["id"], deciders=len(route.deciders), reason=route.reason.value)
            changed += 1
    return changed
