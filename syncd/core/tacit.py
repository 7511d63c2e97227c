"""The tacit-acceptance clock: deadlines and reminder days, computed from a given time.

"Sauf refus formel par votre administrateur local, votre demande sera acceptée dans un délai
maximum de 10 jours après la date de la demande." The deadline is fixed when the request is
routed and shown in its history. Days are calendar days by default; ``business_days_fr``
counts only Monday–Friday outside French public holidays (the ``holidays`` package's data).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Literal

import holidays

Calendar = Literal["calendar_days", "business_days_fr"]


@lru_cache(maxsize=64)
def _french_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.France(years=year).keys())


def is_business_day_fr(day: date) -> bool:
    return day.weekday() < 5 and day not in _french_holidays(day.year)


def deadline(submitted_at: datetime, delay_days: int, calendar: Calendar = "calendar_days") -> datetime:
    """When a request submitted at ``submitted_at`` becomes tacitly accepted if not refused."""
    if submitted_at.tzinfo is None:
        raise ValueError("submitted_at must be timezone-aware")
    if delay_days < 1:
        raise ValueError("delay_days must be at least 1")
    if calendar == "calendar_days":
        return submitted_at + timedelta(days=delay_days)
    # Business days: the same time of day, ``delay_days`` business days later.
    moment, counted = submitted_at, 0
    while counted < delay_days:
        moment += timedelta(days=1)
        if is_business_day_fr(moment.date()):
            counted += 1
    return moment


def is_due(deadline_at: datetime | None, now: datetime) -> bool:
    return deadline_at is not None and now >= deadline_at


def reminders_due(
    deadline_at: datetime, now: datetime, days_before: tuple[int, ...], already_sent: frozenset[int]
) -> list[int]:
    """Which "D-n" reminders should go out now: their day has come and they were not sent.

    Only the closest one is returned when several are late (a daemon that was down for a week
    sends one reminder, not a burst).
    """
    if now >= deadline_at:
        return []
    due = [n for n in sorted(set(days_before), reverse=True)
           if n not in already_sent and now >= deadline_at - timedelta(days=n)]
    return due[-1:] if due else []
