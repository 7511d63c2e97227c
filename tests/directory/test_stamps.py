"""Change stamps per directory kind: cursors, ordering, filters (no server needed)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from syncd.core.model import DirectoryKind
from syncd.directory.stamps import (CLOCK_MARGIN_SECONDS, WRITE_MARGIN_SECONDS, csn_at, csn_cursor,
                                    post_read_stamp, stamp_profile)

times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(timezone.utc))


def csn(at: datetime, sid: int = 0) -> str:
    return at.strftime("%Y%m%d%H%M%S.%fZ") + f"#000000#{sid:03x}#000000"


@given(times, st.floats(min_value=0, max_value=86400))
def test_the_next_cursor_is_before_the_newest_stamp_by_the_run_and_a_write_s_margin(at, seconds):
    cursor = csn_cursor(csn(at), seconds)
    assert cursor < csn(at)
    assert cursor <= csn(at - timedelta(seconds=seconds + WRITE_MARGIN_SECONDS))


@given(times, times)
def test_openldap_stamps_order_as_their_times(a, b):
    profile = stamp_profile(DirectoryKind.OPENLDAP)
    assert profile.newest([csn(a), csn(b)]) == csn(max(a, b))


def test_a_clock_cursor_keeps_the_clock_and_write_margins():
    now = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
    assert csn_at(now.timestamp()) == csn(now - timedelta(seconds=CLOCK_MARGIN_SECONDS + WRITE_MARGIN_SECONDS))


def test_389_stamps_are_counters_compared_as_numbers_and_cursors_come_from_the_root_dse():
    profile = stamp_profile(DirectoryKind.DS389)
    assert (profile.attribute, profile.root_dse_cursor, profile.cursor_from_clock) == ("entryUSN", "lastusn", None)
    assert profile.later("9", None, "10") == "10"
    assert profile.since_filter("10") == "(entryUSN>=10)"


def test_the_later_cursor_of_none_is_none():
    assert stamp_profile(DirectoryKind.OPENLDAP).later(None, None) is None


def test_a_post_read_result_gives_the_stamp_and_the_attributes_written():
    result = {"controls": {"1.3.6.1.1.13.2": {"value": {"result": {"mail": ["a@x"], "entryCSN": ["s1"]}}}}}
    assert post_read_stamp(result, "entrycsn") == ("s1", {"mail": ["a@x"], "entryCSN": ["s1"]})
    assert post_read_stamp({"result": 0}, "entryCSN") == (None, {})
