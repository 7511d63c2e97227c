"""``syncd replay REQUEST_ID``: one request written to LDAP again, idempotently."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from syncd.reconcile.replay import ReplayRefused, replay
from syncd.store import repo
from syncd.store.db import transaction
from syncd.store.tables import memberships, outbox, requests
from tests.reconcile.helpers import Ldap, account, dn, grant, key, members, revoke

pytestmark = pytest.mark.slapd

ROLE = "accords-locaux-acces"


def _request(rt, account_id, *, status="accepted", applied=True, kind="habilitation", role=ROLE) -> int:
    now = rt.clock()
    with transaction(rt.engine) as conn:
        return conn.execute(insert(requests).values(
            kind=kind, submitted_at=now, email="alice@lassuranceretraite.fr", role_key=role if kind != "account" else None,
            status=status, account_id=account_id, organisation_code="CARSAT-RA", decided_at=now,
            decided_by="tacit", applied_at=now if applied else None)).inserted_primary_key[0]


def _events(rt, request_id):
    with transaction(rt.engine) as conn:
        return [(e["event"], e["detail"]) for e in repo.events_of(conn, request_id)]


def test_replay_puts_back_a_membership_lost_from_ldap_and_does_nothing_the_second_time(rt):
    a = account(rt, "alice")
    grant(rt, a, ROLE)
    request_id = _request(rt, a)
    Ldap(rt).remove_member(ROLE, dn(rt, a))

    first = replay(rt, request_id)
    assert first.member_added and first.wrote and not first.first_application
    assert members(rt, ROLE) == {key(rt, a)}
    second = replay(rt, request_id)
    assert not second.wrote and second.member_added is False and second.account_written == "unchanged"
    assert [(e, d["wrote"]) for e, d in _events(rt, request_id)] == [("replayed", True), ("replayed", False)]


def test_replay_of_a_request_the_apply_job_never_finished_marks_it_applied(rt):
    a = account(rt, "alice")
    grant(rt, a, ROLE, in_ldap=False)
    request_id = _request(rt, a, applied=False)
    result = replay(rt, request_id)
    assert result.first_application and result.member_added
    with transaction(rt.engine) as conn:
        assert repo.get_request(conn, request_id).applied_at is not None
        assert conn.execute(select(memberships.c.applied_at)).scalar_one() is not None
        assert conn.execute(select(outbox.c.template)).scalars().all() == ["request_accepted"]
    assert [e for e, _ in _events(rt, request_id)] == ["applied"]


def test_replay_refuses_requests_that_are_not_accepted_or_were_revoked(rt):
    a = account(rt, "alice")
    grant(rt, a, ROLE)
    with pytest.raises(ReplayRefused, match="pending"):
        replay(rt, _request(rt, a, status="pending", applied=False))
    revoked = _request(rt, a)
    revoke(rt, a, ROLE)
    with pytest.raises(ReplayRefused, match="revoked"):
        replay(rt, revoked)
    with pytest.raises(ReplayRefused, match="no request"):
        replay(rt, 999_999)


def test_replay_of_an_account_request_rewrites_the_entry(rt):
    a = account(rt, "alice")
    request_id = _request(rt, a, kind="account")
    Ldap(rt).replace(dn(rt, a), "mail", ["wrong@example.org"])
    result = replay(rt, request_id)
    assert result.account_written == "updated" and result.member_added is None
    assert rt.directory.read_entry(dn(rt, a), ["mail"])["mail"] == ["alice@lassuranceretraite.fr"]
