"""The tacit-acceptance clock: deadlines and reminder days, computed from a given time.

"Sauf refus formel par votre administrateur local, votre demande sera acceptée dans un délai
maximum de 10 jours après la date de la demande." The deadline is fixed when the request is
routed and shown in its history. Days are calendar days by default; ``business_days_fr``
counts only Monday–Friday outside French public holidays (the ``holidays`` package's data).

Business days are counted on the federation's local date (``FEDERATION_TIMEZONE``), not on the
UTC date: a request submitted at 23:30 UTC on a Sunday in summer was submitted on Monday in
Paris, and Monday is the day the people deciding it live in. The deadline keeps the local
time of day of the submission. Reminders ("D-n") follow the same calendar as the deadline:
under ``business_days_fr``, D-1 is the business day before the deadline.

Whatever ``submitted_at`` says, the deciders get a minimum window after the request first reached
one of them (``decision_deadline``): a request taken in after a portal backlog or an outage is not
accepted seconds after its deciders were told. The window counts French business days, so that a
request routed on a Friday evening is not accepted on Sunday (0 business days: no window).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

Calendar = Literal["calendar_days", "business_days_fr"]

# The federation's local time, in which business days are counted. Hard-wired: the policy in
# the mappings has no timezone setting (adding one is a change to syncd/core/mappings.py), and the
# business-day calendar is the French one anyway. The mail templates show times in the same zone
# (syncd/mail/render.py, PARIS).
FEDERATION_TIMEZONE = ZoneInfo("Europe/Paris")


@lru_cache(maxsize=64)
def _french_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.France(years=year).keys())


def is_business_day_fr(day: date) -> bool:
    return day.weekday() < 5 and day not in _french_holidays(day.year)


def local_date(moment: datetime) -> date:
    """The date it is in the federation at ``moment`` (an aware datetime)."""
    return moment.astimezone(FEDERATION_TIMEZONE).date()


def _shift_business_days(moment: datetime, days: int) -> datetime:
    """``moment`` moved ``days`` French business days forward (or back, when negative).

    Counted on the local date; the local time of day is kept. The day reached is a business day,
    and the clocks never change on one (in the EU they change on Sundays), so that local time
    exists and is unambiguous.
    """
    local = moment.astimezone(FEDERATION_TIMEZONE)
    step = timedelta(days=1 if days > 0 else -1)
    day, counted = local.date(), 0
    while counted < abs(days):
        day += step
        if is_business_day_fr(day):
            counted += 1
    shifted = datetime.combine(day, local.time(), tzinfo=FEDERATION_TIMEZONE)
    # Through UTC, so that a local time that did not exist (never on a business day) still maps to one instant.
    return shifted.astimezone(timezone.utc).astimezone(moment.tzinfo)


def deadline(submitted_at: datetime, delay_days: int, calendar: Calendar = "calendar_days") -> datetime:
    """When a request submitted at ``submitted_at`` becomes tacitly accepted if not refused.

    ``calendar_days``: ``delay_days`` × 24 hours later. ``business_days_fr``: the same local time
    of day (Europe/Paris), ``delay_days`` French business days after the local date of submission.
    """
    if submitted_at.tzinfo is None:
        raise ValueError("submitted_at must be timezone-aware")
    if delay_days < 1:
        raise ValueError("delay_days must be at least 1")
    if calendar == "calendar_days":
        return submitted_at + timedelta(days=delay_days)
    return _shift_business_days(submitted_at, delay_days)


def decision_deadline(submitted_at: datetime, delay_days: int, first_routed_at: datetime, window_business_days: int,
                      calendar: Calendar = "calendar_days") -> datetime:
    """The tacit deadline of a request first routed to a decider at ``first_routed_at``: the later of
    ``deadline(submitted_at, delay_days, calendar)`` and ``window_business_days`` French business
    days after that first routing. A later re-route does not move it: pass the *first* routing.
    A window of 0 turns it off, down to the first routing itself (the behaviour before 0.2)."""
    if first_routed_at.tzinfo is None:
        raise ValueError("first_routed_at must be timezone-aware")
    if window_business_days < 0:
        raise ValueError("window_business_days must not be negative")
    return max(deadline(submitted_at, delay_days, calendar), _shift_business_days(first_routed_at, window_business_days))


def days_left(deadline_at: datetime, now: datetime, calendar: Calendar = "calendar_days") -> int:
    """How many days remain before ``deadline_at``, as a person in the federation counts them.

    Counted on local dates: the days after today up to the deadline's day, every one of them in
    ``calendar_days``, only the business days in ``business_days_fr``. A "D-n" reminder sent on time
    says n; sent late, what really remains; 0 on the deadline's own day (or after it).
    """
    today, last = local_date(now), local_date(deadline_at)
    if last <= today:
        return 0
    if calendar == "calendar_days":
        return (last - today).days
    return sum(1 for offset in range(1, (last - today).days + 1)
               if is_business_day_fr(today + timedelta(days=offset)))


def reminder_at(deadline_at: datetime, days_before: int, calendar: Calendar = "calendar_days") -> datetime:
    """When the "D-``days_before``" reminder of a request with this deadline is due.

    Under ``business_days_fr``, ``days_before`` business days before the deadline (D-1 of a
    Monday deadline is the Friday before, at the same local time).
    """
    if calendar == "calendar_days":
        return deadline_at - timedelta(days=days_before)
    return _shift_business_days(deadline_at, -days_before)


def reminder_horizon(now: datetime, days_before: tuple[int, ...], calendar: Calendar = "calendar_days") -> datetime:
    """A deadline after this has no reminder due at ``now``: a bound to select candidates by.

    Under ``business_days_fr``, n business days never span more than 2n + 7 calendar days
    (weekends and at most a few public holidays in a row), so that bound is used.
    """
    furthest = max(days_before)
    if calendar == "calendar_days":
        return now + timedelta(days=furthest)
    return now + timedelta(days=2 * furthest + 7)


def is_due(deadline_at: datetime | None, now: datetime) -> bool:
    return deadline_at is not None and now >= deadline_at


def reminders_due(
    deadline_at: datetime, now: datetime, days_before: tuple[int, ...], already_sent: frozenset[int],
    calendar: Calendar = "calendar_days",
) -> list[int]:
    """Which "D-n" reminders should go out now: their day has come and they were not sent.

    Days are counted in the deadline's ``calendar``. Only the closest one is returned when
    several are late (a daemon that was down for a week sends one reminder, not a burst).
    """
    if now >= deadline_at:
        return []
    due = [n for n in sorted(set(days_before), reverse=True)
           if n not in already_sent and now >= reminder_at(deadline_at, n, calendar)]
    return due[-1:] if due else []
