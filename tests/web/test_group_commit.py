"""On SQLite the decisions that wait together are written in one transaction, and each still gets
the answer it would have had alone.

The writer's lock is a gate the tests hold shut: the first call is taken and waits at it, the
next ones queue behind, and when the gate opens they go together into the next transaction.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from sqlalchemy import event, text

from syncd.errors import StoreUnavailable
from syncd.store.db import make_engine
from syncd.web.group_commit import GroupCommit
from tests.scenarios.helpers import CORRESPONDENT, events, habilitation, request_row
from tests.web.conftest import SQLITE_ONLY


class Gate:
    """A write lock that stays shut until ``open``; ``waiting`` is set once someone waits at it."""

    def __init__(self):
        self.waiting, self._open = threading.Event(), threading.Event()

    @contextmanager
    def __call__(self):
        self.waiting.set()
        assert self._open.wait(10), "the gate was never opened"
        yield

    def open(self):
        self._open.set()

    @classmethod
    def opened(cls) -> "Gate":
        gate = cls()
        gate.open()
        return gate


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'group.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE written (n INTEGER PRIMARY KEY)"))
    yield engine
    engine.dispose()


class Commits:
    def __init__(self, engine):
        self.count = 0
        event.listen(engine, "commit", self._committed)

    def _committed(self, _conn):
        self.count += 1


def insert(n: int, *, then_fail: bool = False):
    def write(conn):
        conn.execute(text("INSERT INTO written (n) VALUES (:n)"), {"n": n})
        if then_fail:
            raise ValueError(f"call {n} refused after its insert")
        return n
    return write


def stored(engine) -> list[int]:
    with engine.connect() as conn:
        return [n for (n,) in conn.execute(text("SELECT n FROM written ORDER BY n"))]


def run_gated(writer: GroupCommit, gate: Gate, first, rest, settle=lambda n: n * 10):
    """``first`` taken alone and held at the gate, ``rest`` queued behind it; then the gate opens."""
    async def scenario():
        head = asyncio.ensure_future(writer.run(first, settle))
        await asyncio.to_thread(gate.waiting.wait, 10)
        queued = [asyncio.ensure_future(writer.run(write, settle)) for write in rest]
        await asyncio.sleep(0)     # each queued its call
        gate.open()
        return await asyncio.wait_for(asyncio.gather(head, *queued, return_exceptions=True), 10)
    try:
        return asyncio.run(scenario())
    finally:
        writer.close()


def test_calls_that_wait_together_share_one_transaction_and_each_gets_its_own_answer(engine):
    commits, gate = Commits(engine), Gate()
    answers = run_gated(GroupCommit(engine, gate), gate, insert(1), [insert(n) for n in range(2, 7)])
    assert answers == [10, 20, 30, 40, 50, 60]
    assert stored(engine) == [1, 2, 3, 4, 5, 6]
    assert commits.count == 2, "the first alone, the five that waited behind it together"


def test_a_call_that_fails_in_a_shared_transaction_fails_alone_and_the_others_are_written(engine):
    gate = Gate()
    rest = [insert(2), insert(3, then_fail=True), insert(4)]
    answers = run_gated(GroupCommit(engine, gate), gate, insert(1), rest)
    assert answers[:2] == [10, 20] and answers[3] == 40
    assert isinstance(answers[2], ValueError)
    assert stored(engine) == [1, 2, 4], "the failed call's own insert was rolled back, no other"


def test_a_call_is_answered_only_once_its_transaction_has_committed(engine):
    def visible_elsewhere(n):
        with engine.connect() as other:     # another connection sees only what committed
            return other.execute(text("SELECT count(*) FROM written WHERE n = :n"), {"n": n}).scalar()
    gate = Gate()
    answers = run_gated(GroupCommit(engine, gate), gate, insert(1), [insert(2), insert(3)], settle=visible_elsewhere)
    assert answers == [1, 1, 1]


def test_what_settle_raises_is_the_callers_answer_and_the_write_stands(engine):
    def refuse(n):
        raise LookupError(f"refused {n}")
    gate = Gate()
    answers = run_gated(GroupCommit(engine, gate), gate, insert(1), [insert(2)], settle=refuse)
    assert [type(a) for a in answers] == [LookupError, LookupError]
    assert stored(engine) == [1, 2]


def test_closing_writes_the_calls_already_queued_then_stops_the_thread(engine):
    gate = Gate()
    writer = GroupCommit(engine, gate)

    async def scenario():
        calls = [asyncio.ensure_future(writer.run(insert(n), lambda n: n)) for n in (1, 2, 3)]
        await asyncio.to_thread(gate.waiting.wait, 10)
        closing = asyncio.ensure_future(asyncio.to_thread(writer.close))
        await asyncio.sleep(0.05)
        gate.open()
        await closing
        return await asyncio.gather(*calls)
    assert asyncio.run(scenario()) == [1, 2, 3]
    assert stored(engine) == [1, 2, 3]
    assert not any(t.name == "decision-writer" and t.is_alive() for t in threading.enumerate())


def test_a_writer_used_again_after_closing_starts_a_new_thread(engine):
    writer = GroupCommit(engine, Gate.opened())
    assert asyncio.run(writer.run(insert(1), lambda n: n)) == 1
    writer.close()
    assert asyncio.run(writer.run(insert(2), lambda n: n)) == 2, "not left waiting for a stopped thread"
    writer.close()
    assert stored(engine) == [1, 2]


class WriterKilled(BaseException):
    """Not an ``Exception``: what no call's own error handling catches, as an interpreter exit."""


def kill_the_writer(conn):
    raise WriterKilled


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_writer_that_dies_answers_every_call_it_held_or_queued_and_the_next_call_starts_another(engine, monkeypatch):
    monkeypatch.setattr("syncd.web.group_commit.MAX_BATCH", 2)   # so that one call still waits in the queue
    gate = Gate()
    writer = GroupCommit(engine, gate)
    answers = run_gated(writer, gate, insert(1), [kill_the_writer, insert(3), insert(4)])
    assert answers[0] == 10
    assert [type(a) for a in answers[1:]] == [StoreUnavailable] * 3, "none left waiting for a dead thread"
    assert "may not be recorded" in str(answers[3])
    assert stored(engine) == [1], "the dead thread's transaction was rolled back"
    assert asyncio.run(asyncio.wait_for(writer.run(insert(5), lambda n: n), 10)) == 5
    writer.close()
    assert stored(engine) == [1, 5]


# --- through the API --------------------------------------------------------------------------

@SQLITE_ONLY
def test_a_replay_queued_with_other_decisions_is_refused_and_the_others_are_taken(api, client, app, routed, rt,
                                                                               daemon):
    second = habilitation(rt, role="greve-declaration")
    daemon.run_job("intake")
    gate = Gate()
    app.state.syncd.writing = gate            # the group commit is made on the first decision, with this
    path = f"/api/v1/requests/{routed['request']}/decision"
    body = b'{"verdict": "accept", "decider": "%s"}' % CORRESPONDENT.encode()
    headers = api.headers("POST", path, body) | {"Content-Type": "application/json"}
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(client.post, path, content=body, headers=headers)
        assert gate.waiting.wait(10)
        other = pool.submit(api.decide, second, "accept", CORRESPONDENT)
        replay = pool.submit(client.post, path, content=body, headers=headers)
        queue = app.state.syncd._group_commit._queue
        deadline = time.monotonic() + 10
        while queue.qsize() < 2 and time.monotonic() < deadline:   # both queued behind the first
            time.sleep(0.005)
        gate.open()
        answers = first.result(10), other.result(10), replay.result(10)
    assert [a.status_code for a in answers] == [200, 200, 401]
    assert answers[2].json()["error"] == "replayed_nonce"
    assert request_row(rt, second)["status"] == "accepted"
    assert "decision_refused" not in events(rt, routed["request"])


def test_a_shared_transaction_whose_commit_fails_is_written_again_call_by_call(engine):
    failed = []

    def fail_the_first_shared_commit(conn):
        if len(stored_in(conn)) > 1 and not failed:
            failed.append(True)
            raise OSError("disk I/O error")
    event.listen(engine, "commit", fail_the_first_shared_commit)
    gate = Gate()
    answers = run_gated(GroupCommit(engine, gate), gate, insert(1), [insert(2), insert(3)])
    assert failed, "the shared commit was attempted and failed"
    assert answers == [10, 20, 30]
    assert stored(engine) == [1, 2, 3], "each written once, alone"


def stored_in(conn) -> list[int]:
    return [n for (n,) in conn.exec_driver_sql("SELECT n FROM written")]
