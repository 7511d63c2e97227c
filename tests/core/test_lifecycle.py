from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.lifecycle import ALLOWED, decide, tacit_acceptance
from syncd.core.model import Decision, Status, Verdict
from syncd.errors import DecisionRefused
from tests.factories import T0, request


def accept(by="c1"):
    return Decision(1, Verdict.ACCEPT, by)


def refuse(by="c1", comment="Pas de besoin identifié"):
    return Decision(1, Verdict.REFUSE, by, comment)


def test_an_authorised_correspondent_accepts_a_pending_request():
    t = decide(request(), accept(), now=T0 + timedelta(days=1), authorised=True)
    assert t.to_status is Status.ACCEPTED and t.decided_by == "c1"


@pytest.mark.parametrize("comment", [None, "", "   \n"])
def test_a_refusal_without_a_comment_is_refused(comment):
    with pytest.raises(DecisionRefused) as e:
        decide(request(), refuse(comment=comment), now=T0, authorised=True)
    assert e.value.code == "comment_required"


def test_a_refusal_with_a_comment_refuses_the_request_and_keeps_the_comment_trimmed():
    t = decide(request(), refuse(comment="  Hors périmètre  "), now=T0, authorised=True)
    assert t.to_status is Status.REFUSED and t.comment == "Hors périmètre"


def test_nobody_decides_their_own_request_even_when_otherwise_authorised():
    with pytest.raises(DecisionRefused) as e:
        decide(request(requester="c1"), accept("c1"), now=T0, authorised=True)
    assert e.value.code == "own_request"


def test_an_unauthorised_decider_is_refused():
    with pytest.raises(DecisionRefused) as e:
        decide(request(), accept(), now=T0, authorised=False)
    assert e.value.code == "not_authorised"


@pytest.mark.parametrize("status,code", [
    (Status.ACCEPTED, "already_decided"),
    (Status.REFUSED, "already_decided"),
    (Status.ACCEPTED_TACITLY, "already_tacitly_accepted"),
    (Status.REJECTED, "rejected"),
    (Status.NEW, "not_routed"),
])
def test_a_request_that_cannot_be_decided_any_more_says_why(status, code):
    with pytest.raises(DecisionRefused) as e:
        decide(request(status=status), refuse(), now=T0, authorised=True)
    assert e.value.code == code


def test_a_late_refusal_after_the_deadline_is_refused_so_tacit_acceptance_stands():
    with pytest.raises(DecisionRefused) as e:
        decide(request(), refuse(), now=T0 + timedelta(days=10), authorised=True)
    assert e.value.code == "deadline_passed"


def test_tacit_acceptance_happens_at_the_deadline_and_not_before():
    r = request()
    assert tacit_acceptance(r, now=T0 + timedelta(days=10) - timedelta(seconds=1)) is None
    t = tacit_acceptance(r, now=T0 + timedelta(days=10))
    assert t is not None and t.to_status is Status.ACCEPTED_TACITLY and t.decided_by == "tacit"


# --- property: no sequence of events breaks the machine -------------------------------------

events = st.lists(
    st.one_of(
        st.tuples(st.just("decide"), st.sampled_from(list(Verdict)), st.sampled_from(["c1", "c2", "u-req", "x"]),
                  st.sampled_from([None, "", "motif"]), st.integers(0, 15 * 24)),
        st.tuples(st.just("tacit"), st.integers(0, 15 * 24)),
        st.tuples(st.just("apply"), st.integers(0, 15 * 24)),
    ),
    max_size=30,
)


@settings(max_examples=400, deadline=None)
@given(events)
def test_no_sequence_of_events_decides_twice_applies_unaccepted_or_leaves_a_terminal_state(seq):
    from dataclasses import replace
    r = request()
    decisions = 0
    history = [r.status]
    for ev in seq:
        hours = ev[-1]
        now = T0 + timedelta(hours=hours)
        if ev[0] == "decide":
            _, verdict, by, comment, _ = ev
            try:
                t = decide(r, Decision(1, verdict, by, comment), now=now, authorised=by in ("c1", "c2"))
            except DecisionRefused:
                continue
            assert t.to_status in ALLOWED[r.status]
            decisions += 1
            r = replace(r, status=t.to_status, decided_by=t.decided_by)
        elif ev[0] == "tacit":
            t = tacit_acceptance(r, now=now)
            if t:
                assert t.to_status in ALLOWED[r.status]
                decisions += 1
                r = replace(r, status=t.to_status, decided_by=t.decided_by)
        else:
            if r.status.is_accepted and r.applied_at is None:      # what the apply job takes
                r = replace(r, applied_at=now)
        history.append(r.status)
        assert decisions <= 1, "decided twice"
        if r.applied_at is not None:
            assert r.status.is_accepted, "applied without acceptance"
    # once terminal, the status never changes again
    first_terminal = next((i for i, s in enumerate(history) if s.is_terminal), None)
    if first_terminal is not None:
        assert len(set(history[first_terminal:])) == 1


def test_a_validity_counts_calendar_months_from_now():
    from datetime import datetime, timezone

    from syncd.core.lifecycle import validity_end
    jan31 = datetime(2027, 1, 31, 9, tzinfo=timezone.utc)
    assert validity_end("habilitation", jan31, 1, None, False) == datetime(2027, 2, 28, 9, tzinfo=timezone.utc)
    assert validity_end("habilitation", T0, 12, None, False) == T0.replace(year=T0.year + 1)
    assert validity_end("habilitation", T0, None, None, False) is None, "a role without validity never ends"


def test_a_renewal_extends_from_the_current_end_but_never_cuts_it_and_a_revoked_one_starts_again():
    from syncd.core.lifecycle import validity_end
    later = T0 + timedelta(days=20)
    assert validity_end("renewal", T0, 12, later, False) == later.replace(year=later.year + 1)
    assert validity_end("renewal", T0, 12, T0 - timedelta(days=5), False) == T0.replace(year=T0.year + 1)
    assert validity_end("renewal", T0, 12, later, True) == T0.replace(year=T0.year + 1)
    assert validity_end("habilitation", T0, 12, later, False) == T0.replace(year=T0.year + 1), \
        "a new grant (not a renewal) starts now"
