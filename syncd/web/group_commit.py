"""SQLite's group commit for the decision API: one thread writes the decisions the event loop
hands it, those that wait together in one transaction.

SQLite has one writer at a time. Each decision used to take a thread of the pool, queue there
for the process's write lock, and pay its own ``BEGIN IMMEDIATE``, its own ``COMMIT`` (an fsync
of the write-ahead log) and two hops between the event loop and a thread. Here the decisions
that arrive while one transaction is written go together into the next, up to ``MAX_BATCH``:
one commit for them all; a decision alone is written at once, as before. No call is answered
before its transaction has committed.

A call whose writes raise (a replayed nonce, a value the database refuses, the database gone)
would take the others of its transaction down with it: the whole transaction is rolled back
and each of its calls written again in a transaction of its own, so that each gets the answer
it would have had alone. Should the thread itself die, every call it holds or has queued is
answered ``StoreUnavailable`` (503) and the next call starts another. PostgreSQL takes concurrent
writers and does not use this.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, NamedTuple

import structlog

from syncd.errors import StoreUnavailable
from syncd.store.db import Connection, Engine, transaction

log = structlog.get_logger(__name__)

MAX_BATCH = 64   # about 30 ms of writes: what the daemon's jobs wait for the write lock at most


class _Call(NamedTuple):
    write: Callable[[Connection], Any]   # in the shared transaction
    settle: Callable[[Any], Any]         # once committed, in the writer's thread: the answer (or raises)
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


class GroupCommit:
    """One writer thread, started on first use, with its queue; ``close`` writes what is queued,
    then stops it."""

    def __init__(self, engine: Engine, write_lock: Callable[[], AbstractContextManager]):
        self._engine, self._write_lock = engine, write_lock
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def run(self, write: Callable[[Connection], Any], settle: Callable[[Any], Any]) -> Any:
        """``settle(write(conn))``, ``write`` in a write transaction this thread shares with the
        calls queued beside it; ``settle`` once that transaction has committed."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:    # a thread and its queue go together: ``close`` stops exactly these
            if self._thread is None:
                self._queue = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._serve, args=(self._queue,), name="decision-writer",
                                                daemon=True)
                self._thread.start()
            self._queue.put(_Call(write, settle, loop, future))
        return await future

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread; a later ``run`` starts another."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)     # after every call queued so far
        if thread is not None:
            thread.join(timeout)

    def _serve(self, calls_queue: queue.SimpleQueue[_Call | None]) -> None:
        stopping = False
        calls: list[_Call] = []
        try:
            while not stopping:
                first = calls_queue.get()
                if first is None:
                    return
                calls = [first]
                while len(calls) < MAX_BATCH:
                    try:
                        call = calls_queue.get_nowait()
                    except queue.Empty:
                        break
                    if call is None:
                        stopping = True
                        break
                    calls.append(call)
                self._write(calls)
                calls = []      # all answered
        except BaseException as exc:
            self._abandon(calls_queue, calls, exc)
            raise

    def _abandon(self, calls_queue: queue.SimpleQueue[_Call | None], calls: list[_Call], exc: BaseException) -> None:
        """The thread dies of something no call raised alone (an interpreter exit, a bug of ours):
        every call it holds or that waits in its queue is answered with an error, not left waiting,
        and the next ``run`` starts a new thread."""
        failure = StoreUnavailable(f"the decision writer stopped ({type(exc).__name__}): the decision may not be "
                                   "recorded, try again")     # 503, Retry-After: the next call starts a new writer
        with self._lock:
            if self._thread is threading.current_thread():
                self._thread = None
            while True:     # under the lock: no ``run`` queues here any more
                try:
                    call = calls_queue.get_nowait()
                except queue.Empty:
                    break
                if call is not None:
                    calls.append(call)
        log.error("decision_writer_stopped", error=type(exc).__name__, calls=len(calls))
        for call in calls:   # one already answered keeps its answer (``_resolve``)
            _send(call, None, failure)

    def _write(self, calls: list[_Call]) -> None:
        if len(calls) > 1:
            try:
                with self._write_lock(), transaction(self._engine) as conn:
                    written = [call.write(conn) for call in calls]
            except Exception as exc:  # noqa: BLE001 - each call is written again alone, below
                log.info("decision_batch_split", calls=len(calls), error=type(exc).__name__)
            else:
                for call, outcome in zip(calls, written, strict=True):
                    self._answer(call, outcome)
                return
        for call in calls:
            try:
                with self._write_lock(), transaction(self._engine) as conn:
                    outcome = call.write(conn)
            except Exception as exc:  # noqa: BLE001 - the call's own answer
                _send(call, None, exc)
            else:
                self._answer(call, outcome)

    @staticmethod
    def _answer(call: _Call, outcome: Any) -> None:
        try:
            result = call.settle(outcome)
        except Exception as exc:  # noqa: BLE001 - e.g. the refusal, raised for the caller
            _send(call, None, exc)
        else:
            _send(call, result, None)


def _send(call: _Call, result: Any, error: BaseException | None) -> None:
    try:
        call.loop.call_soon_threadsafe(_resolve, call.future, result, error)
    except RuntimeError:   # the loop is closed: nobody waits for this answer any more
        pass


def _resolve(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():      # the caller was cancelled; its decision stands all the same
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
