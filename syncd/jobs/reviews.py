"""Access review campaigns (issue 15, part 3): open them, answer them, end them.

The rules are in ``syncd.core.reviews``; this is their shell:

- ``start`` opens a campaign for organisations (``syncd review start``); the ``reviews`` job
  (``run``) opens them on the days ``review.schedule`` names, ends those whose window is over,
  and opens again, for a new window, those that waited for a reviewer once one exists.
- ``items_for``, ``confirm`` and ``withdraw`` are what a reviewer does (the correspondents'
  desk, ``syncd review confirm|withdraw``). A withdrawal goes through the same use-case as every
  other (``habilitations.withdraw``): the membership marked revoked, the ``accounts`` job takes
  the member out of the group, the holder gets a mail.
- At the end of a window, each right still unanswered is kept tacitly (recorded, per right) or
  withdrawn as above, by the campaign's ``unanswered`` rule; a right nobody can review waits.
  The campaign's outcome goes to the audit trail.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from syncd.core import reviews as rules
from syncd.core import routing
from syncd.core.model import Decider, Management
from syncd.errors import DecisionRefused
from syncd.jobs import habilitations, notify
from syncd.runtime import Runtime
from syncd.mail.outbox import enqueue
from syncd.store import audit, repo
from syncd.store import reviews as store
from syncd.store.db import transaction

log = structlog.get_logger(__name__)

ACTOR = "syncd"
# The reason a holder reads when the end of a campaign withdrew a right nobody confirmed.
UNANSWERED_REASON = "Habilitation non confirmée lors de la revue des habilitations de votre organisme."


@dataclass(frozen=True)
class Opened:
    """A campaign ``start`` opened (``rights`` 0: nothing to review, recorded and closed at once)."""

    campaign_id: int
    organisation_code: str
    rights: int
    reviewers: int
    closes_at: datetime


@dataclass(frozen=True)
class ReviewItem:
    """One right under review, as a reviewer's list shows it."""

    id: int
    campaign_id: int
    organisation_code: str
    account_id: str
    holder_name: str
    holder_email: str
    role_key: str
    role_label: str
    application_label: str
    granted_at: datetime
    closes_at: datetime
    decision: str | None
    decided_at: datetime | None
    decided_by: str | None


def _management(rt: Runtime, role_key: str) -> Management:
    # A role gone from the mappings has no correspondent to look after it: the central
    # administrators review what is left of it.
    try:
        return rt.mappings.management_of(role_key)
    except KeyError:
        return Management.CENTRAL


def _view(rt: Runtime, row) -> rules.ItemView:
    decision = rules.ReviewDecision(row["decision"]) if row["decision"] else None
    return rules.ItemView(id=row["id"], account_id=row["account_id"], role_key=row["role_key"],
                          organisation_code=row["organisation_code"], management=_management(rt, row["role_key"]),
                          decision=decision, held=bool(row["held"]))


def _item(rt: Runtime, row) -> ReviewItem:
    role = rt.mappings.role(row["role_key"])
    app = rt.mappings.application_of(row["role_key"])
    return ReviewItem(id=row["id"], campaign_id=row["campaign_id"], organisation_code=row["organisation_code"],
                      account_id=row["account_id"], holder_name=f"{row['given_name']} {row['family_name']}",
                      holder_email=row["email"], role_key=row["role_key"],
                      role_label=role.label if role else row["role_key"], application_label=app.label if app else "",
                      granted_at=repo.aware(row["granted_at"]), closes_at=repo.aware(row["closes_at"]),
                      decision=row["decision"], decided_at=repo.aware(row["decided_at"]),
                      decided_by=row["decided_by"])


# --- opening ----------------------------------------------------------------------------------------

def start(rt: Runtime, organisations: list[str] | None = None, *, opened_by: str = "operator") -> list[Opened]:
    """Open a campaign now for each organisation (every one of the mappings when None).

    Raises ``DecisionRefused``: ``not_found`` for an organisation the mappings do not know,
    ``review_under_way`` when one of them already has a campaign under way (nothing opened).
    """
    now = rt.clock()
    codes = organisations if organisations is not None else [o.code for o in rt.mappings.organisations]
    unknown = [c for c in codes if rt.mappings.organisation(c) is None]
    if unknown:
        raise DecisionRefused("not_found", f"unknown organisation(s): {', '.join(unknown)}")
    with transaction(rt.engine) as conn:
        busy = sorted({c["organisation_code"] for c in store.under_way(conn)} & set(codes))
        if busy and organisations is not None:
            raise DecisionRefused("review_under_way", f"a review campaign is under way for {', '.join(busy)}: "
                                                      "it ends before another opens")
        return [_open(conn, rt, code, now, opened_by) for code in codes if code not in busy]


def _open(conn, rt: Runtime, organisation_code: str, now: datetime, opened_by: str) -> Opened:
    settings = rt.settings.review
    closes_at = now + timedelta(days=settings.window_days)
    rights = store.reviewed_memberships(conn, organisation_code, rt.mappings.reviewed_roles())
    campaign_id = store.open_campaign(conn, organisation_code=organisation_code, now=now, closes_at=closes_at,
                                      unanswered=settings.unanswered, opened_by=opened_by)
    store.add_items(conn, campaign_id, rights)
    audit.record(conn, at=now, actor=opened_by, action="review_opened", target=organisation_code,
                 detail={"campaign_id": campaign_id, "rights": len(rights), "closes_at": closes_at.isoformat(),
                         "unanswered": settings.unanswered})
    if not rights:
        # Nothing to review: recorded (the organisation was reviewed) and closed at once.
        store.set_state(conn, campaign_id, rules.CampaignState.CLOSED.value, closed_at=now, outcome={})
        audit.record(conn, at=now, actor=ACTOR, action="review_closed", target=organisation_code,
                     detail={"campaign_id": campaign_id, "outcome": {}})
        return Opened(campaign_id, organisation_code, 0, 0, closes_at)
    mailed = _mail_reviewers(conn, rt, campaign_id, now)
    log.info("review_opened", campaign_id=campaign_id, organisation=organisation_code, rights=len(rights),
             reviewers=mailed, by=opened_by)
    return Opened(campaign_id, organisation_code, len(rights), mailed, closes_at)


def _mail_reviewers(conn, rt: Runtime, campaign_id: int, now: datetime) -> int:
    """Mail each reviewer of the campaign's unanswered rights once per window, with their link."""
    from syncd.mail import desk_links, links
    campaign = store.campaign(conn, campaign_id)
    rows = store.items(conn, campaign_ids=[campaign_id], undecided=True)
    deciders = repo.current_deciders(conn, campaign["organisation_code"])
    per_reviewer: Counter[str] = Counter()
    for row in rows:
        view = _view(rt, row)
        if view.held:
            per_reviewer.update(d.account_id for d in rules.reviewers(view, deciders))
    closes_at = repo.aware(campaign["closes_at"])
    organisation = rt.mappings.organisation(campaign["organisation_code"])
    key = links.signing_key(rt.settings.web)
    for reviewer_id, count in sorted(per_reviewer.items()):
        reviewer = repo.account_by_id(conn, reviewer_id)
        context: dict[str, Any] = {
            "reviewer_name": f"{reviewer.given_name} {reviewer.family_name}",
            "organisation_name": organisation.name if organisation else campaign["organisation_code"],
            "rights": count, "closes_at": closes_at, "unanswered": campaign["unanswered"],
            "review_url": desk_links.review_url(rt.settings, reviewer_id, now, closes_at)}
        if key:
            context["secret_keys"] = ["review_url"]
        enqueue(conn, recipient=reviewer.email, template="review_opened", context=context, now=now,
                language=notify.language_of(rt.settings),
                dedupe_key=f"review:{campaign_id}:{closes_at.isoformat()}:{reviewer_id}")
    return len(per_reviewer)


# --- what a reviewer does ---------------------------------------------------------------------------

def items_for(rt: Runtime, decider_ref: str, *, campaign_id: int | None = None,
              undecided_only: bool = False) -> list[ReviewItem]:
    """The rights of the campaigns under way that ``decider_ref`` (account id or e-mail) reviews
    now, answered or not (``undecided_only``: not yet), by item id. Empty for whoever reviews nothing."""
    with transaction(rt.engine, readonly=True) as conn:
        actor = repo.find_account(conn, decider_ref)
        if actor is None:
            return []
        deciders = repo.current_deciders(conn)
        mine = [d for d in deciders if d.account_id == actor.id]
        if not mine:
            return []
        # A correspondent reviews in their organisation only; a central administrator anywhere.
        orgs = {d.organisation_code for d in mine}
        only = next(iter(orgs)) if len(orgs) == 1 and None not in orgs else None
        rows = store.items_under_way(conn, only)
    found = []
    for row in rows:
        if campaign_id is not None and row["campaign_id"] != campaign_id:
            continue
        if undecided_only and row["decision"]:
            continue
        if not row["held"] and not row["decision"]:
            continue         # ended meanwhile: nothing left to answer
        if rules.may_review(_view(rt, row), actor.id, deciders):
            found.append(_item(rt, row))
    return found


def _authorised_rows(conn, rt: Runtime, item_ids: list[int], decider_ref: str):
    """The actor and the rows of these items, each of which they may review now; else refused."""
    actor = repo.find_account(conn, decider_ref)
    rows = store.items(conn, item_ids=item_ids)
    missing = sorted(set(item_ids) - {r["id"] for r in rows})
    if missing or any(r["state"] == rules.CampaignState.CLOSED.value for r in rows):
        raise DecisionRefused("not_found", "No such right under review in a campaign under way: "
                                           f"{', '.join(map(str, missing)) or 'campaign closed'}.")
    if actor is None:
        raise DecisionRefused("not_authorised", "Only the reviewers of a right may answer for it.")
    deciders = repo.current_deciders(conn)
    for row in rows:
        view = _view(rt, row)
        if view.account_id == actor.id:
            raise DecisionRefused("own_request", "Nobody reviews their own rights.")
        if not rules.may_review(view, actor.id, deciders):
            raise DecisionRefused("not_authorised", f"You do not review right {row['id']}: its organisation's "
                                                    "correspondents do, or the central administrators.")
    return actor, rows, deciders


def confirm(rt: Runtime, item_ids: list[int], decider_ref: str) -> list[int]:
    """Confirm rights (all or none: each must be the reviewer's to answer); return the ids
    answered now (those answered before, or ended meanwhile, are left as they are)."""
    now = rt.clock()
    with transaction(rt.engine) as conn:
        actor, rows, _ = _authorised_rows(conn, rt, item_ids, decider_ref)
        done = store.decide(conn, [r["id"] for r in rows if r["held"]], rules.ReviewDecision.CONFIRMED.value,
                            now, actor.id)
        by_id = {r["id"]: r for r in rows}
        audit.record_many(conn, [audit.Entry(at=now, actor=actor.id, action="review_confirmed",
                                             target=f"{by_id[i]['account_id']}:{by_id[i]['role_key']}",
                                             detail={"campaign_id": by_id[i]["campaign_id"]}) for i in done])
    log.info("review_confirmed", items=len(done), by=actor.id)
    return done


def withdraw(rt: Runtime, item_ids: list[int], decider_ref: str, reason: str) -> list[int]:
    """Withdraw rights under review (all or none), with a reason the holders read; return the
    ids answered now. Each goes through ``habilitations.withdraw``."""
    if not (reason or "").strip():
        raise DecisionRefused("reason_required", "A withdrawal needs a reason: the holder is told it.")
    now = rt.clock()
    with transaction(rt.engine) as conn:
        actor, rows, deciders = _authorised_rows(conn, rt, item_ids, decider_ref)
        for row in rows:
            refusal = routing.withdrawal_refusal(
                management=_management(rt, row["role_key"]), organisation_code=row["organisation_code"],
                holder_account_id=row["account_id"], actor_account_id=actor.id, deciders=deciders)
            if refusal is not None:
                raise DecisionRefused(refusal, f"You may not withdraw right {row['id']}.")
        done = store.decide(conn, [r["id"] for r in rows if r["held"]], rules.ReviewDecision.WITHDRAWN.value,
                            now, actor.id, reason.strip())
        _withdraw_rights(conn, rt, [r for r in rows if r["id"] in set(done)], actor.id, reason.strip(), now)
    log.info("review_withdrawn", items=len(done), by=actor.id)
    return done


def _withdraw_rights(conn, rt: Runtime, rows, actor_id: str, reason: str, now: datetime) -> None:
    for row in rows:
        account = repo.account_by_id(conn, row["account_id"])
        habilitations.withdraw(conn, rt, account, row["role_key"], actor_id, reason, now,
                               granted_by_request=row["granted_by_request"])


# --- the daemon's job --------------------------------------------------------------------------------

def run(rt: Runtime) -> int:
    """Open the campaigns the schedule says are due, end those whose window is over, open again
    those that waited for a reviewer and have one; return how many campaigns moved."""
    now = rt.clock()
    return _open_scheduled(rt, now) + _end_windows(rt, now) + _reopen_waiting(rt, now)


def _open_scheduled(rt: Runtime, now: datetime) -> int:
    schedule = [rules.parse_day(day) for day in rt.settings.review.schedule]
    if not schedule:
        return 0
    window = timedelta(days=rt.settings.review.window_days)
    with transaction(rt.engine) as conn:
        last = store.last_openings(conn)
        busy = {c["organisation_code"] for c in store.under_way(conn)}
        due = [o.code for o in rt.mappings.organisations
               if o.code not in busy and rules.due_at(schedule, window, last.get(o.code), now) is not None]
        for code in due:
            _open(conn, rt, code, now, "schedule")
    return len(due)


def _end_windows(rt: Runtime, now: datetime) -> int:
    with transaction(rt.engine, readonly=True) as conn:
        ending = [c["id"] for c in store.under_way(conn)
                  if c["state"] == rules.CampaignState.OPEN.value and repo.aware(c["closes_at"]) <= now]
    for campaign_id in ending:        # one transaction each: a large campaign does not hold up the others
        with transaction(rt.engine) as conn:
            _end_window(conn, rt, campaign_id, now)
    return len(ending)


def _end_window(conn, rt: Runtime, campaign_id: int, now: datetime) -> None:
    campaign = store.campaign(conn, campaign_id)
    rows = store.items(conn, campaign_ids=[campaign_id], undecided=True)
    deciders: list[Decider] = repo.current_deciders(conn, campaign["organisation_code"])
    plan = rules.close_plan([_view(rt, r) for r in rows], deciders, rules.Unanswered(campaign["unanswered"]))
    by_id = {r["id"]: r for r in rows}
    kept = store.decide(conn, plan.keep, rules.ReviewDecision.KEPT_TACITLY.value, now, ACTOR)
    audit.record_many(conn, [audit.Entry(at=now, actor=ACTOR, action="review_kept_tacitly",
                                         target=f"{by_id[i]['account_id']}:{by_id[i]['role_key']}",
                                         detail={"campaign_id": campaign_id}) for i in kept])
    withdrawn = store.decide(conn, plan.withdraw, rules.ReviewDecision.WITHDRAWN_UNANSWERED.value, now, ACTOR,
                             UNANSWERED_REASON)
    _withdraw_rights(conn, rt, [by_id[i] for i in withdrawn], ACTOR, UNANSWERED_REASON, now)
    store.decide(conn, plan.ended, rules.ReviewDecision.ENDED.value, now, ACTOR)
    outcome = store.counts(conn, [campaign_id]).get(campaign_id, {})
    org = campaign["organisation_code"]
    if plan.next_state is rules.CampaignState.AWAITING_REVIEWER:
        store.set_state(conn, campaign_id, plan.next_state.value)
        audit.record(conn, at=now, actor=ACTOR, action="review_awaiting_reviewer", target=org,
                     detail={"campaign_id": campaign_id, "waiting": len(plan.waiting), "outcome": outcome})
        log.warning("review_awaiting_reviewer", campaign_id=campaign_id, organisation=org, waiting=len(plan.waiting))
        return
    store.set_state(conn, campaign_id, plan.next_state.value, closed_at=now, outcome=outcome)
    audit.record(conn, at=now, actor=ACTOR, action="review_closed", target=org,
                 detail={"campaign_id": campaign_id, "outcome": outcome})
    log.info("review_closed", campaign_id=campaign_id, organisation=org, **outcome)


def _reopen_waiting(rt: Runtime, now: datetime) -> int:
    reopened = 0
    window = timedelta(days=rt.settings.review.window_days)
    with transaction(rt.engine) as conn:
        for campaign in store.under_way(conn):
            if campaign["state"] != rules.CampaignState.AWAITING_REVIEWER.value:
                continue
            rows = store.items(conn, campaign_ids=[campaign["id"]], undecided=True)
            deciders = repo.current_deciders(conn, campaign["organisation_code"])
            if not rules.reviewable_again([_view(rt, r) for r in rows], deciders):
                continue
            store.set_state(conn, campaign["id"], rules.CampaignState.OPEN.value, closes_at=now + window)
            audit.record(conn, at=now, actor=ACTOR, action="review_reopened", target=campaign["organisation_code"],
                         detail={"campaign_id": campaign["id"], "closes_at": (now + window).isoformat()})
            _mail_reviewers(conn, rt, campaign["id"], now)
            log.info("review_reopened", campaign_id=campaign["id"], organisation=campaign["organisation_code"])
            reopened += 1
    return reopened


# --- what `syncd status` shows ------------------------------------------------------------------------

def progress(rt: Runtime) -> list[dict[str, Any]]:
    """Each campaign under way: organisation, state, window, rights per answer, and how many
    unanswered rights nobody can review now (``no_reviewer``)."""
    with transaction(rt.engine, readonly=True) as conn:
        report = store.progress(conn)
        rows = store.items_under_way(conn)
        deciders = repo.current_deciders(conn)
    nobody: Counter[int] = Counter()
    for row in rows:
        view = _view(rt, row)
        if view.decision is None and view.held and not rules.reviewers(view, deciders):
            nobody[row["campaign_id"]] += 1
    return [c | {"no_reviewer": nobody[c["campaign_id"]]} for c in report]
