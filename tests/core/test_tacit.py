from datetime import datetime, timedelta, timezone

import pytest

from syncd.core.tacit import deadline, is_due, reminders_due
from tests.factories import T0


def test_the_default_deadline_is_ten_calendar_days_after_submission():
    assert deadline(T0, 10) == T0 + timedelta(days=10)


def test_a_business_day_deadline_skips_weekends_and_french_public_holidays():
    # Thursday 2026-11-05 + 5 business days: Fri 6, Mon 9, Tue 10, Thu 12 (11 Nov is a holiday), Fri 13.
    submitted = datetime(2026, 11, 5, 10, 0, tzinfo=timezone.utc)
    assert deadline(submitted, 5, "business_days_fr") == datetime(2026, 11, 13, 10, 0, tzinfo=timezone.utc)


def test_a_naive_submission_time_is_refused():
    with pytest.raises(ValueError):
        deadline(datetime(2026, 1, 1), 10)


def test_a_request_is_due_exactly_at_its_deadline_and_not_a_second_before():
    d = T0 + timedelta(days=10)
    assert not is_due(d, d - timedelta(seconds=1))
    assert is_due(d, d)
    assert not is_due(None, d)


def test_reminders_go_out_on_their_day_once_and_only_the_latest_when_late():
    d = T0 + timedelta(days=10)
    assert reminders_due(d, d - timedelta(days=4), (3, 1), frozenset()) == []
    assert reminders_due(d, d - timedelta(days=3), (3, 1), frozenset()) == [3]
    assert reminders_due(d, d - timedelta(days=2), (3, 1), frozenset({3})) == []
    assert reminders_due(d, d - timedelta(hours=12), (3, 1), frozenset()) == [1]
    assert reminders_due(d, d, (3, 1), frozenset()) == []


# -- the business-day calendar is the federation's (Europe/Paris), not UTC's -----------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from syncd.core.tacit import (FEDERATION_TIMEZONE, is_business_day_fr, local_date, reminder_at,  # noqa: E402
                              reminder_horizon)

PARIS = FEDERATION_TIMEZONE
UTC = timezone.utc


def paris(*args):
    return datetime(*args, tzinfo=PARIS)


def business_days_between(after, up_to):
    """French business days d with after < d <= up_to (dates)."""
    return sum(is_business_day_fr(after + timedelta(days=i)) for i in range(1, (up_to - after).days + 1))


def test_a_request_submitted_late_on_sunday_utc_in_summer_counts_from_monday_in_paris():
    # Sunday 5 July 2026, 23:30 UTC is Monday 6 July, 01:30 in Paris. Five business days from that
    # Monday: 7, 8, 9, 10 and 13 July. Counted on the UTC date, the deadline fell on Saturday in Paris.
    submitted = datetime(2026, 7, 5, 23, 30, tzinfo=UTC)
    assert deadline(submitted, 5, "business_days_fr") == paris(2026, 7, 13, 1, 30)


def test_a_request_submitted_on_a_paris_public_holiday_counts_from_the_holiday():
    # Monday 13 July 2026, 22:30 UTC is 14 July (Bastille Day), 00:30 in Paris: one business day
    # later is Wednesday 15 July, 00:30 in Paris, not Thursday as counting on UTC dates gave.
    submitted = datetime(2026, 7, 13, 22, 30, tzinfo=UTC)
    assert deadline(submitted, 1, "business_days_fr") == paris(2026, 7, 15, 0, 30)


def test_a_business_day_deadline_keeps_the_paris_time_of_day_across_a_clock_change():
    # Friday 23 October 2026, 10:00 in Paris (summer time, 08:00 UTC); clocks go back on the 25th.
    submitted = paris(2026, 10, 23, 10, 0)
    assert deadline(submitted.astimezone(UTC), 2, "business_days_fr") == paris(2026, 10, 27, 10, 0)
    assert deadline(submitted.astimezone(UTC), 2, "business_days_fr").astimezone(UTC).hour == 9


def test_calendar_days_are_still_whole_days_of_twenty_four_hours():
    submitted = datetime(2026, 7, 5, 23, 30, tzinfo=UTC)
    assert deadline(submitted, 10) == submitted + timedelta(days=10)


moments = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC))
delays = st.integers(min_value=1, max_value=40)


@settings(max_examples=300, deadline=None)
@given(submitted=moments, days=delays)
def test_a_business_day_deadline_falls_on_a_paris_business_day_exactly_n_of_them_later_at_the_same_paris_time(
        submitted, days):
    due = deadline(submitted, days, "business_days_fr")
    start, end = submitted.astimezone(PARIS), due.astimezone(PARIS)
    assert due > submitted
    assert is_business_day_fr(end.date())
    assert business_days_between(start.date(), end.date()) == days
    assert end.time() == start.time()
    assert business_days_between(start.date(), end.date() - timedelta(days=1)) == days - 1


# -- reminders follow the deadline's calendar ---------------------------------------------------------

def test_under_business_days_d_minus_one_of_a_monday_deadline_is_the_friday_before():
    due = paris(2026, 11, 16, 10, 0)                      # Monday
    assert reminder_at(due, 1, "business_days_fr") == paris(2026, 11, 13, 10, 0)
    assert reminder_at(due, 3, "business_days_fr") == paris(2026, 11, 10, 10, 0)   # 11 Nov is a holiday
    assert reminder_at(due, 1) == paris(2026, 11, 15, 10, 0)                         # calendar days: Sunday


def test_under_business_days_the_reminders_go_out_on_business_days():
    due = paris(2026, 11, 16, 10, 0)
    sunday = paris(2026, 11, 15, 12, 0)
    friday = paris(2026, 11, 13, 10, 0)
    assert reminders_due(due, sunday, (3, 1), frozenset({3})) == [1]                 # calendar days
    assert reminders_due(due, friday - timedelta(seconds=1), (3, 1), frozenset({3}), "business_days_fr") == []
    assert reminders_due(due, friday, (3, 1), frozenset({3}), "business_days_fr") == [1]
    assert reminders_due(due, sunday, (3, 1), frozenset({3, 1}), "business_days_fr") == []
    assert reminders_due(due, paris(2026, 11, 9, 12, 0), (3, 1), frozenset(), "business_days_fr") == []
    assert reminders_due(due, paris(2026, 11, 10, 10, 0), (3, 1), frozenset(), "business_days_fr") == [3]


@settings(max_examples=300, deadline=None)
@given(submitted=moments, delay=delays, before=st.integers(min_value=1, max_value=40))
def test_a_business_day_reminder_falls_on_a_business_day_n_business_days_before_the_deadline(
        submitted, delay, before):
    due = deadline(submitted, delay, "business_days_fr")
    remind = reminder_at(due, before, "business_days_fr")
    assert remind < due
    assert is_business_day_fr(local_date(remind))
    assert business_days_between(local_date(remind), local_date(due)) == before
    assert remind.astimezone(PARIS).time() == due.astimezone(PARIS).time()


@settings(max_examples=300, deadline=None)
@given(due=moments, before=st.lists(st.integers(min_value=1, max_value=365), min_size=1, max_size=4),
       calendar=st.sampled_from(["calendar_days", "business_days_fr"]))
def test_a_deadline_with_a_reminder_due_is_never_beyond_the_reminder_horizon(due, before, calendar):
    # The remind job selects candidates by deadline_at <= horizon: none with a reminder due is left out.
    for n in before:
        earliest = reminder_at(due, n, calendar)
        assert due <= reminder_horizon(earliest, tuple(before), calendar)
