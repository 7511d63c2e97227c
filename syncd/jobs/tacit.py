"""The tacit sweep: accept pending requests whose deadline has come, and remind deciders before it.

"Sauf refus formel …, votre demande sera acceptée dans un délai maximum de 10 jours." The
sweep is idempotent: it re-reads each request under a lock and only moves ``pending`` ones.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import select

from syncd.core import lifecycle, tacit
from syncd.core.model import Status
from syncd.jobs import notify
from syncd.jobs.decisions import record_transition
from syncd.jobs.runtime import Runtime
from syncd.store import repo
from syncd.store.db import transaction
from syncd.store.tables import request_events, requests

log = structlog.get_logger(__name__)


def sweep(rt: Runtime) -> int:
    """Accept tacitly every pending request past its deadline; return how many."""
    now = rt.clock()
    accepted = 0
    while True:
        with transaction(rt.engine) as conn:
            ids = [r[0] for r in conn.execute(
                select(requests.c.id).where(requests.c.status == Status.PENDING.value, requests.c.deadline_at <= now)
                .order_by(requests.c.deadline_at, requests.c.id).limit(rt.settings.jobs.batch_size))]
            for request_id in ids:
                row = repo.get_request(conn, request_id, for_update=True)
                transition = lifecycle.tacit_acceptance(repo.request_view(row), now=now) if row else None
                if transition is None:
                    continue
                record_transition(conn, rt, row, transition)
                accepted += 1
        if ids:
            log.info("tacit_acceptances", count=len(ids))
        if len(ids) < rt.settings.jobs.batch_size:
            return accepted


def remind(rt: Runtime) -> int:
    """Send the "D-n" reminders configured in the policy to the deciders of pending requests."""
    days = tuple(rt.mappings.policy.reminder_days_before)
    if not days:
        return 0
    now = rt.clock()
    horizon = now + timedelta(days=max(days))
    sent = 0
    with transaction(rt.engine) as conn:
        rows = list(conn.execute(select(requests).where(
            requests.c.status == Status.PENDING.value, requests.c.deadline_at > now,
            requests.c.deadline_at <= horizon)).mappings())
        for candidate in rows:
            # Lock the request before reading its reminders: two daemons must not both decide
            # that the same D-n reminder is still to send.
            row = repo.get_request(conn, candidate["id"], for_update=True)
            if row is None or row["status"] != Status.PENDING.value:
                continue
            done = frozenset(
                int(d["detail"]["days_before"]) for d in conn.execute(
                    select(request_events.c.detail).where(request_events.c.request_id == row["id"],
                                                          request_events.c.event == "reminded")).mappings()
                if d["detail"] and "days_before" in d["detail"])
            for n in tacit.reminders_due(repo.aware(row["deadline_at"]), now, days, done):
                deciders = repo.routed_to(conn, row["id"])
                notify.to_deciders(conn, row, deciders, "decision_reminder", rt.mappings, rt.settings.web,
                                   now, purpose=f"reminder_d{n}", days_before=n)
                repo.add_event(conn, row["id"], "reminded", now, detail={"days_before": n, "deciders": list(deciders)})
                sent += 1
    if sent:
        log.info("reminders_sent", count=sent)
    return sent
