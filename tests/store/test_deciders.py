"""Deciders are recorded once: adding one again, even twice at the same moment, changes nothing."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, insert, select, text

from syncd import operator
from syncd.runtime import Runtime
from syncd.settings import Settings
from syncd.store import repo
from syncd.store.db import make_engine, transaction
from syncd.store.migrate import upgrade
from syncd.store.tables import accounts, deciders
from tests.factories import T0, mappings

PEOPLE = ("alice@lassuranceretraite.fr", "claire@lassuranceretraite.fr")


def runtime(url: str) -> Runtime:
    return Runtime(Settings(database={"url": url}), mappings(), make_engine(url), clock=lambda: T0, worker_id="t")


def given_accounts(rt) -> None:
    with transaction(rt.engine) as conn:
        repo.upsert_organisations(conn, rt.mappings.organisations, T0)
        conn.execute(insert(accounts), [
            {"id": f"u-{n}", "email": email, "given_name": "A", "family_name": "B", "primary_organisation": "CARSAT-RA",
             "internal": True, "status": "active", "created_at": T0, "updated_at": T0}
            for n, email in enumerate(PEOPLE)])


def roles(rt) -> list[tuple]:
    with transaction(rt.engine) as conn:
        return sorted(conn.execute(select(deciders.c.account_id, deciders.c.scope, deciders.c.organisation_code)).all(),
                      key=str)


def test_adding_a_decider_again_changes_nothing(db_url):
    rt = runtime(db_url)
    given_accounts(rt)
    for _ in range(2):
        operator.add_decider(rt, PEOPLE[0], None)
        operator.add_decider(rt, PEOPLE[1], "CARSAT-RA")
    assert roles(rt) == [("u-0", "central", None), ("u-1", "correspondent", "CARSAT-RA")]
    rt.close()


@pytest.mark.postgres
def test_adding_a_central_administrator_another_is_adding_at_the_same_moment_records_it_once(postgres_url):
    rt = runtime(postgres_url)
    given_accounts(rt)
    other = make_engine(postgres_url)
    with other.connect() as conn:      # the other administrator's add, inserted but not committed yet
        in_flight = conn.begin()
        conn.execute(insert(deciders).values(account_id="u-0", scope="central", organisation_code=None,
                                             created_at=T0))
        outcome = []
        ours = threading.Thread(target=lambda: outcome.append(_add(rt, PEOPLE[0])))
        ours.start()
        ours.join(0.5)
        assert ours.is_alive(), "ours waits for theirs: both cannot be the one"
        in_flight.commit()
        ours.join(10)
    assert outcome == [None] and roles(rt) == [("u-0", "central", None)]
    other.dispose()
    rt.close()


def _add(rt, email):
    try:
        operator.add_decider(rt, email, None)
    except Exception as exc:   # noqa: BLE001 - returned, and asserted on by the caller
        return exc
    return None


def test_the_upgrade_merges_central_administrators_recorded_twice_before_the_index(empty_db_url):
    upgrade(empty_db_url, "0004")
    rt = runtime(empty_db_url)
    given_accounts(rt)
    with transaction(rt.engine) as conn:
        for _ in range(3):
            conn.execute(text("INSERT INTO deciders (account_id, scope, organisation_code, created_at) "
                              "VALUES ('u-0', 'central', NULL, :at)"), {"at": T0})
    upgrade(empty_db_url)
    with transaction(rt.engine) as conn:
        assert conn.execute(select(func.count()).select_from(deciders)).scalar() == 1
    rt.close()
