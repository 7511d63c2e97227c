"""Access reviews (issue 15, part 3): when a campaign is due, who reviews which right, what the end does.

A campaign reviews, for one organisation, the rights its people hold in roles marked
``review: true``. Each right is reviewed by whoever would decide a request for it now
(``routing.route``): the organisation's correspondents for a locally managed role, the central
administrators for a centrally managed one or when the organisation has no correspondent; never
the holder. A right with nobody to review it waits, visible, as a request nobody can decide
does: the end of the window neither keeps nor withdraws it. The end handles each unanswered
right by the campaign's ``unanswered`` rule: ``keep`` (kept tacitly, recorded) or ``withdraw``.

Campaigns open on the days of the year the ``review.schedule`` setting names ("MM-DD", at
00:00 UTC), or when the operator starts one. Pure: the clock is passed in.
"""

from __future__ import annotations

import calendar
import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from syncd.core import routing
from syncd.core.model import Decider, Management, RequestKind


class Unanswered(str, enum.Enum):
    KEEP = "keep"            # kept tacitly, recorded as such
    WITHDRAW = "withdraw"    # withdrawn, the holder told


class CampaignState(str, enum.Enum):
    OPEN = "open"                            # reviewers may answer until ``closes_at``
    AWAITING_REVIEWER = "awaiting_reviewer"  # window over, some rights had nobody to review them
    CLOSED = "closed"


class ReviewDecision(str, enum.Enum):
    CONFIRMED = "confirmed"
    WITHDRAWN = "withdrawn"
    KEPT_TACITLY = "kept_tacitly"                  # unanswered, review.unanswered: keep
    WITHDRAWN_UNANSWERED = "withdrawn_unanswered"  # unanswered, review.unanswered: withdraw
    ENDED = "ended"                                # the right ended otherwise meanwhile (withdrawn, account disabled)


_DAY = re.compile(r"^([0-9]{2})-([0-9]{2})$")


def parse_day(text: str) -> tuple[int, int]:
    """``"MM-DD"`` → (month, day); ``ValueError`` with the reason. 02-29 is accepted (the 28th
    in other years)."""
    found = _DAY.match(text.strip()) if isinstance(text, str) else None
    if not found:
        raise ValueError(f"{text!r} is not a day of the year written MM-DD, such as 01-15")
    month, day = int(found[1]), int(found[2])
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(2024, month)[1]:
        raise ValueError(f"{text!r} is not a day of the year (MM-DD)")
    return month, day


def _moment(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, min(day, calendar.monthrange(year, month)[1]), tzinfo=timezone.utc)


def latest_scheduled(schedule: Iterable[tuple[int, int]], now: datetime) -> datetime | None:
    """The last scheduled opening at or before ``now`` (None: no schedule)."""
    moments = [_moment(year, month, day) for year in (now.year - 1, now.year) for month, day in schedule]
    return max((m for m in moments if m <= now), default=None)


def due_at(schedule: Iterable[tuple[int, int]], window: timedelta, last_opened_at: datetime | None,
           now: datetime) -> datetime | None:
    """The scheduled opening a new campaign is due for now, or None.

    Due while its window runs (a daemon down on the day catches up, one stopped for longer does
    not open a campaign that would end at once), unless a campaign opened since (by the schedule
    or by the operator).
    """
    moment = latest_scheduled(schedule, now)
    if moment is None or now >= moment + window:
        return None
    if last_opened_at is not None and last_opened_at >= moment:
        return None
    return moment


@dataclass(frozen=True)
class ItemView:
    """One right under review, as the rules see it."""

    id: int
    account_id: str
    role_key: str
    organisation_code: str
    management: Management
    decision: ReviewDecision | None = None
    held: bool = True            # the membership still stands (not withdrawn otherwise meanwhile)


def reviewers(item: ItemView, deciders: Sequence[Decider]) -> tuple[Decider, ...]:
    """Who reviews this right now: whoever would decide a request for it (never its holder)."""
    return routing.route(kind=RequestKind.HABILITATION, management=item.management,
                         organisation_code=item.organisation_code, requester_account_id=item.account_id,
                         deciders=deciders).deciders


def may_review(item: ItemView, decider_account_id: str, deciders: Sequence[Decider]) -> bool:
    return any(d.account_id == decider_account_id for d in reviewers(item, deciders))


@dataclass(frozen=True)
class ClosePlan:
    """What the end of a campaign's window does with each undecided right (item ids)."""

    keep: tuple[int, ...] = ()       # kept tacitly
    withdraw: tuple[int, ...] = ()   # withdrawn, unanswered
    ended: tuple[int, ...] = ()      # nothing left to decide: the right ended meanwhile
    waiting: tuple[int, ...] = ()    # nobody to review them: they wait, untouched

    @property
    def next_state(self) -> CampaignState:
        return CampaignState.AWAITING_REVIEWER if self.waiting else CampaignState.CLOSED


def close_plan(items: Iterable[ItemView], deciders: Sequence[Decider], unanswered: Unanswered) -> ClosePlan:
    keep: list[int] = []
    withdraw: list[int] = []
    ended: list[int] = []
    waiting: list[int] = []
    for item in items:
        if item.decision is not None:
            continue
        if not item.held:
            ended.append(item.id)
        elif not reviewers(item, deciders):
            waiting.append(item.id)
        elif unanswered is Unanswered.WITHDRAW:
            withdraw.append(item.id)
        else:
            keep.append(item.id)
    return ClosePlan(tuple(keep), tuple(withdraw), tuple(ended), tuple(waiting))


def reviewable_again(items: Iterable[ItemView], deciders: Sequence[Decider]) -> bool:
    """Whether a campaign waiting for a reviewer has one now for some right it still holds open:
    it then opens again for a new window."""
    return any(item.decision is None and item.held and reviewers(item, deciders) for item in items)
