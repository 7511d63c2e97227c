"""The rule of access review campaigns: when one is due, who reviews a right, what the end does."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.core.model import Management
from syncd.core.reviews import (CampaignState, ItemView, ReviewDecision, Unanswered, close_plan, due_at,
                                latest_scheduled, may_review, parse_day, reviewable_again, reviewers)
from tests.factories import central, correspondent

WINDOW = timedelta(days=30)
days_of_year = st.tuples(st.integers(1, 12), st.integers(1, 31)).filter(
    lambda md: md[1] <= (29 if md[0] == 2 else 30 if md[0] in (4, 6, 9, 11) else 31))
moments = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 31),
                       timezones=st.just(timezone.utc))


def item(id=1, holder="u-holder", management=Management.LOCAL, org="CARSAT-RA", decision=None, held=True):
    return ItemView(id, holder, "role", org, management, decision, held)


# --- the schedule ---------------------------------------------------------------------------------

def test_a_day_of_the_year_reads_month_then_day():
    assert parse_day("01-15") == (1, 15) and parse_day("02-29") == (2, 29)


@pytest.mark.parametrize("text", ["1-15", "13-01", "04-31", "00-10", "01-00", "15/01", "", "2027-01-15", "٠١-١٥"])
def test_what_is_not_a_day_of_the_year_is_refused(text):
    with pytest.raises(ValueError):
        parse_day(text)


@given(st.lists(days_of_year, min_size=1, max_size=4), moments)
def test_the_latest_scheduled_opening_is_never_in_the_future_nor_over_a_year_old(schedule, now):
    latest = latest_scheduled(schedule, now)
    assert latest is not None and latest <= now < latest + timedelta(days=367)
    assert latest.hour == latest.minute == 0


@given(st.lists(days_of_year, min_size=1, max_size=4), moments, st.integers(1, 365))
def test_a_campaign_is_due_only_inside_the_window_of_its_opening_and_once(schedule, now, window_days):
    window = timedelta(days=window_days)
    moment = due_at(schedule, window, None, now)
    latest = latest_scheduled(schedule, now)
    assert (moment is not None) == (now < latest + window)
    if moment is not None:
        assert due_at(schedule, window, now, now) is None, "opened now: not due again"
        assert due_at(schedule, window, moment - timedelta(seconds=1), now) == moment, "an older one does not count"


def test_the_29th_of_february_opens_on_the_28th_in_other_years():
    assert latest_scheduled([(2, 29)], datetime(2027, 3, 1, tzinfo=timezone.utc)) == \
        datetime(2027, 2, 28, tzinfo=timezone.utc)
    assert latest_scheduled([(2, 29)], datetime(2028, 3, 1, tzinfo=timezone.utc)) == \
        datetime(2028, 2, 29, tzinfo=timezone.utc)


def test_no_schedule_is_never_due():
    assert due_at([], WINDOW, None, datetime(2027, 1, 1, tzinfo=timezone.utc)) is None


def test_a_daemon_down_for_longer_than_the_window_does_not_open_a_campaign_that_would_end_at_once():
    now = datetime(2027, 1, 15, tzinfo=timezone.utc) + WINDOW
    assert due_at([(1, 15)], WINDOW, None, now) is None
    assert due_at([(1, 15)], WINDOW, None, now - timedelta(seconds=1)) is not None


# --- who reviews ------------------------------------------------------------------------------------

def test_a_local_right_is_reviewed_by_its_organisations_correspondents_never_its_holder():
    deciders = [correspondent("u-c1"), correspondent("u-holder"), correspondent("u-other", "CPAM-75"), central("u-a")]
    assert [d.account_id for d in reviewers(item(), deciders)] == ["u-c1"]
    assert may_review(item(), "u-c1", deciders) and not may_review(item(), "u-a", deciders)


def test_a_central_right_is_reviewed_by_the_central_administrators():
    deciders = [correspondent("u-c1"), central("u-a")]
    assert [d.account_id for d in reviewers(item(management=Management.CENTRAL), deciders)] == ["u-a"]


def test_an_organisation_without_correspondent_has_its_rights_reviewed_by_the_central_administrators():
    assert [d.account_id for d in reviewers(item(), [central("u-a")])] == ["u-a"]


# --- the end of the window ----------------------------------------------------------------------------

def test_the_end_keeps_or_withdraws_exactly_the_unanswered_rights_by_the_campaigns_rule():
    items = [item(1), item(2, decision=ReviewDecision.CONFIRMED), item(3, decision=ReviewDecision.WITHDRAWN),
             item(4), item(5, held=False)]
    deciders = [correspondent("u-c1")]
    keep = close_plan(items, deciders, Unanswered.KEEP)
    assert (keep.keep, keep.withdraw, keep.ended, keep.waiting) == ((1, 4), (), (5,), ())
    withdraw = close_plan(items, deciders, Unanswered.WITHDRAW)
    assert (withdraw.keep, withdraw.withdraw, withdraw.ended) == ((), (1, 4), (5,))
    assert withdraw.next_state is CampaignState.CLOSED


def test_a_right_nobody_can_review_waits_and_is_never_withdrawn_unasked():
    plan = close_plan([item(1), item(2, management=Management.CENTRAL)], [correspondent("u-c1")], Unanswered.WITHDRAW)
    assert plan.withdraw == (1,) and plan.waiting == (2,)
    assert plan.next_state is CampaignState.AWAITING_REVIEWER
    assert not reviewable_again([item(2, management=Management.CENTRAL)], [correspondent("u-c1")])
    assert reviewable_again([item(2, management=Management.CENTRAL)], [central("u-a")])


@given(st.lists(st.tuples(st.sampled_from([None, *ReviewDecision]), st.booleans(), st.sampled_from(Management)),
                max_size=30),
       st.sampled_from(Unanswered), st.booleans(), st.booleans())
def test_the_end_sorts_every_unanswered_right_into_exactly_one_outcome(specs, unanswered, has_corr, has_central):
    items = [item(i, management=m, decision=d, held=h) for i, (d, h, m) in enumerate(specs)]
    deciders = ([correspondent("u-c1")] if has_corr else []) + ([central("u-a")] if has_central else [])
    plan = close_plan(items, deciders, unanswered)
    sorted_out = plan.keep + plan.withdraw + plan.ended + plan.waiting
    assert sorted(sorted_out) == [i.id for i in items if i.decision is None]
    assert not (plan.keep and plan.withdraw), "one rule for the whole campaign"
    for i in items:
        if i.id in plan.withdraw or i.id in plan.keep:
            assert i.held and reviewers(i, deciders), "only a right someone could have reviewed is settled"


@given(st.text(max_size=12))
def test_any_text_is_a_day_of_the_year_or_refused_with_a_value_error(text):
    try:
        month, day = parse_day(text)
    except ValueError:
        return
    assert latest_scheduled([(month, day)], datetime(2030, 12, 31, 23, 59, tzinfo=timezone.utc)) is not None
