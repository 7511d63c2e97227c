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
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

Calendar = Literal["calendar_days", "business_days_fr"]

# The federation's local time, in which business days are counted. Hard-wired: the policy in
# the mappings has no timezone setting (adding one is a change to syncd/mappings/models.py), and the
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
