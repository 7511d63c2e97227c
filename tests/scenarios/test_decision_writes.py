"""What one decision reads and writes: authorisation without the whole route, an audit row sealed later.

No LDAP here: a decision only changes the store, so the runtime is built on the test's database
alone.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, insert, update

from syncd.core.model import Verdict
from syncd.errors import DecisionRefused
from syncd.jobs.decisions import decide_request
from syncd.jobs.routing import current_route
from syncd.runtime import Runtime
from syncd.settings import Settings
from syncd.store import audit, decision as decision_store, repo
from syncd.store.db import make_engine, transaction
from syncd.store.tables import accounts, deciders, requests
from tests.factories import T0, mappings

PEOPLE = {   # account id: (primary organisation, status, decider roles)
    "u-req": ("CARSAT-RA", "active", []),
    "u-cor": ("CARSAT-RA", "active", [("correspondent", "CARSAT-RA")]),
    "u-cor-off": ("CARSAT-RA", "disabled", [("correspondent", "CARSAT-RA")]),
    "u-cpam": ("CPAM-75", "active", [("correspondent", "CPAM-75")]),
    "u-adm": ("CARSAT-RA", "active", [("central", None)]),
    "u-adm-cor": ("CPAM-75", "active", [("central", None), ("correspondent", "CPAM-75")]),
    "u-adm-off": ("CARSAT-RA", "disabled", [("central", None)]),
    "u-none": ("CPAM-75", "active", []),
}


@pytest.fixture
def rt(db_url):
    runtime = Runtime(Settings(database={"url": db_url}), mappings(), make_engine(db_url), clock=lambda: T0,
                      worker_id="test-decisions")
    yield runtime
    runtime.close()


def given_people(rt) -> None:
    with transaction(rt.engine) as conn:
        repo.upsert_organisations(conn, rt.mappings.organisations, T0)
        conn.execute(insert(accounts), [
            {"id": i, "email": f"{i}@lassuranceretraite.fr", "given_name": i, "family_name": i,
             "primary_organisation": org, "internal": True, "status": status, "created_at": T0, "updated_at": T0}
            for i, (org, status, _) in PEOPLE.items()])
        conn.execute(insert(deciders), [
            {"account_id": i, "scope": scope, "organisation_code": org, "created_at": T0}
            for i, (_, _, roles) in PEOPLE.items() for scope, org in roles])


def pending(rt, *, kind="habilitation", account_id=None, org="CARSAT-RA", role="accords-locaux-acces") -> int:
    with transaction(rt.engine) as conn:
        return conn.execute(insert(requests).values(
            kind=kind, status="pending", account_id=account_id, organisation_code=org,
            role_key=role if kind != "account" else None, email=f"{account_id or 'new'}@lassuranceretraite.fr",
            submitted_at=T0, deadline_at=T0 + timedelta(days=10), updated_at=T0)).inserted_primary_key[0]


def authorised_by_whole_route(conn, rt, row, ref: str) -> tuple[str | None, bool]:
    """What authorisation was before: the account, then the route from every current decider."""
    found = repo.find_account(conn, ref)
    if found is None:
        return None, False
    return found.id, found.status == "active" and found.id in current_route(conn, rt, row).decider_ids


def authorised_by_few_rows(conn, rt, row, ref: str) -> tuple[str | None, bool]:
    found, few = decision_store.decider_and_rivals(conn, ref, row.organisation_code, row.account_id)
    if found is None:
        return None, False
    return found["id"], found["status"] == "active" and found["id"] in current_route(conn, rt, row, few).decider_ids


def test_authorisation_from_a_few_rows_agrees_with_the_whole_route_for_every_account_and_request(rt):
    given_people(rt)
    ids = [pending(rt, account_id="u-req"),                                   # local role, CARSAT-RA
           pending(rt, account_id="u-req", role="opim-local"),                # central role
           pending(rt, kind="account"),                                       # no requester account yet
           pending(rt, account_id="u-cpam", org="CPAM-75"),                   # the requester is a correspondent
           pending(rt, account_id="u-adm-cor", org="CPAM-75"),                # ... and so is a central one
           pending(rt, account_id="u-none", org="CPAM-75", role="annuaire-redacteur"),
           pending(rt, account_id="u-req", org=None),                         # no organisation at all
           pending(rt, account_id="u-adm", role="opim-local")]                # a central administrator's own
    refs = [ref for i in PEOPLE for ref in (i, f"{i}@lassuranceretraite.fr", f"{i.upper()}@LASSURANCERETRAITE.FR")]
    refs.append("nobody@example.org")

    def compare() -> set[tuple[int, str]]:
        allowed = set()
        with transaction(rt.engine) as conn:
            for request_id in ids:
                row = repo.get_request(conn, request_id)
                for ref in refs:
                    expected = authorised_by_whole_route(conn, rt, row, ref)
                    assert authorised_by_few_rows(conn, rt, row, ref) == expected, (request_id, ref)
                    if expected[1]:
                        allowed.add((request_id, expected[0]))
        return allowed

    assert (ids[0], "u-cor") in compare()
    with transaction(rt.engine) as conn:   # CARSAT-RA and CPAM-75 lose their correspondents: central falls back in
        conn.execute(update(accounts).where(accounts.c.id.in_(["u-cor", "u-cpam"])).values(status="disabled"))
    allowed = compare()
    assert (ids[0], "u-adm") in allowed and (ids[0], "u-cor") not in allowed


def statements_of(rt, action, monkeypatch) -> list[str]:
    """Every statement run: through SQLAlchemy, and on the driver's cursor (the decision's own)."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(" ".join(statement.split()))

    run = decision_store._run

    def run_and_record(conn, statement, params):
        seen.append(" ".join(statement.split()))
        return run(conn, statement, params)

    monkeypatch.setattr(decision_store, "_run", run_and_record)
    event.listen(rt.engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(rt.engine, "before_cursor_execute", record)
    return seen


@pytest.mark.parametrize("verdict, comment", [(Verdict.ACCEPT, None), (Verdict.REFUSE, "Poste sans lien")])
def test_a_decision_writes_its_audit_row_without_waiting_for_the_chain_and_sealing_chains_it(rt, verdict, comment,
                                                                                             monkeypatch):
    given_people(rt)
    request_id = pending(rt, account_id="u-req")
    seen = statements_of(rt, lambda: decide_request(rt, request_id, "u-cor@lassuranceretraite.fr", verdict, comment),
                         monkeypatch)
    assert any(s.startswith("INSERT INTO audit_log") for s in seen), seen
    assert not any("pg_advisory" in s or ("audit_log" in s and s.startswith("SELECT")) for s in seen), \
        "a decision neither locks nor reads the chain: the sealing job does"
    whole_row = [s for s in seen if s.startswith("SELECT") and "deadline_at" in s and "FROM requests" in s]
    assert len(whole_row) == 1, "the request is read once, not read back"
    with transaction(rt.engine) as conn:
        assert repo.get_request(conn, request_id).status == ("accepted" if verdict is Verdict.ACCEPT
                                                                 else "refused")
        assert audit.unsealed(conn) == 1
        assert audit.seal(conn) == 1
        assert audit.verify(conn) is None
        assert [r["request_id"] for r in audit.rows(conn)] == [request_id]


def test_a_refused_attempt_is_recorded_in_the_same_single_transaction(rt):
    given_people(rt)
    request_id = pending(rt, account_id="u-req")
    commits = []

    def committed(conn):
        commits.append(conn)

    event.listen(rt.engine, "commit", committed)
    try:
        with pytest.raises(DecisionRefused) as refused:
            decide_request(rt, request_id, "u-cpam", Verdict.ACCEPT)
    finally:
        event.remove(rt.engine, "commit", committed)
    assert refused.value.code == "not_authorised" and len(commits) == 1
    with transaction(rt.engine) as conn:
        assert [e["event"] for e in repo.events_of(conn, request_id)] == ["decision_refused"]
        assert audit.count(conn) == 1 and audit.seal(conn) == 1 and audit.verify(conn) is None


def test_what_single_use_raises_writes_nothing_at_all(rt):
    given_people(rt)
    request_id = pending(rt, account_id="u-req")

    class Replay(Exception):
        pass

    def replayed(conn, refusal):
        assert refusal is None
        raise Replay()

    with pytest.raises(Replay):
        decide_request(rt, request_id, "u-cor", Verdict.ACCEPT, single_use=replayed)
    with transaction(rt.engine) as conn:
        assert repo.get_request(conn, request_id).status == "pending"
        assert repo.events_of(conn, request_id) == [] and audit.count(conn) == 0
