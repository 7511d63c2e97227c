"""The daemon's wake-up probe finds the work this daemon could claim, and not what another holds."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert

from syncd.mail.outbox import enqueue
from syncd.store import health
from syncd.store.db import transaction
from syncd.store.queue import claim_outbox, claim_requests
from syncd.store.tables import requests
from tests.factories import T0
from tests.mail.samples import SAMPLE_CONTEXTS


def test_work_another_daemon_holds_under_a_live_lease_wakes_nobody_until_the_lease_runs_out(engine):
    with transaction(engine) as conn:
        conn.execute(insert(requests).values(kind="habilitation", submitted_at=T0, email="a@lassuranceretraite.fr",
                                             role_key="accords-locaux-acces", status="new"))
        enqueue(conn, recipient="a@lassuranceretraite.fr", template="request_refused",
                context=SAMPLE_CONTEXTS["request_refused"], now=T0)
        assert health.waiting_work(conn, T0) == {"intake", "deliver"}
    claim_requests(engine, statuses=["new"], worker_id="other", now=T0, lease_seconds=300, limit=10)
    claim_outbox(engine, worker_id="other", now=T0, lease_seconds=300, limit=10)
    with transaction(engine) as conn:
        assert health.waiting_work(conn, T0 + timedelta(seconds=10)) == set(), "the other daemon is on it"
        assert health.waiting_work(conn, T0 + timedelta(seconds=301)) == {"intake", "deliver"}, \
            "its lease ran out: the work is anyone's again"
