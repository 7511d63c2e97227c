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
