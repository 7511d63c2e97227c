"""The tacit sweep: accept pending requests whose deadline has come, and remind deciders before it.

"Sauf refus formel …, votre demande sera acceptée dans un délai maximum de 10 jours." The
sweep works set-based, a batch per transaction: it claims due requests under a lock (on
PostgreSQL ``SKIP LOCKED``, so two daemons never take the same one), lets the core
(``lifecycle.tacit_acceptance``) say what each becomes, then writes the status changes, their
history, their audit rows and the memberships a few statements per batch. Only requests still
``pending`` move, so running it twice, or alongside a decision, accepts nothing twice.

Only requests that reached a decider are accepted, and never an external account request
(``lifecycle.tacit_applies``): the ``reroute`` job escalates those. Reminders say how many days
really remain, counted in the policy's calendar.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.engine import Connection, RowMapping

from syncd.core import lifecycle, tacit
from syncd.core.model import Status
from syncd.jobs import notify
from syncd.jobs.decisions import grant_many
from syncd.runtime import Runtime
from syncd.store import audit, repo
from syncd.store.db import transaction
from syncd.store.tables import request_events, requests

log = structlog.get_logger(__name__)

# A batch costs a handful of statements and a commit whatever its size, so the sweep takes at
# least MIN_BATCH rows per pass: with fewer, the commits (an fsync each on SQLite) weigh. At most
# MAX_BATCH: a batch's membership lookup binds three parameters per request, SQLite takes 32,766.
MIN_BATCH = 2000
MAX_BATCH = 5000


def sweep(rt: Runtime) -> int:
    """Accept tacitly every pending request past its deadline; return how many."""
    now = rt.clock()
    limit = min(max(rt.settings.jobs.batch_size, MIN_BATCH), MAX_BATCH)
    accepted = 0
    while True:
        with transaction(rt.engine) as conn:
            claimed = repo.claim_due_pending(conn, now, limit, rt.mappings.policy.internal_account_tacit)
            moved = accept_batch(conn, rt, claimed, now)
        accepted += moved
        if moved:
            log.info("tacit_acceptances", count=moved)
        # A full batch that moved nothing would come back identical: stop rather than spin.
        if len(claimed) < limit or not moved:
            return accepted


def accept_batch(conn: Connection, rt: Runtime, rows: list[RowMapping], now: datetime) -> int:
    """What ``decisions.record_transition`` writes for each tacit acceptance, for a batch; return
    how many requests moved."""
    internal_accounts = rt.mappings.policy.internal_account_tacit
    due = [(row, t) for row in rows
           if (t := lifecycle.tacit_acceptance(repo.request_view(row), now=now, internal_accounts=internal_accounts))
           is not None]
    # The transitions of one sweep share their target, time and decider; grouping keeps the
    # core the one place that says what they are, at the cost of one statement per group.
    groups: dict[tuple, list[int]] = defaultdict(list)
    for row, t in due:
        groups[(t.from_status, t.to_status, t.at, t.decided_by, t.comment)].append(row["id"])
    moved: set[int] = set()
    for (from_status, to_status, at, decided_by, comment), ids in groups.items():
        moved |= repo.move_requests(conn, ids, from_status=from_status.value, to_status=to_status.value, at=at,
                                    decided_by=decided_by, comment=comment)
    done = [(row, t) for row, t in due if row["id"] in moved]
    events: list[dict] = []
    entries: list[audit.Entry] = []
    for row, t in done:
        detail = {"status": t.to_status.value} | ({"comment": t.comment} if t.comment else {})
        events.append({"request_id": row["id"], "event": t.event, "at": t.at, "actor": t.decided_by,
                       "detail": detail})
        entries.append(audit.Entry(at=t.at, actor=t.decided_by or "syncd", action=t.event, request_id=row["id"],
                                   target=f"{row['kind']}:{row['role_key'] or row['email']}", detail=detail))
    repo.add_events(conn, events)
    grant_many(conn, rt, [row for row, t in done if t.to_status.is_accepted], now)
    audit.record_many(conn, entries)
    return len(done)


def remind(rt: Runtime) -> int:
    """Send the "D-n" reminders configured in the policy to the deciders of pending requests."""
    days = tuple(rt.mappings.policy.reminder_days_before)
    if not days:
        return 0
    # D-n is counted in the deadline's calendar: under business_days_fr, D-1 is the business day before.
    calendar = rt.mappings.policy.calendar
    internal_accounts = rt.mappings.policy.internal_account_tacit
    now = rt.clock()
    horizon = tacit.reminder_horizon(now, days, calendar)
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
            deadline_at = repo.aware(row["deadline_at"])
            for n in tacit.reminders_due(deadline_at, now, days, done, calendar):
                deciders = repo.routed_to(conn, row["id"])
                tacit_applies = lifecycle.tacit_applies(repo.request_view(row), internal_accounts=internal_accounts)
                notify.to_deciders(conn, row, deciders, "decision_reminder", rt.mappings, rt.settings.web,
                                   now, purpose=f"reminder_d{n}", language=notify.language_of(rt.settings), desk=rt.settings.desk,
                                   days_before=n, days_left=tacit.days_left(deadline_at, now, calendar),
                                   business_days=calendar == "business_days_fr", tacit=tacit_applies)
                repo.add_event(conn, row["id"], "reminded", now, detail={"days_before": n, "deciders": list(deciders)})
                sent += 1
    if sent:
        log.info("reminders_sent", count=sent)
    return sent
