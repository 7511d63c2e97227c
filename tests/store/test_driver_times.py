"""Times bound and read on the driver's cursor (the tacit sweep's and the decision's SQL) are the
times ``UtcDateTime`` would have stored and returned."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from syncd.store.tables import time_from_driver, time_to_driver

AWARE = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30),
                     timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=2)),
                                                timezone(timedelta(hours=-9, minutes=-30))]))


@given(AWARE)
def test_a_time_written_as_sqlite_text_reads_back_as_the_same_instant_in_utc(moment):
    back = time_from_driver(time_to_driver(moment, postgresql=False))
    assert back == moment and back.utcoffset() == timedelta(0)


@given(AWARE)
def test_a_time_bound_for_postgresql_is_the_same_instant_in_utc(moment):
    bound = time_to_driver(moment, postgresql=True)
    assert bound == moment and bound.utcoffset() == timedelta(0)


def test_text_another_writer_stored_with_an_offset_reads_as_that_instant():
    assert time_from_driver("2026-01-02T05:04:05+02:00") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_a_naive_time_is_refused_rather_than_guessed_at():
    with pytest.raises(ValueError):
        time_to_driver(datetime(2026, 1, 2), postgresql=False)
