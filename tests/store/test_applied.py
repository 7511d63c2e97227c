"""Apply's bookkeeping (``syncd.store.applied.mark_applied``) writes the same rows on SQLite (the
driver's executemany) and on PostgreSQL (one statement over arrays): read back through the tables."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from syncd.store import applied, audit
from syncd.store.db import transaction
from syncd.store.tables import accounts, audit_log, memberships, organisations, request_events, requests
from tests.store.rows import T0, insert_requests

NOW = T0 + timedelta(hours=3)
HOSTILE_DN = 'uid=J\\2C "Ann" é日 \\+x,ou=people,dc=example,dc=org'


@pytest.fixture
def three_granted(engine):
    """Three accepted requests of three accounts (the first parked, claimed, with an error), each
    with its membership row, plus a membership nobody applies."""
    with transaction(engine) as conn:
        conn.execute(insert(organisations), [{"code": "ORG", "name": "Org", "branch": "b", "updated_at": T0}])
        conn.execute(insert(accounts), [
            {"id": f"a{n}", "email": f"a{n}@example.org", "given_name": "A", "family_name": "B",
             "primary_organisation": "ORG", "internal": True, "status": "active", "created_at": T0,
             "updated_at": T0} for n in range(4)])
        ids = insert_requests(conn, 3, status="accepted")
        for n, request_id in enumerate(ids):
            conn.execute(requests.update().where(requests.c.id == request_id).values(account_id=f"a{n}"))
        conn.execute(requests.update().where(requests.c.id == ids[0]).values(
            parked_at=T0, parked_reason="refused", last_error="refused", claimed_by="w", claimed_until=NOW,
            next_attempt_at=NOW))
        conn.execute(insert(memberships), [{"account_id": f"a{n}", "role_key": "opim-local", "granted_at": T0}
                                           for n in range(4)])
    return ids


def test_the_requests_are_marked_applied_with_an_event_each_and_their_claim_error_and_parking_cleared(
        engine, three_granted):
    with transaction(engine) as conn:
        applied.mark_applied(conn, three_granted, [], NOW)
    with transaction(engine, readonly=True) as conn:
        rows = conn.execute(select(requests).where(requests.c.id.in_(three_granted))).mappings().all()
        events = conn.execute(select(request_events.c.request_id, request_events.c.event, request_events.c.at)
                              .order_by(request_events.c.id)).all()
    for row in rows:
        assert row["applied_at"] == NOW and row["updated_at"] == NOW
        assert (row["parked_at"], row["parked_reason"], row["last_error"], row["claimed_by"], row["claimed_until"],
                row["next_attempt_at"]) == (None,) * 6
    assert [tuple(e) for e in events] == [(i, "applied", NOW) for i in three_granted]


def test_each_member_added_gets_its_membership_applied_and_an_audit_row_in_the_order_given_that_seals(
        engine, three_granted):
    group = "cn=app-opim-local,ou=groups,dc=example,dc=org"
    long_group = "cn=" + "g" * 1200 + ",dc=example,dc=org"
    members = [(three_granted[2], "a2", "opim-local", long_group, "uid=a2,ou=people,dc=example,dc=org"),
               (three_granted[0], "a0", "opim-local", group, HOSTILE_DN)]
    with transaction(engine) as conn:
        applied.mark_applied(conn, [three_granted[0], three_granted[2]], members, NOW)
    with transaction(engine) as conn:
        trail = conn.execute(select(audit_log).order_by(audit_log.c.id)).mappings().all()
        held = dict(conn.execute(select(memberships.c.account_id, memberships.c.applied_at)).all())
        assert audit.seal(conn) == 2 and audit.verify(conn) is None
    assert [(r["at"], r["actor"], r["action"], r["request_id"], r["target"], r["detail"], r["seq"]) for r in trail] == [
        (NOW, "syncd", "ldap_member_added", three_granted[2], long_group[:1000], {"member": members[0][4]}, None),
        (NOW, "syncd", "ldap_member_added", three_granted[0], group, {"member": HOSTILE_DN}, None)]
    assert held == {"a0": NOW, "a1": None, "a2": NOW, "a3": None}


def test_an_empty_batch_writes_nothing(engine, three_granted):
    with transaction(engine) as conn:
        applied.mark_applied(conn, [], [], NOW)
    with transaction(engine, readonly=True) as conn:
        assert conn.execute(select(request_events)).first() is None
        assert all(r.applied_at is None for r in conn.execute(select(requests.c.applied_at)))
