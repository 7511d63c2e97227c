"""Faults the fault-injection suite found in ``syncd/jobs``, kept as deterministic regression tests.

Both were first written as ``xfail(strict=True)`` tests and fixed in 02099df:

* delivery leased a mail for its own 600 s default whatever ``database.lease_seconds`` said, so
  a mail whose outcome was lost (database crash between the SMTP "250" and the update, seen in
  test_postgres_restart.py) waited ten minutes;
* ``remind`` read a request's past reminders without locking it, so two daemons on PostgreSQL
  both recorded the same D-n reminder (seen in test_two_daemons.py).

(The LDAPS host-name one, in ``syncd/directory/connection.py``, is in tests/ops/test_tls.py.)
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from syncd.errors import StoreUnavailable
from syncd.jobs import deliver as deliver_job
from syncd.jobs import tacit as tacit_job
from syncd.runtime import Runtime
from syncd.mail import delivery
from syncd.mail.outbox import enqueue
from syncd.settings import Settings
from syncd.store import repo
from syncd.store.db import make_engine, transaction
from syncd.store.tables import outbox, request_events
from tests.factories import T0, mappings
from tests.scenarios.conftest import Clock


def _runtime(db_url: str, smtp_server, clock, worker: str, lease_seconds: int = 5) -> Runtime:
    settings = Settings(database={"url": db_url, "lease_seconds": lease_seconds},
                        smtp=smtp_server.settings().model_dump(),
                        web={"base_url": "https://habilitations.example.org"})
    return Runtime(settings, mappings(), make_engine(db_url), clock=clock, worker_id=worker)


def test_a_mail_whose_outcome_was_lost_is_retried_after_database_lease_seconds(sqlite_engine, smtp_server,
                                                                               monkeypatch):
    clock = Clock(T0)
    rt = _runtime(str(sqlite_engine.url), smtp_server, clock, "w1", lease_seconds=5)
    with transaction(rt.engine) as conn:
        enqueue(conn, recipient="agent@lassuranceretraite.fr", template="password_reset", now=clock(),
                context={"requester_name": "Agent", "reset_url": "https://x/r?t=1", "expires_at": clock()})
    real_finish = delivery._finish

    def database_gone(*args, **kwargs):
        raise StoreUnavailable("database connection lost: server closed the connection unexpectedly")

    monkeypatch.setattr(delivery, "_finish", database_gone)
    with pytest.raises(StoreUnavailable):
        deliver_job.deliver(rt)          # claimed and sent; the outcome could not be written
    monkeypatch.setattr(delivery, "_finish", real_finish)
    assert len(smtp_server.messages) == 1
    clock.advance(seconds=6)             # past database.lease_seconds
    deliver_job.deliver(rt)
    with transaction(rt.engine) as conn:
        row = conn.execute(select(outbox)).mappings().one()
    rt.close()
    assert row["status"] == "sent", f"still {row['status']}, claimed until {row['claimed_until']}"


@pytest.mark.postgres
def test_two_daemons_reminding_at_once_record_one_reminder(postgres_url, smtp_server, monkeypatch):
    from syncd.store.tables import accounts, deciders, requests
    clock = Clock(T0)
    now = clock()
    one = _runtime(postgres_url, smtp_server, clock, "daemon-1")
    two = _runtime(postgres_url, smtp_server, clock, "daemon-2")
    with transaction(one.engine) as conn:
        repo.upsert_organisations(conn, one.mappings.organisations, now)
        for account_id, email in (("req", "req@lassuranceretraite.fr"), ("cor", "cor@lassuranceretraite.fr")):
            conn.execute(accounts.insert().values(id=account_id, email=email, given_name="A", family_name="B",
                                                  primary_organisation="CARSAT-RA", internal=True, status="active",
                                                  created_at=now, updated_at=now))
        conn.execute(deciders.insert().values(account_id="cor", scope="correspondent",
                                              organisation_code="CARSAT-RA", created_at=now))
        request_id = conn.execute(requests.insert().values(
            kind="habilitation", submitted_at=now - timedelta(days=8), email="req@lassuranceretraite.fr",
            role_key="accords-locaux-acces", status="pending", account_id="req", organisation_code="CARSAT-RA",
            deadline_at=now + timedelta(days=2), updated_at=now)).inserted_primary_key[0]
        repo.set_routing(conn, request_id, ["cor"])

    both_read = threading.Barrier(2, timeout=2)
    real = tacit_job.tacit.reminders_due

    def reminders_due(*args, **kwargs):
        # Wait (a little) for the other daemon to have read the request's events too. With the
        # request locked first, the other one waits for our commit instead and never gets here.
        try:
            both_read.wait()
        except threading.BrokenBarrierError:
            pass
        return real(*args, **kwargs)

    monkeypatch.setattr(tacit_job.tacit, "reminders_due", reminders_due)
    errors: list[BaseException] = []

    def run(rt):
        try:
            tacit_job.remind(rt)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(rt,)) for rt in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with transaction(one.engine) as conn:
        recorded = conn.execute(select(request_events.c.detail).where(
            request_events.c.request_id == request_id, request_events.c.event == "reminded")).scalars().all()
        mails = conn.execute(select(outbox.c.dedupe_key)).scalars().all()
    one.close()
    two.close()
    assert not errors, errors
    assert mails == [f"request:{request_id}:reminder_d3:cor"], "the mail is deduplicated already"
    assert len(recorded) == 1, f"the D-3 reminder is recorded {len(recorded)} times"
