"""The rules that give every request a decider's chance (pure, clock passed in): the minimum
window after the first routing, the days a reminder states, who decides when nobody can or an
external account request runs out of time, and what is never accepted tacitly."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.lifecycle import decide, is_escalated, tacit_acceptance, tacit_applies
from syncd.core.model import Decision, Management, RequestKind, Status, Verdict
from syncd.core.routing import RouteReason, route
from syncd.core.tacit import decision_deadline, days_left, deadline, is_business_day_fr, local_date, reminder_at
from syncd.errors import DecisionRefused
from tests.factories import T0, central, correspondent, request

CALENDARS = st.sampled_from(["calendar_days", "business_days_fr"])
MOMENTS = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31),
                       timezones=st.just(timezone.utc))
FAST = settings(max_examples=200, deadline=None)


# --- the minimum window -------------------------------------------------------------------------

def business_days_between(start: datetime, end: datetime) -> int:
    """French business days after ``start``'s Paris date, up to ``end``'s."""
    first, last = local_date(start), local_date(end)
    return sum(1 for n in range(1, (last - first).days + 1) if is_business_day_fr(first + timedelta(days=n)))


@FAST
@given(submitted=MOMENTS, backlog=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)),
       delay=st.integers(1, 30), window=st.integers(0, 10), calendar=CALENDARS)
def test_the_deadline_is_never_before_the_delay_nor_before_the_window_after_the_first_routing(
        submitted, backlog, delay, window, calendar):
    routed = submitted + backlog
    d = decision_deadline(submitted, delay, routed, window, calendar)
    assert d >= deadline(submitted, delay, calendar) and d >= routed
    assert business_days_between(routed, d) >= window
    if d != deadline(submitted, delay, calendar):
        assert business_days_between(routed, d) == window, "the window, not a day more"


def test_a_request_taken_in_eleven_days_late_gets_two_business_days_from_monday_to_wednesday():
    assert decision_deadline(T0 - timedelta(days=11), 10, T0, 2) == T0 + timedelta(days=2)


def test_a_request_routed_on_a_friday_evening_is_decided_until_tuesday_evening():
    friday = datetime(2026, 11, 6, 18, 0, tzinfo=timezone.utc)
    assert decision_deadline(friday - timedelta(days=30), 10, friday, 2) == friday + timedelta(days=4)


def test_a_request_routed_in_time_keeps_its_delay():
    assert decision_deadline(T0, 10, T0 + timedelta(hours=1), 2) == T0 + timedelta(days=10)


def test_a_naive_first_routing_and_a_negative_window_are_refused():
    with pytest.raises(ValueError):
        decision_deadline(T0, 10, datetime(2026, 1, 1), 2)
    with pytest.raises(ValueError):
        decision_deadline(T0, 10, T0, -1)


def test_a_window_of_zero_turns_it_off_down_to_the_first_routing():
    assert decision_deadline(T0 - timedelta(days=11), 10, T0, 0) == T0


# --- days left ----------------------------------------------------------------------------------

@FAST
@given(d=MOMENTS, n=st.integers(1, 15), calendar=CALENDARS)
def test_a_reminder_sent_on_its_day_states_its_own_number_of_days(d, n, calendar):
    if calendar == "business_days_fr":
        d = deadline(d, 1, calendar)      # a business-day deadline falls on a business day
    else:
        d = d.replace(hour=11)            # away from midnight: a clock change cannot move the date
    assert days_left(d, reminder_at(d, n, calendar), calendar) == n


@FAST
@given(d=MOMENTS, before=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40)),
       later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=5)), calendar=CALENDARS)
def test_the_days_left_only_go_down_as_time_passes_and_are_zero_at_the_deadline(d, before, later, calendar):
    now = d - before
    assert days_left(d, now + later, calendar) <= days_left(d, now, calendar)
    assert days_left(d, d, calendar) == 0
    assert days_left(d, now, calendar) <= (local_date(d) - local_date(now)).days


def test_a_d3_reminder_a_day_late_says_two_days_and_under_business_days_counts_only_those():
    d = T0 + timedelta(days=10)                                                   # Thursday 12 November
    assert days_left(d, d - timedelta(days=2, hours=1)) == 2
    assert days_left(d, d - timedelta(days=3), "business_days_fr") == 2           # Tue 10: (Wed 11 Nov), Thu
    assert days_left(d, d - timedelta(hours=2)) == 0


# --- routing: nobody, and escalation -------------------------------------------------------------

def test_with_nobody_to_decide_the_route_is_empty_and_the_request_waits():
    r = route(kind=RequestKind.HABILITATION, management=Management.LOCAL, organisation_code="CARSAT-RA",
              requester_account_id="u1", deciders=[correspondent("c9", org="CPAM-75")])
    assert r.deciders == () and r.waiting_status is Status.AWAITING_DECIDER


def test_an_escalated_request_goes_to_the_central_administrators_only():
    deciders = [correspondent("c1"), central("admin")]
    r = route(kind=RequestKind.ACCOUNT, management=None, organisation_code="CARSAT-RA",
              requester_account_id=None, deciders=deciders, escalated=True)
    assert (r.reason, r.decider_ids, r.waiting_status) == (RouteReason.ESCALATED, {"admin"}, Status.PENDING)
    alone = route(kind=RequestKind.ACCOUNT, management=None, organisation_code="CARSAT-RA",
                  requester_account_id=None, deciders=[correspondent("c1")], escalated=True)
    assert alone.waiting_status is Status.AWAITING_DECIDER


# --- what is accepted tacitly ---------------------------------------------------------------------

def account(internal):
    return request(kind=RequestKind.ACCOUNT, requester=None, role=None, internal=internal)


@FAST
@given(after=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650)), flag=st.booleans(),
       internal=st.sampled_from([False, None]))
def test_an_external_account_request_is_never_accepted_tacitly_and_is_escalated_from_its_deadline(
        after, flag, internal):
    r = account(internal)
    now = r.deadline_at + after
    assert tacit_acceptance(r, now=now, internal_accounts=flag) is None
    assert is_escalated(r, now=now, internal_accounts=flag)
    assert not is_escalated(r, now=r.deadline_at - timedelta(seconds=1), internal_accounts=flag)


def test_an_internal_account_request_is_accepted_tacitly_unless_the_policy_says_otherwise():
    r = account(True)
    assert tacit_acceptance(r, now=r.deadline_at).to_status is Status.ACCEPTED_TACITLY
    assert tacit_acceptance(r, now=r.deadline_at, internal_accounts=False) is None
    assert is_escalated(r, now=r.deadline_at, internal_accounts=False)
    assert tacit_applies(request()) and tacit_applies(request(kind=RequestKind.RENEWAL), internal_accounts=False)


def test_a_request_that_never_reached_a_decider_or_waits_for_one_is_never_accepted_tacitly():
    late = T0 + timedelta(days=100)
    assert tacit_acceptance(request(routed=False), now=late) is None
    assert tacit_acceptance(request(status=Status.AWAITING_DECIDER), now=late) is None


def test_an_escalated_request_can_still_be_decided_after_its_deadline_and_a_waiting_one_cannot():
    late = T0 + timedelta(days=30)
    t = decide(account(False), Decision(1, Verdict.ACCEPT, "admin"), now=late, authorised=True)
    assert t.to_status is Status.ACCEPTED
    with pytest.raises(DecisionRefused) as refused:
        decide(replace(request(), status=Status.AWAITING_DECIDER), Decision(1, Verdict.ACCEPT, "admin"),
               now=T0, authorised=True)
    assert refused.value.code == "not_routed"
    with pytest.raises(DecisionRefused) as refused:
        decide(request(), Decision(1, Verdict.ACCEPT, "c1"), now=late, authorised=True)
    assert refused.value.code == "deadline_passed", "a habilitation's tacit acceptance stands"
