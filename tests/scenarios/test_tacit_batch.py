"""The set-based tacit sweep: what it writes for a batch is what deciding each request alone wrote.

No LDAP here: the sweep only changes the store (the apply job takes it from there), so the
runtime is built on the test's database alone.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from dateutil.relativedelta import relativedelta
import pytest
from sqlalchemy import insert, select, update

from syncd.core import lifecycle
from syncd.jobs import tacit
from syncd.jobs.decisions import record_transition
from syncd.runtime import Runtime
from syncd.settings import Settings
from syncd.store import audit, repo, tacit as tacit_store
from syncd.store.db import make_engine, transaction
from syncd.store.tables import accounts, audit_log, memberships, request_deciders, request_events, requests
from tests.factories import T0, mappings

DUE = T0 - timedelta(minutes=1)            # deadlines already passed at T0
LATER = T0 + timedelta(days=1)             # not due yet
VALID = relativedelta(months=12)           # annuaire-redacteur: validity_months 12

# Row locks taken one by one only exist on PostgreSQL (SQLite locks the whole database).
postgresql_only = pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                                          indirect=True)


@pytest.fixture
def make_rt(db_url, monkeypatch):
    """Runtimes on the test's database; ``batch_size`` is taken as it is, so that small
    backlogs cross batch boundaries."""
    monkeypatch.setattr(tacit, "MIN_BATCH", 1)
    made: list[Runtime] = []

    def make(batch_size: int = 500) -> Runtime:
        settings = Settings(database={"url": db_url}, jobs={"batch_size": batch_size})
        runtime = Runtime(settings, mappings(), make_engine(db_url), clock=lambda: T0, worker_id=f"w{len(made)}")
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close()


def given_accounts(rt, *ids: str) -> None:
    with transaction(rt.engine) as conn:
        repo.upsert_organisations(conn, rt.mappings.organisations, T0)
        conn.execute(insert(accounts), [
            {"id": i, "email": f"{i}@lassuranceretraite.fr", "given_name": i, "family_name": i,
             "primary_organisation": "CARSAT-RA", "internal": True, "status": "active",
             "created_at": T0, "updated_at": T0} for i in ids])


def given_membership(rt, account_id: str, role_key: str, **values) -> None:
    with transaction(rt.engine) as conn:
        conn.execute(insert(memberships).values(account_id=account_id, role_key=role_key,
                                                granted_at=T0 - timedelta(days=400), **values))


DECIDER = "u-decider"


def route_to_a_decider(conn, request_ids) -> None:
    """Route requests to one correspondent, as intake does: the sweep accepts only what reached a decider."""
    if conn.execute(select(accounts.c.id).where(accounts.c.id == DECIDER)).first() is None:
        conn.execute(insert(accounts).values(id=DECIDER, email="decider@lassuranceretraite.fr", given_name="D",
                                             family_name="D", primary_organisation="CARSAT-RA", internal=True,
                                             status="active", created_at=T0, updated_at=T0))
    conn.execute(insert(request_deciders), [{"request_id": i, "account_id": DECIDER} for i in request_ids])


def pending(rt, kind: str = "habilitation", account_id: str | None = None, role_key: str | None = None,
            deadline_at=DUE, **values) -> int:
    """A request as intake leaves it: pending, routed, with its deadline."""
    values.setdefault("email", f"{account_id}@lassuranceretraite.fr" if account_id else None)
    with transaction(rt.engine) as conn:
        request_id = conn.execute(insert(requests).values(
            kind=kind, status="pending", account_id=account_id, role_key=role_key, organisation_code="CARSAT-RA",
            submitted_at=deadline_at - timedelta(days=10), first_routed_at=deadline_at - timedelta(days=10),
            deadline_at=deadline_at, updated_at=T0, **values)
        ).inserted_primary_key[0]
        route_to_a_decider(conn, [request_id])
        repo.add_event(conn, request_id, "routed", T0 - timedelta(days=10))
    return request_id


def account_request(rt, email: str, deadline_at=DUE) -> int:
    return pending(rt, kind="account", email=email, civility="Mme", given_name="Nadia", family_name="Ferhat",
                   internal=True, terms_accepted=True, terms_version="2026-01", deadline_at=deadline_at)


def mixed_backlog(rt) -> dict[str, int]:
    """Habilitations, renewals and an account request, due in this order, and one not due yet."""
    given_accounts(rt, "u-ann", "u-bob", "u-cat")
    given_membership(rt, "u-ann", "annuaire-redacteur", expires_at=T0 + timedelta(days=20))
    given_membership(rt, "u-bob", "annuaire-redacteur", expires_at=T0 - timedelta(days=5),
                     revoked_at=T0 - timedelta(days=5))
    given_membership(rt, "u-bob", "accords-locaux-acces", revoked_at=T0 - timedelta(days=30))
    return {
        "renew_ann": pending(rt, "renewal", "u-ann", "annuaire-redacteur", DUE - timedelta(hours=6)),
        "renew_bob": pending(rt, "renewal", "u-bob", "annuaire-redacteur", DUE - timedelta(hours=5)),
        "hab_ann": pending(rt, "habilitation", "u-ann", "accords-locaux-acces", DUE - timedelta(hours=4)),
        "hab_bob": pending(rt, "habilitation", "u-bob", "accords-locaux-acces", DUE - timedelta(hours=3)),
        "account": account_request(rt, "nadia.ferhat@lassuranceretraite.fr", DUE - timedelta(hours=2)),
        "hab_cat": pending(rt, "habilitation", "u-cat", "annuaire-redacteur", DUE - timedelta(hours=1)),
        "renew_cat": pending(rt, "renewal", "u-cat", "annuaire-redacteur", DUE),
        "not_due": pending(rt, "habilitation", "u-cat", "opim-local", LATER),
    }


def snapshot(conn) -> dict[str, list]:
    """The rows the sweep writes, without the ids a rolled-back sequence leaves behind."""
    def rows(table, order, drop=()):
        return [{k: v for k, v in r.items() if k not in drop}
                for r in conn.execute(select(table).order_by(*order)).mappings()]
    return {"requests": rows(requests, [requests.c.id]),
            "events": rows(request_events, [request_events.c.id], drop=("id",)),
            "audit": rows(audit_log, [audit_log.c.id], drop=("id",)),
            "memberships": rows(memberships, [memberships.c.account_id, memberships.c.role_key]),
            "accounts": rows(accounts, [accounts.c.email])}


def memberships_of(conn) -> dict[tuple[str, str], dict]:
    return {(r["account_id"], r["role_key"]): dict(r) for r in conn.execute(select(memberships)).mappings()}

def one_by_one(conn, rt) -> None:
    """The sweep as it was: each due request locked, decided by the core, recorded alone."""
    ids = conn.execute(select(requests.c.id).where(requests.c.status == "pending", requests.c.deadline_at <= T0)
                       .order_by(requests.c.deadline_at, requests.c.id)).scalars().all()
    for request_id in ids:
        row = repo.get_request(conn, request_id, for_update=True)
        record_transition(conn, rt, row, lifecycle.tacit_acceptance(row, now=T0))


@pytest.fixture
def stable_account_ids(monkeypatch):
    """Account ids are random; the comparison needs the same one on both runs."""
    monkeypatch.setattr(repo, "new_account_id", lambda: "u-new")


def test_a_mixed_batch_is_written_exactly_as_recording_each_request_alone_wrote_it(make_rt, stable_account_ids):
    rt = make_rt(batch_size=3)           # several batches, a habilitation and its renewal split across two
    mixed_backlog(rt)
    with rt.engine.connect() as conn:
        tx = conn.begin()
        one_by_one(conn, rt)
        expected = snapshot(conn)
        tx.rollback()

    assert tacit.sweep(rt) == 7
    with transaction(rt.engine) as conn:
        assert snapshot(conn) == expected


def test_a_batch_extends_renewals_from_the_current_expiry_grants_habilitations_and_creates_the_account(make_rt):
    rt = make_rt()
    ids = mixed_backlog(rt)

    assert tacit.sweep(rt) == 7
    with transaction(rt.engine) as conn:
        held = memberships_of(conn)
        by_id = {r["id"]: r for r in conn.execute(select(requests)).mappings()}
        created = repo.account_by_email(conn, "nadia.ferhat@lassuranceretraite.fr")
    assert held["u-ann", "annuaire-redacteur"]["expires_at"] == T0 + timedelta(days=20) + VALID
    assert held["u-bob", "annuaire-redacteur"]["expires_at"] == T0 + VALID    # was revoked: starts again now
    assert held["u-bob", "annuaire-redacteur"]["revoked_at"] is None
    assert held["u-ann", "accords-locaux-acces"]["expires_at"] is None        # a role without validity
    assert held["u-bob", "accords-locaux-acces"]["revoked_at"] is None
    assert held["u-cat", "annuaire-redacteur"]["expires_at"] == T0 + VALID + VALID  # granted, then renewed
    assert held["u-cat", "annuaire-redacteur"]["granted_by_request"] == ids["renew_cat"]
    assert ("u-cat", "opim-local") not in held
    assert all(m["granted_at"] == T0 and m["applied_at"] is None
               for k, m in held.items() if k != ("u-cat", "opim-local"))
    assert created is not None and created.status == "pending"
    assert by_id[ids["account"]]["account_id"] == created.id
    assert by_id[ids["not_due"]]["status"] == "pending"
    for name, request_id in ids.items():
        if name != "not_due":
            row = by_id[request_id]
            assert (row["status"], row["decided_by"], row["decided_at"], row["updated_at"]) == \
                ("accepted_tacitly", "tacit", T0, T0)


def test_a_second_sweep_accepts_nothing_more(make_rt):
    rt = make_rt()
    mixed_backlog(rt)
    assert tacit.sweep(rt) == 7
    with transaction(rt.engine) as conn:
        before = snapshot(conn)
    assert tacit.sweep(rt) == 0
    with transaction(rt.engine) as conn:
        assert snapshot(conn) == before


def test_a_request_decided_before_the_sweep_keeps_its_decision(make_rt):
    rt = make_rt()
    given_accounts(rt, "u-ann")
    refused = pending(rt, "habilitation", "u-ann", "accords-locaux-acces")
    accepted = pending(rt, "habilitation", "u-ann", "annuaire-redacteur")
    with transaction(rt.engine) as conn:
        conn.execute(update(requests).where(requests.c.id == refused)
                     .values(status="refused", decided_by="u-claire", decided_at=T0 - timedelta(days=1)))

    assert tacit.sweep(rt) == 1
    with transaction(rt.engine) as conn:
        row = repo.get_request(conn, refused)
        assert (row.status, row.decided_by) == ("refused", "u-claire")
        assert [e["event"] for e in repo.events_of(conn, refused)] == ["routed"]
        assert [e["event"] for e in repo.events_of(conn, accepted)] == ["routed", "tacitly_accepted"]
        assert set(memberships_of(conn)) == {("u-ann", "annuaire-redacteur")}


def test_a_request_decided_between_its_claim_and_the_write_is_not_touched(make_rt, monkeypatch):
    rt = make_rt()
    given_accounts(rt, "u-ann")
    decided = pending(rt, "habilitation", "u-ann", "accords-locaux-acces")
    other = pending(rt, "habilitation", "u-ann", "annuaire-redacteur")
    claim = tacit_store.claim_due

    def claim_then_someone_decides(conn, now, limit, *args):
        rows = claim(conn, now, limit, *args)
        conn.execute(update(requests).where(requests.c.id == decided)
                     .values(status="refused", decided_by="u-claire", decided_at=now, comment="Non"))
        return rows

    monkeypatch.setattr(tacit_store, "claim_due", claim_then_someone_decides)
    assert tacit.sweep(rt) == 1
    with transaction(rt.engine) as conn:
        row = repo.get_request(conn, decided)
        assert (row.status, row.decided_by, row.comment) == ("refused", "u-claire", "Non")
        assert [e["event"] for e in repo.events_of(conn, decided)] == ["routed"]
        assert audit.seal(conn) == 1 and [r["request_id"] for r in audit.rows(conn)] == [other]
        assert set(memberships_of(conn)) == {("u-ann", "annuaire-redacteur")}


def test_the_audit_chain_still_verifies_after_a_sweep_over_several_batches(make_rt):
    rt = make_rt(batch_size=2)
    given_accounts(rt, "u-ann", "u-bob")
    with transaction(rt.engine) as conn:
        audit.record(conn, at=T0 - timedelta(days=1), actor="u-claire", action="decided", target="before")
    ids = [pending(rt, "habilitation", a, r, DUE - timedelta(minutes=i))
           for i, (a, r) in enumerate([(a, r) for a in ("u-ann", "u-bob")
                                       for r in ("accords-locaux-acces", "annuaire-redacteur", "opim-local")])]

    assert tacit.sweep(rt) == 6
    with transaction(rt.engine) as conn:
        assert audit.seal(conn) == 7 and audit.verify(conn) is None
        written = list(audit.rows(conn))[1:]
    assert [r["request_id"] for r in written] == ids[::-1]            # oldest deadline first
    assert all((r["actor"], r["action"], r["detail"]) == ("tacit", "tacitly_accepted", {"status": "accepted_tacitly"})
               for r in written)
    assert written[0]["target"] == "habilitation:opim-local"


def due_backlog(rt, count: int) -> list[int]:
    """``count`` due habilitations, each for its own account (so no two touch one membership)."""
    account_ids = [f"u-{i:04d}" for i in range(count)]
    given_accounts(rt, *account_ids)
    with transaction(rt.engine) as conn:
        conn.execute(insert(requests), [
            {"kind": "habilitation", "status": "pending", "account_id": a, "role_key": "accords-locaux-acces",
             "email": f"{a}@lassuranceretraite.fr", "organisation_code": "CARSAT-RA",
             "submitted_at": DUE - timedelta(days=10), "first_routed_at": DUE - timedelta(days=10),
             "deadline_at": DUE - timedelta(seconds=i), "updated_at": T0}
            for i, a in enumerate(account_ids)])
        ids = conn.execute(select(requests.c.id).order_by(requests.c.id)).scalars().all()
        route_to_a_decider(conn, ids)
        return ids


def accepted_once(rt, ids: list[int]) -> None:
    with transaction(rt.engine) as conn:
        statuses = dict(conn.execute(select(requests.c.id, requests.c.status)).all())
        events = conn.execute(select(request_events.c.request_id)
                              .where(request_events.c.event == "tacitly_accepted")).scalars().all()
        audited = conn.execute(select(audit_log.c.request_id)).scalars().all()
        granted = conn.execute(select(memberships.c.granted_by_request)).scalars().all()
        assert audit.seal(conn) == len(audited) and audit.verify(conn) is None
    assert set(statuses.values()) == {"accepted_tacitly"}
    assert sorted(events) == sorted(audited) == sorted(granted) == sorted(ids)


@postgresql_only
def test_a_sweep_skips_the_requests_another_sweep_holds_and_each_is_accepted_once(make_rt):
    first, second = make_rt(batch_size=10), make_rt(batch_size=10)
    ids = due_backlog(first, 35)
    with first.engine.connect() as conn, conn.begin():
        held = tacit_store.claim_due(conn, T0, 10)
        assert tacit.sweep(second) == 25        # does not wait for the locked ten: it skips them
        assert tacit.accept_batch(conn, first, held, T0) == 10
    assert tacit.sweep(first) == tacit.sweep(second) == 0
    accepted_once(first, ids)


def test_two_sweeps_racing_accept_each_request_once(make_rt):
    # PostgreSQL: they take disjoint batches side by side. SQLite: they take turns.
    daemons = [make_rt(batch_size=7) for _ in range(2)]
    ids = due_backlog(daemons[0], 300)
    start = threading.Barrier(len(daemons))
    counts: list[int] = []

    def run(rt):
        start.wait()
        counts.append(tacit.sweep(rt))

    threads = [threading.Thread(target=run, args=(rt,)) for rt in daemons]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(counts) == len(ids)
    accepted_once(daemons[0], ids)


def test_external_account_requests_past_their_deadline_never_fill_the_sweeps_batch(make_rt):
    rt = make_rt(batch_size=3)
    given_accounts(rt, "u-ann")
    externals = [pending(rt, kind="account", email=f"x{i}@gmail.com", civility="Mme", given_name="X", family_name="Y",
                         internal=False, terms_accepted=True, terms_version="2026-01",
                         deadline_at=DUE - timedelta(hours=10 - i)) for i in range(5)]
    habilitation = pending(rt, "habilitation", "u-ann", "accords-locaux-acces", DUE)
    assert tacit.sweep(rt) == 1
    with transaction(rt.engine) as conn:
        statuses = dict(conn.execute(select(requests.c.id, requests.c.status)).all())
    assert statuses[habilitation] == "accepted_tacitly"
    assert {statuses[i] for i in externals} == {"pending"}, "never accepted tacitly, left to their escalation"
