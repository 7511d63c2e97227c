"""The tacit sweep: accept pending requests whose deadline has come, and remind deciders before it.

"Sauf refus formel …, votre demande sera acceptée dans un délai maximum de 10 jours." The
sweep works set-based, a bounded batch per transaction: it claims due requests under a lock (on
PostgreSQL ``SKIP LOCKED``, so two daemons never take the same one), lets the core
(``lifecycle.tacit_acceptance``) say what each becomes, then has the store write the status
changes, their history, their audit rows and the memberships from the ids alone
(``syncd.store.tacit``: a few statements per batch on SQLite, one on PostgreSQL). Only requests still
``pending`` move, so running it twice, or alongside a decision, accepts nothing twice.

Only requests that reached a decider are accepted, and never an external account request
(``lifecycle.tacit_applies``): the ``reroute`` job escalates those. Reminders say how many days
really remain, counted in the policy's calendar.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import structlog

from syncd.core import lifecycle, tacit
from syncd.core.model import RequestKind, Status
from syncd.jobs import notify
from syncd.jobs.decisions import grant_many
from syncd.runtime import Runtime
from syncd.store import repo, tacit as tacit_store
from syncd.store.db import Connection, transaction

log = structlog.get_logger(__name__)

# A batch costs a handful of statements and a commit whatever its size, so the sweep takes at
# least MIN_BATCH rows per pass: with fewer, the commits (an fsync each on SQLite) weigh. At most
# MAX_BATCH: a batch holds its locks until its commit. On SQLite that is the database's write
# lock, and a decision made meanwhile waits for it (a few tenths of a second at 5,000); on
# PostgreSQL only the batch's own rows are locked, so a batch may be larger.
MIN_BATCH = {"sqlite": 5000, "postgresql": 10_000}
MAX_BATCH = {"sqlite": 5000, "postgresql": 10_000}


def sweep(rt: Runtime) -> int:
    """Accept tacitly every pending request past its deadline; return how many."""
    now = rt.clock()
    engine = rt.engine.dialect.name
    limit = min(max(rt.settings.jobs.batch_size, MIN_BATCH[engine]), MAX_BATCH[engine])
    accepted = 0
    while True:
        with transaction(rt.engine) as conn:
            claimed = tacit_store.claim_due(conn, now, limit, rt.mappings.policy.internal_account_tacit)
            moved = accept_batch(conn, rt, claimed, now)
        accepted += moved
        if moved:
            log.info("tacit_acceptances", count=moved)
        # A full batch that moved nothing would come back identical: stop rather than spin.
        if len(claimed) < limit or not moved:
            return accepted


def accept_batch(conn: Connection, rt: Runtime, rows: list[dict[str, Any]], now: datetime) -> int:
    """What ``decisions.record_transition`` writes for each tacit acceptance, for a batch of
    claimed rows (``tacit_store.claim_due``); return how many requests moved.

    The core says, row by row, what each request becomes; the store writes it set-based. Plain
    habilitations are granted there too, their end of validity computed here per role. Renewals
    (their end depends on the membership held), two requests for one membership (the later sees
    the earlier's grant), new accounts and mobilities go through ``grant_many`` as before.
    """
    internal_accounts = rt.mappings.policy.internal_account_tacit
    due = [(row, t) for row in rows
           if (t := lifecycle.tacit_acceptance(repo.request_view(row), now=now, internal_accounts=internal_accounts))
           is not None]
    # The transitions of one sweep share their target, time and decider; grouping keeps the
    # core the one place that says what they are, at the cost of one pass per group.
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row, t in due:
        groups[(t.to_status, t.at, t.decided_by, t.comment, t.event)].append(row)
    count = 0
    rest: list[dict[str, Any]] = []     # accepted, granted by grant_many
    for (to_status, at, decided_by, comment, event), group in groups.items():
        plain: set[int] = set()
        expiry: dict[str, datetime | None] = {}
        if to_status.is_accepted:
            plain = _plain_habilitations(group)
            for row in group:
                if row["id"] in plain and row["role_key"] not in expiry:
                    role = rt.mappings.role(row["role_key"])
                    expiry[row["role_key"]] = lifecycle.validity_end(
                        row["kind"], at, role.validity_months if role else None, None, False)
        detail = {"status": to_status.value} | ({"comment": comment} if comment else {})
        moved = tacit_store.accept(conn, [r["id"] for r in group], to_status=to_status.value, at=at,
                                   decided_by=decided_by, comment=comment, event=event, detail=detail,
                                   grant_ids=sorted(plain), expiry=expiry)
        count += len(moved)
        if len(moved) < len(group):   # decided meanwhile: the state machine moves it no more
            log.info("tacit_not_moved", request_ids=sorted({r["id"] for r in group} - moved))
        if to_status.is_accepted:
            rest += [r for r in group if r["id"] in moved and r["id"] not in plain]
    if rest:
        # New accounts and mobilities read the whole request; the others need only what was claimed.
        whole = tacit_store.requests_by_id(conn, [r["id"] for r in rest if r["kind"] in _WHOLE_ROW])
        grant_many(conn, rt, [whole.get(r["id"]) or repo.request_view(r) for r in rest], now)
    return count


_WHOLE_ROW = (RequestKind.ACCOUNT.value, RequestKind.MOBILITY.value)


def _plain_habilitations(rows: list[dict[str, Any]]) -> set[int]:
    """The ids of the habilitations whose membership no other request of the batch touches (a
    renewal included): their end of validity depends on nothing held."""
    keys: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        if r["kind"] not in _WHOLE_ROW:
            keys[r["account_id"], r["role_key"]] += 1
    return {r["id"] for r in rows
            if r["kind"] == RequestKind.HABILITATION.value and keys[r["account_id"], r["role_key"]] == 1}


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
        for candidate in tacit_store.pending_due_by(conn, now, horizon):
            # Lock the request before reading its reminders: two daemons must not both decide
            # that the same D-n reminder is still to send.
            row = repo.get_request(conn, candidate, for_update=True)
            if row is None or row.status is not Status.PENDING:
                continue
            done = tacit_store.reminders_sent(conn, row.id)
            deadline_at = row.deadline_at
            for n in tacit.reminders_due(deadline_at, now, days, done, calendar):
                deciders = repo.routed_to(conn, row.id)
                tacit_applies = lifecycle.tacit_applies(row, internal_accounts=internal_accounts)
                notify.to_deciders(conn, row, deciders, "decision_reminder", rt.mappings, rt.settings.web,
                                   now, purpose=f"reminder_d{n}", language=notify.language_of(rt.settings), desk=rt.settings.desk,
                                   days_before=n, days_left=tacit.days_left(deadline_at, now, calendar),
                                   business_days=calendar == "business_days_fr", tacit=tacit_applies)
                repo.add_event(conn, row.id, "reminded", now, detail={"days_before": n, "deciders": list(deciders)})
                sent += 1
    if sent:
        log.info("reminders_sent", count=sent)
    return sent
