"""The state machine guards the store's status writes: a move ``lifecycle.ALLOWED`` does not
make changes nothing and raises."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
from sqlalchemy import select

from syncd.core import lifecycle
from syncd.core.model import Status
from syncd.errors import StoreRejected
from syncd.store import decision, repo, tacit as tacit_store
from syncd.store.db import transaction
from syncd.store.tables import request_events, requests

from .rows import T0, insert_requests


def _status(engine, request_id: int) -> tuple[str, object]:
    with transaction(engine, readonly=True) as conn:
        row = conn.execute(select(requests.c.status, requests.c.comment).where(requests.c.id == request_id)).one()
    return row.status, row.comment


def test_a_status_write_the_state_machine_allows_is_made(engine):
    with transaction(engine) as conn:
        [request_id] = insert_requests(conn, 1, status=Status.PENDING.value)
        repo.update_request(conn, request_id, T0, status=Status.AWAITING_DECIDER.value, comment="nobody left")
    assert _status(engine, request_id) == ("awaiting_decider", "nobody left")


def test_writing_the_status_a_request_has_already_is_no_move_and_is_made(engine):
    with transaction(engine) as conn:
        [request_id] = insert_requests(conn, 1, status=Status.AWAITING_DECIDER.value)
        repo.update_request(conn, request_id, T0, status=Status.AWAITING_DECIDER.value, comment="still nobody")
    assert _status(engine, request_id) == ("awaiting_decider", "still nobody")


@pytest.mark.parametrize("from_status, to_status", [
    (Status.ACCEPTED, Status.REFUSED), (Status.REFUSED, Status.PENDING), (Status.NEW, Status.ACCEPTED),
    (Status.REJECTED, Status.NEW), (Status.ACCEPTED_TACITLY, Status.PENDING)])
def test_a_status_write_the_state_machine_does_not_allow_changes_nothing_and_raises(engine, from_status, to_status):
    assert to_status not in lifecycle.ALLOWED[from_status]
    with transaction(engine) as conn:
        [request_id] = insert_requests(conn, 1, status=from_status.value)
    with pytest.raises(StoreRejected, match="no move to"), transaction(engine) as conn:
        repo.update_request(conn, request_id, T0, status=to_status.value, comment="sneaked in")
    with transaction(engine) as conn:    # and on its own, in a transaction that goes on
        with pytest.raises(StoreRejected):
            repo.update_request(conn, request_id, T0, status=to_status.value, comment="sneaked in")
        assert conn.execute(select(requests.c.comment).where(requests.c.id == request_id)).scalar() is None
    assert _status(engine, request_id) == (from_status.value, None)


def test_only_a_parked_accepted_request_may_be_refused_by_an_operator(engine):
    with transaction(engine) as conn:
        parked, unparked = insert_requests(conn, 2, status=Status.ACCEPTED.value)
        repo.update_request(conn, parked, T0, parked_at=T0, parked_reason="refused by the directory")
    with transaction(engine) as conn:
        repo.update_request(conn, parked, T0, parked=True, status=Status.REFUSED.value, comment="fixed by hand")
    with pytest.raises(StoreRejected), transaction(engine) as conn:
        repo.update_request(conn, unparked, T0, parked=True, status=Status.REFUSED.value, comment="fixed by hand")
    assert _status(engine, parked) == ("refused", "fixed by hand")
    assert _status(engine, unparked) == ("accepted", None)


def _events(engine, request_id: int) -> list[str]:
    with transaction(engine, readonly=True) as conn:
        return list(conn.execute(select(request_events.c.event).where(request_events.c.request_id == request_id))
                    .scalars())


@pytest.mark.parametrize("in_pipeline", [False, True], ids=["alone", "pipelined"])
def test_a_decision_the_state_machine_allows_is_written_on_the_lean_path(engine, in_pipeline):
    with transaction(engine) as conn:
        [request_id] = insert_requests(conn, 1, status=Status.PENDING.value)
        with decision.pipelined(conn) if in_pipeline else nullcontext():
            decision.record_decision(conn, request_id, Status.REFUSED.value, T0, "decider", "no")
    assert _status(engine, request_id) == ("refused", "no")


@pytest.mark.parametrize("in_pipeline", [False, True], ids=["alone", "pipelined"])
@pytest.mark.parametrize("from_status, to_status", [
    (Status.ACCEPTED, Status.REFUSED), (Status.ACCEPTED, Status.ACCEPTED), (Status.NEW, Status.ACCEPTED),
    (Status.ACCEPTED_TACITLY, Status.REFUSED)])
def test_a_decision_the_state_machine_does_not_allow_changes_nothing_and_raises(engine, from_status, to_status,
                                                                                in_pipeline):
    with transaction(engine) as conn:
        [request_id] = insert_requests(conn, 1, status=from_status.value)
    with pytest.raises(StoreRejected, match="no move to"), transaction(engine) as conn:
        with decision.pipelined(conn) if in_pipeline else nullcontext():
            decision.record_decision(conn, request_id, to_status.value, T0, "decider", "sneaked in")
            decision.add_event(conn, request_id, "decided", T0, "decider", None)
    assert _status(engine, request_id) == (from_status.value, None)
    assert _events(engine, request_id) == []


def test_the_tacit_sweep_moves_only_what_the_state_machine_moves_and_reports_the_rest(engine):
    with transaction(engine) as conn:
        pending = insert_requests(conn, 2, status=Status.PENDING.value)
        [refused] = insert_requests(conn, 1, status=Status.REFUSED.value)
        [tacit] = insert_requests(conn, 1, status=Status.ACCEPTED_TACITLY.value)
        [new] = insert_requests(conn, 1, status=Status.NEW.value)
        moved = tacit_store.accept(conn, [*pending, refused, tacit, new], to_status=Status.ACCEPTED_TACITLY.value,
                                   at=T0, decided_by="tacit", comment=None, event="tacitly_accepted",
                                   detail={"status": "accepted_tacitly"})
    assert moved == set(pending)
    assert [_status(engine, i)[0] for i in (*pending, refused, tacit, new)] == [
        "accepted_tacitly", "accepted_tacitly", "refused", "accepted_tacitly", "new"]
    assert [_events(engine, i) for i in (*pending, refused, tacit, new)] == [
        ["tacitly_accepted"], ["tacitly_accepted"], [], [], []]


def test_a_tacit_move_the_state_machine_never_makes_moves_nothing(engine):
    with transaction(engine) as conn:
        ids = insert_requests(conn, 2, status=Status.PENDING.value)
        moved = tacit_store.accept(conn, ids, to_status=Status.NEW.value, at=T0, decided_by="tacit", comment=None,
                                   event="tacitly_accepted", detail={})
    assert moved == set()
    assert [_status(engine, i)[0] for i in ids] == ["pending", "pending"]
