"""The tacit rule over a sweep's batch (``lifecycle.tacit_acceptances``) says, for every request,
what the rule for one request (``tacit_acceptance``) says."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from syncd.core.lifecycle import Move, TacitCandidate, tacit_acceptance, tacit_acceptances
from syncd.core.model import RequestKind, Status
from tests.factories import T0, request

CANDIDATES = st.lists(st.tuples(
    # Mostly pending accounts and habilitations: the sorts of request the rule tells apart.
    st.sampled_from([RequestKind.ACCOUNT, RequestKind.HABILITATION, *RequestKind]),
    st.sampled_from([Status.PENDING] * 3 + list(Status)), st.sampled_from([True, False, None]),
    st.booleans(),                                                        # reached a decider
    st.one_of(st.none(), st.integers(-3, 3).map(lambda h: T0 + timedelta(hours=h))),   # deadline
), max_size=40)


@settings(max_examples=300, deadline=None)
@given(candidates=CANDIDATES, internal_accounts=st.booleans())
@example(candidates=[(RequestKind.ACCOUNT, Status.PENDING, internal, routed, T0)
                     for routed in (True, False) for internal in (True, False, None)], internal_accounts=True)
def test_the_batch_rule_says_for_each_request_what_the_rule_for_one_says(candidates, internal_accounts):
    batch = [TacitCandidate(i, kind.value, status.value, internal, T0 - timedelta(days=10) if routed else None,
                            deadline_at, "u-ann", "accords-locaux-acces")
             for i, (kind, status, internal, routed, deadline_at) in enumerate(candidates)]
    expected: dict[Move, list[int]] = {}
    for c in batch:
        view = request(c.id, kind=RequestKind(c.kind), status=Status(c.status), internal=c.internal,
                       routed=c.first_routed_at is not None, submitted_at=T0 - timedelta(days=10))
        t = tacit_acceptance(replace(view, deadline_at=c.deadline_at), now=T0, internal_accounts=internal_accounts)
        if t is not None:
            move = Move(t.from_status, t.to_status, t.event, t.at, t.decided_by, t.comment)
            assert move.of(c.id) == t
            expected.setdefault(move, []).append(c.id)

    got = tacit_acceptances(batch, now=T0, internal_accounts=internal_accounts)
    assert {move: [c.id for c in group] for move, group in got.items()} == expected


def test_due_pending_habilitations_of_one_batch_make_one_move_in_the_batch_order():
    batch = [TacitCandidate(i, "habilitation", "pending", None, T0 - timedelta(days=10), T0 - timedelta(minutes=i),
                            f"u-{i}", "accords-locaux-acces") for i in (3, 1, 2)]
    got = tacit_acceptances(batch, now=T0)
    assert list(got) == [Move(Status.PENDING, Status.ACCEPTED_TACITLY, "tacitly_accepted", T0, "tacit")]
    assert [c.id for c in got[next(iter(got))]] == [3, 1, 2]
