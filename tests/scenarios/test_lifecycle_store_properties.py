"""The state machine's guarantees hold in the store, not only in the pure core.

Hypothesis drives decisions (by every kind of account, either verdict, with or without a comment)
and tacit sweeps, with the clock moving on, over a real database, and after every step checks
what the store holds: no request decided twice, a decided request never changes again, a
membership exactly for the accepted habilitations, history and audit in step with the status.

SQLite only: each example starts from a copy of one upgraded database file, which keeps an example
to milliseconds; the PostgreSQL paths of the same functions are covered by the scenario tests.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import func, select

from syncd.core.model import Verdict
from syncd.errors import DecisionRefused
from syncd.jobs import tacit
from syncd.jobs.decisions import decide_request
from syncd.runtime import Runtime
from syncd.settings import Settings
from syncd.store import audit
from syncd.store.db import make_engine, transaction
from syncd.store.migrate import upgrade
from syncd.store.tables import audit_log, memberships, request_events, requests
from tests.factories import T0, mappings
from tests.scenarios.test_decision_writes import PEOPLE, given_people, pending

DECISION_EVENTS = ("decided", "tacitly_accepted")
GRANTED = ("accepted", "accepted_tacitly")
ROLES = ("accords-locaux-acces", "opim-local")        # managed locally, and centrally
REQUESTERS = ("u-req", "u-cor", "u-none")


@pytest.fixture(scope="module")
def template_database():
    folder = Path(tempfile.mkdtemp(prefix="syncd-properties-"))
    upgrade(f"sqlite:///{folder / 'template.db'}")
    yield folder / "template.db"
    shutil.rmtree(folder, ignore_errors=True)


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


class RequestsInTheStore(RuleBasedStateMachine):
    template: Path

    @initialize(asked=st.lists(st.tuples(st.sampled_from(REQUESTERS), st.sampled_from(ROLES)),
                               min_size=1, max_size=4, unique=True))
    def some_pending_requests(self, asked):
        self.folder = Path(tempfile.mkdtemp(prefix="syncd-example-"))
        shutil.copy(self.template, self.folder / "syncd.db")
        url = f"sqlite:///{self.folder / 'syncd.db'}"
        self.clock = Clock()
        self.rt = Runtime(Settings(database={"url": url}), mappings(), make_engine(url), clock=self.clock,
                          worker_id="properties")
        given_people(self.rt)
        self.ids = [pending(self.rt, account_id=who, role=role) for who, role in asked]
        self.asked = dict(zip(self.ids, asked, strict=False))
        self.settled: dict[int, tuple] = {}    # request -> (status, decided_by, decided_at) once decided

    def teardown(self):
        if hasattr(self, "rt"):
            self.rt.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- what happens ------------------------------------------------------------------------
    @rule(pick=st.integers(0, 3), decider=st.sampled_from(sorted(PEOPLE)), accept=st.booleans(),
          comment=st.sampled_from([None, "", "Poste sans lien avec l'application"]))
    def someone_decides(self, pick, decider, accept, comment):
        request_id = self.ids[pick % len(self.ids)]
        try:
            decide_request(self.rt, request_id, decider, Verdict.ACCEPT if accept else Verdict.REFUSE, comment,
                           channel="property")
        except DecisionRefused as refused:
            assert refused.code in {"not_authorised", "own_request", "already_decided", "already_tacitly_accepted",
                                    "comment_required", "deadline_passed"}, refused.code

    @rule(hours=st.integers(1, 24 * 6))
    def time_passes_and_the_sweep_runs(self, hours):
        self.clock.now += timedelta(hours=hours)
        tacit.sweep(self.rt)

    # -- what must always hold ----------------------------------------------------------------
    @invariant()
    def each_request_is_decided_at_most_once_and_never_changes_afterwards(self):
        if not hasattr(self, "rt"):
            return
        with transaction(self.rt.engine, readonly=True) as conn:
            rows = {r.id: r for r in conn.execute(select(requests).where(requests.c.id.in_(self.ids)))}
            decided_events = dict(conn.execute(
                select(request_events.c.request_id, func.count()).where(
                    request_events.c.request_id.in_(self.ids), request_events.c.event.in_(DECISION_EVENTS))
                .group_by(request_events.c.request_id)).all())
            audited = dict(conn.execute(
                select(audit_log.c.request_id, func.count()).where(
                    audit_log.c.request_id.in_(self.ids), audit_log.c.action.in_(DECISION_EVENTS))
                .group_by(audit_log.c.request_id)).all())
            granted = {(m.account_id, m.role_key): m for m in conn.execute(select(memberships))}
        for request_id, row in rows.items():
            count = decided_events.get(request_id, 0)
            assert count <= 1, f"request {request_id} decided {count} times"
            assert audited.get(request_id, 0) == count, "the audit trail has each decision, once"
            if row.status == "pending":
                assert count == 0 and row.decided_by is None
                continue
            assert row.status in ("accepted", "refused", "accepted_tacitly") and count == 1
            if row.status == "refused":
                assert row.comment, "a refusal always carries its comment"
            if row.status == "accepted_tacitly":
                assert row.decided_by == "tacit" and self.clock.now >= row.deadline_at.replace(tzinfo=T0.tzinfo)
            else:
                assert row.decided_by != row.account_id, "nobody decides their own request"
            state = (row.status, row.decided_by, row.decided_at)
            assert self.settled.setdefault(request_id, state) == state, "a decided request changed"
        for request_id, (who, role) in self.asked.items():
            held = granted.get((who, role))
            assert (held is not None) == (rows[request_id].status in GRANTED), \
                f"membership of {who} in {role} does not match request {request_id}'s status"

    @invariant()
    def the_audit_trail_seals_and_verifies(self):
        if not hasattr(self, "rt"):
            return
        with transaction(self.rt.engine) as conn:
            audit.seal(conn)
            assert audit.verify(conn) is None


@pytest.mark.timeout(300)
def test_no_interleaving_of_decisions_and_sweeps_breaks_the_guarantees_in_the_store(template_database):
    RequestsInTheStore.template = template_database
    RequestsInTheStore.TestCase.settings = settings(
        max_examples=60, stateful_step_count=12, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    RequestsInTheStore.TestCase().runTest()
