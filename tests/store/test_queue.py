"""Claiming work: workers never hold the same row at once, and lost leases come back."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from syncd.core.model import Status
from syncd.store.db import make_engine, transaction
from syncd.errors import StoreUnavailable
from syncd.store.queue import _lease_end, _update_own_claims, claim_outbox, claim_requests, hold_request_rows, release
from syncd.store.tables import outbox, requests

from tests.store.rows import T0, end_held_claims, insert_outbox, insert_requests

LEASE = 300


def _claim(engine, worker="w1", now=T0, statuses=("new",), limit=100, **kw):
    return claim_requests(engine, statuses=statuses, worker_id=worker, now=now,
                          lease_seconds=LEASE, limit=limit, **kw)


def extend_lease(engine, ids, worker_id, *, now, lease_seconds):
    """Push the lease of those of ``ids`` still claimed by ``worker_id``; the ids still held."""
    return _update_own_claims(engine, requests, ids, worker_id, claimed_until=_lease_end(now, lease_seconds))


def _claims(engine, table=requests):
    with transaction(engine, readonly=True) as conn:
        return {r.id: (r.claimed_by, r.claimed_until)
                for r in conn.execute(select(table.c.id, table.c.claimed_by, table.c.claimed_until))}


def test_claiming_takes_the_oldest_due_requests_and_records_the_lease(engine):
    with transaction(engine) as conn:
        ids = insert_requests(conn, 5)
    assert _claim(engine, limit=3) == ids[:3]
    claims = _claims(engine)
    assert all(claims[i] == ("w1", T0 + timedelta(seconds=LEASE)) for i in ids[:3])
    assert all(claims[i] == (None, None) for i in ids[3:])


def test_claiming_only_takes_the_statuses_asked_for(engine):
    with transaction(engine) as conn:
        new = insert_requests(conn, 2)
        pending = insert_requests(conn, 2, status="pending")
    assert _claim(engine, statuses=[Status.PENDING]) == pending
    assert _claim(engine, worker="w2", statuses=[Status.NEW, Status.PENDING]) == new


def test_an_unknown_status_is_a_programming_error(engine):
    with pytest.raises(ValueError):
        _claim(engine, statuses=["NEW"])


def test_a_claimed_request_is_not_claimed_again_while_its_lease_holds(engine):
    with transaction(engine) as conn:
        ids = insert_requests(conn, 3)
    assert _claim(engine, worker="w1") == ids
    almost_expired = T0 + timedelta(seconds=LEASE - 1)
    assert _claim(engine, worker="w2", now=almost_expired) == []


def test_a_claim_whose_lease_ran_out_comes_back_to_another_worker(engine):
    with transaction(engine) as conn:
        ids = insert_requests(conn, 3)
    assert _claim(engine, worker="w1") == ids
    later = T0 + timedelta(seconds=LEASE)
    assert _claim(engine, worker="w2", now=later) == ids
    assert {c[0] for c in _claims(engine).values()} == {"w2"}


def test_a_request_whose_next_attempt_is_in_the_future_is_not_claimed(engine):
    with transaction(engine) as conn:
        (due,) = insert_requests(conn, 1, next_attempt_at=T0)
        (later,) = insert_requests(conn, 1, next_attempt_at=T0 + timedelta(minutes=1))
        (never_tried,) = insert_requests(conn, 1)
    assert _claim(engine) == [due, never_tried]
    assert _claim(engine, worker="w2", now=T0 + timedelta(seconds=59)) == []
    assert _claim(engine, worker="w2", now=T0 + timedelta(minutes=1)) == [later]


def test_without_due_only_the_retry_time_is_ignored(engine):
    with transaction(engine) as conn:
        (later,) = insert_requests(conn, 1, next_attempt_at=T0 + timedelta(minutes=5))
    assert _claim(engine, due_only=False) == [later]


def test_unapplied_only_leaves_out_requests_already_written_to_the_directory(engine):
    with transaction(engine) as conn:
        (applied,) = insert_requests(conn, 1, status="accepted", applied_at=T0)
        (unapplied,) = insert_requests(conn, 1, status="accepted")
    assert _claim(engine, statuses=["accepted"], unapplied_only=True) == [unapplied]
    assert _claim(engine, worker="w2", statuses=["accepted"]) == [applied]


def test_release_clears_only_the_claims_still_ours(engine):
    with transaction(engine) as conn:
        ids = insert_requests(conn, 4)
    assert _claim(engine, worker="w1", limit=2) == ids[:2]
    assert _claim(engine, worker="w2", limit=2) == ids[2:]
    assert release(engine, ids, "w1") == ids[:2]
    claims = _claims(engine)
    assert [claims[i][0] for i in ids] == [None, None, "w2", "w2"]
    assert _claim(engine, worker="w3") == ids[:2]


def test_extending_a_lease_keeps_it_and_tells_which_were_lost(engine):
    with transaction(engine) as conn:
        ids = insert_requests(conn, 2)
    assert _claim(engine, worker="w1") == ids
    expired = T0 + timedelta(seconds=LEASE)
    assert _claim(engine, worker="w2", now=expired, limit=1) == ids[:1]  # w2 takes over the first
    assert extend_lease(engine, ids, "w1", now=expired, lease_seconds=LEASE) == ids[1:]
    assert _claims(engine)[ids[1]] == ("w1", expired + timedelta(seconds=LEASE))
    assert _claim(engine, worker="w3", now=expired + timedelta(seconds=1)) == []


def test_a_claim_inside_the_callers_transaction_is_committed_by_the_caller(engine):
    with transaction(engine) as conn:
        ids = insert_requests(conn, 2)
    with engine.connect() as conn:
        with conn.begin() as tx:
            assert _claim(conn) == ids
            tx.rollback()
    assert _claim(engine, worker="w2") == ids


def test_a_naive_clock_is_a_programming_error(engine):
    with pytest.raises(ValueError):
        _claim(engine, now=T0.replace(tzinfo=None))


def test_the_outbox_is_claimed_with_the_same_rules(engine):
    with transaction(engine) as conn:
        ids = insert_outbox(conn, 4)
        conn.execute(update(outbox).where(outbox.c.id == ids[1]).values(status="sent"))
        conn.execute(update(outbox).where(outbox.c.id == ids[2]).values(next_attempt_at=T0 + timedelta(hours=1)))
    got = claim_outbox(engine, worker_id="mailer", now=T0, lease_seconds=LEASE, limit=10)
    assert got == [ids[0], ids[3]]
    assert claim_outbox(engine, worker_id="mailer-2", now=T0, lease_seconds=LEASE, limit=10) == []
    expired = T0 + timedelta(seconds=LEASE)
    assert claim_outbox(engine, worker_id="mailer-2", now=expired, lease_seconds=LEASE, limit=10) == got
    assert release(engine, got, "mailer-2", table=outbox) == got
    assert _claims(engine, outbox)[ids[0]] == (None, None)


@pytest.mark.parametrize("separate_engines", [False, True], ids=["shared-engine", "one-engine-each"])
def test_two_racing_workers_never_claim_the_same_request_nor_more_than_asked_and_together_claim_all(
        db_url, separate_engines):
    setup = make_engine(db_url)
    with transaction(setup) as conn:
        ids = insert_requests(conn, 500)
    engines = [make_engine(db_url), make_engine(db_url)] if separate_engines else [setup, setup]
    claimed: dict[str, list[int]] = {"w1": [], "w2": []}
    sizes: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(worker: str, engine) -> None:
        try:
            barrier.wait()
            while True:
                got = claim_requests(engine, statuses=["new"], worker_id=worker, now=T0,
                                     lease_seconds=LEASE, limit=7)
                if not got:
                    return
                claimed[worker].extend(got)
                sizes.append(len(got))
                time.sleep(0.001)  # "work" on them, letting the other worker in
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w, e)) for w, e in zip(claimed, engines, strict=False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for e in {id(e): e for e in [setup, *engines]}.values():
        e.dispose()

    assert errors == []
    assert max(sizes) == 7
    assert not set(claimed["w1"]) & set(claimed["w2"])
    assert sorted(claimed["w1"] + claimed["w2"]) == ids
    assert len(claimed["w1"]) + len(claimed["w2"]) == 500
    assert claimed["w1"] and claimed["w2"], "both workers should have had a share"
    check = make_engine(db_url)
    try:
        assert {c[0] for c in _claims(check).values()} == {"w1", "w2"}
    finally:
        check.dispose()


@pytest.mark.postgres
def test_on_postgresql_a_worker_skips_rows_another_is_claiming_instead_of_waiting(postgres_url):
    first, second = make_engine(postgres_url), make_engine(postgres_url)
    try:
        with transaction(first) as conn:
            ids = insert_requests(conn, 6)
        with first.connect() as slow, slow.begin():
            assert _claim(slow, worker="slow", limit=3) == ids[:3]  # rows locked, not committed yet
            with second.connect() as fast:
                fast.exec_driver_sql("SET lock_timeout = '1s'")  # waiting would fail the test
                assert _claim(fast, worker="fast") == ids[3:]
    finally:
        first.dispose()
        second.dispose()


def _hold(engine, worker="w1", limit=100, **kw):
    return hold_request_rows(engine, statuses=["new"], worker_id=worker, now=T0, lease_seconds=LEASE, limit=limit, **kw)


def test_a_held_claim_takes_the_same_rows_as_a_claim_and_its_lease_records_them(engine):
    with transaction(engine) as conn:
        ids = insert_requests(conn, 5)
    held = _hold(engine, limit=3, columns=[requests.c.status])
    assert [tuple(row) for row in held.rows] == [(i, "new") for i in ids[:3]]
    held.lease()
    held.lease()        # once only: nothing left to do
    assert held.leased
    claims = _claims(engine)
    assert all(claims[i] == ("w1", T0 + timedelta(seconds=LEASE)) for i in ids[:3])
    assert all(claims[i] == (None, None) for i in ids[3:])
    assert _claim(engine, worker="w2") == ids[3:]


def test_a_held_claim_on_sqlite_is_leased_already(sqlite_engine):
    with transaction(sqlite_engine) as conn:
        ids = insert_requests(conn, 2)
    held = _hold(sqlite_engine)
    assert held.leased and [row[0] for row in held.rows] == ids
    assert _claim(sqlite_engine, worker="w2") == []


def test_a_held_claim_of_nothing_holds_nothing(engine):
    held = _hold(engine)
    assert held.rows == [] and held.leased


@pytest.mark.postgres
def test_on_postgresql_rows_held_before_their_lease_is_written_are_skipped_by_other_claimers(postgres_url):
    engine, other = make_engine(postgres_url), make_engine(postgres_url)
    try:
        with transaction(engine) as conn:
            ids = insert_requests(conn, 6)
        held = _hold(engine, limit=3)
        assert not held.leased
        assert _claims(engine)[ids[0]] == (None, None)      # the lease is not written yet...
        with other.connect() as fast:
            fast.exec_driver_sql("SET lock_timeout = '1s'")    # waiting would fail the test
            assert _claim(fast, worker="w2") == ids[3:]         # ...and still nobody else takes them
            fast.commit()
        held.lease()
        assert {i: c[0] for i, c in _claims(engine).items()} == {**{i: "w1" for i in ids[:3]},
                                                                  **{i: "w2" for i in ids[3:]}}
    finally:
        engine.dispose()
        other.dispose()


@pytest.mark.postgres
def test_on_postgresql_a_held_claim_whose_lease_fails_leaves_its_rows_to_the_next_claimer(postgres_url):
    engine = make_engine(postgres_url)
    try:
        with transaction(engine) as conn:
            ids = insert_requests(conn, 3)
        held = _hold(engine)
        assert end_held_claims(engine) == 1         # the held connection dies before its lease
        with pytest.raises(StoreUnavailable):
            held.lease()
        assert held.leased      # nothing left to try: the rows were never ours
        assert _claim(engine, worker="w2") == ids
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_on_postgresql_rows_held_by_a_worker_that_never_writes_its_lease_come_back_after_the_lease_time(postgres_url):
    engine = make_engine(postgres_url)
    try:
        with transaction(engine) as conn:
            ids = insert_requests(conn, 2)
        held = hold_request_rows(engine, statuses=["new"], worker_id="hung", now=T0, lease_seconds=1, limit=10)
        assert _claim(engine, worker="w2") == []          # held: skipped while its lease could still come
        # The holder hangs: the server ends its session, idle in its transaction, once the lease's
        # length has passed (polled: on a busy machine the server may be a little late).
        deadline, claimed = time.monotonic() + 10, []
        while not claimed and time.monotonic() < deadline:
            time.sleep(0.2)
            claimed = _claim(engine, worker="w2")
        assert claimed == ids
        with pytest.raises(StoreUnavailable):
            held.lease()
    finally:
        engine.dispose()

