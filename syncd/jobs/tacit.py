"""The tacit sweep: accept pending requests whose deadline has come, and remind deciders before it.

"Sauf refus formel …, votre demande sera acceptée dans un délai maximum de 10 jours." The
sweep works set-based, a bounded batch per transaction: it claims due requests under a lock (on
PostgreSQL ``SKIP LOCKED``, so two daemons never take the same one), lets the core
(``lifecycle.tacit_acceptances``, the rule of ``tacit_acceptance`` over the batch) say what each
becomes, then has the store write the status changes, their history, their audit rows and the
memberships from the ids alone (``syncd.store.tacit``: a few statements per batch on SQLite, one
on PostgreSQL). Only requests still ``pending`` move, so running it twice, or alongside a
decision, accepts nothing twice.

Only requests that reached a decider are accepted, and never an external account request
(``lifecycle.tacit_applies``): the ``reroute`` job escalates those. Reminders say how many days
really remain, counted in the policy's calendar.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import structlog

from syncd.core import lifecycle, tacit
from syncd.core.lifecycle import TacitCandidate
from syncd.core.model import RequestKind, Status
from syncd.jobs import notify
from syncd.jobs.decisions import grant_many
from syncd.runtime import Runtime
from syncd.store import repo, tacit as tacit_store
from syncd.store.db import Connection, transaction

log = structlog.get_logger(__name__)

# A batch costs a handful of statements and a commit whatever its size, so the sweep takes at
# least MIN_BATCH rows per pass: with fewer, the commits (an fsync each on SQLite) weigh, and so
# do the pages each batch's writes touch again (a batch's memberships are spread over the whole
# table). At most MAX_BATCH: a batch holds its locks until its commit. On SQLite that is the
# database's write lock, and a decision made meanwhile waits for it (about a second at 10,000 on
# two loaded cores, well within the busy timeout); on PostgreSQL only the batch's own rows are locked.
MIN_BATCH = 10_000
MAX_BATCH = 10_000


def sweep(rt: Runtime) -> int:
    """Accept tacitly every pending request past its deadline; return how many."""
    now = rt.clock()
    limit = min(max(rt.settings.jobs.batch_size, MIN_BATCH), MAX_BATCH)
    accepted = 0
    while True:
        with transaction(rt.engine) as conn:
            # One more than the batch: whether another pass is needed is known without one (a
            # pass that finds nothing still costs a scan of what the last one changed). The extra
            # request is left for the next pass (on PostgreSQL, locked until this commit).
            claimed = tacit_store.claim_due(conn, now, limit + 1, rt.mappings.policy.internal_account_tacit)
            moved = accept_batch(conn, rt, claimed[:limit], now)
        accepted += moved
        if moved:
            log.info("tacit_acceptances", count=moved)
        # A full batch that moved nothing would come back identical: stop rather than spin.
        if len(claimed) <= limit or not moved:
            return accepted


def accept_batch(conn: Connection, rt: Runtime, claimed: list[TacitCandidate], now: datetime) -> int:
    """What ``decisions.record_transition`` writes for each tacit acceptance, for a batch of
    claimed requests (``tacit_store.claim_due``); return how many requests moved.

    The core says what the requests become (``lifecycle.tacit_acceptances``: each move with the
    requests making it); the store writes each move set-based. Plain habilitations are granted
    there too, their end of validity computed here per role. Renewals (their end depends on the
    membership held), two requests for one membership (the later sees the earlier's grant), new
    accounts and mobilities go through ``grant_many`` as before.
    """
    moves = lifecycle.tacit_acceptances(claimed, now=now, internal_accounts=rt.mappings.policy.internal_account_tacit)
    count = 0
    rest: list[TacitCandidate] = []     # accepted, granted by grant_many
    for move, group in moves.items():
        plain: set[int] = set()
        expiry: dict[str, datetime | None] = {}
        if move.to_status.is_accepted:
            plain = _plain_habilitations(group)
            for role_key in {c.role_key for c in group if c.id in plain}:
                role = rt.mappings.role(role_key)
                expiry[role_key] = lifecycle.validity_end(
                    RequestKind.HABILITATION, move.at, role.validity_months if role else None, None, False)
        detail = {"status": move.to_status.value} | ({"comment": move.comment} if move.comment else {})
        moved = tacit_store.accept(conn, [c.id for c in group], to_status=move.to_status.value, at=move.at,
                                   decided_by=move.decided_by, comment=move.comment, event=move.event, detail=detail,
                                   grant_ids=plain, expiry=expiry)
        count += len(moved)
        if len(moved) < len(group):   # decided meanwhile: the state machine moves it no more
            log.info("tacit_not_moved", request_ids=sorted({c.id for c in group} - moved))
        if move.to_status.is_accepted:
            rest += [c for c in group if c.id in moved and c.id not in plain]
    if rest:
        # grant_many takes the store's request value: read whole for these few (renewals, second
        # requests for one membership, new accounts, mobilities), after the batch's status write.
        whole = {r.id: r for r in repo.requests_by_ids(conn, [c.id for c in rest])}
        grant_many(conn, rt, [whole[c.id] for c in rest], now)
    return count


_WHOLE_ROW = (RequestKind.ACCOUNT.value, RequestKind.MOBILITY.value)


def _plain_habilitations(group: list[TacitCandidate]) -> set[int]:
    """The ids of the habilitations whose membership no other request of the batch touches (a
    renewal included): their end of validity depends on nothing held."""
    held = Counter((c.account_id, c.role_key) for c in group if c.kind not in _WHOLE_ROW)
    habilitation = RequestKind.HABILITATION.value
    return {c.id for c in group if c.kind == habilitation and held[c.account_id, c.role_key] == 1}


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
            for n in tacit.reminders_due(row.deadline_at, now, days, done, calendar):
                deciders = repo.routed_to(conn, row.id)
                tacit_applies = lifecycle.tacit_applies(row, internal_accounts=internal_accounts)
                notify.to_deciders(conn, row, deciders, "decision_reminder", rt.mappings, rt.settings.web,
                                   now, purpose=f"reminder_d{n}", language=notify.language_of(rt.settings), desk=rt.settings.desk,
                                   days_before=n, days_left=tacit.days_left(row.deadline_at, now, calendar),
                                   business_days=calendar == "business_days_fr", tacit=tacit_applies)
                repo.add_event(conn, row.id, "reminded", now, detail={"days_before": n, "deciders": list(deciders)})
                sent += 1
    if sent:
        log.info("reminders_sent", count=sent)
    return sent
