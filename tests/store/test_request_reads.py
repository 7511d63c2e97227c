"""Requests read by the batch (apply's read) are the requests read one by one."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select

from syncd.core.model import RequestKind, Status
from syncd.store import accounts as accounts_store, repo
from syncd.store.db import transaction
from syncd.store.tables import accounts, organisations, requests

from .rows import T0, insert_requests


def test_a_batch_read_gives_each_request_as_reading_it_alone_does(engine):
    with transaction(engine) as conn:
        ids = insert_requests(conn, 2, status=Status.ACCEPTED_TACITLY.value, organisation_code=None,
                              deadline_at=T0 + timedelta(days=7), decided_at=T0 + timedelta(hours=1),
                              first_routed_at=T0, internal=True, terms_accepted=False, attempts=3, comment="ok")
        ids += insert_requests(conn, 1, kind=RequestKind.MOBILITY.value, civility="Mme", given_name="Zoé")
    with transaction(engine, readonly=True) as conn:
        batch = repo.requests_by_ids(conn, reversed(ids))
        alone = [repo.get_request(conn, i) for i in ids]
    assert batch == alone
    assert [r.id for r in batch] == ids
    assert batch[0].organisation_code == "" and batch[0].status is Status.ACCEPTED_TACITLY
    assert batch[0].decided_at == T0 + timedelta(hours=1) and batch[0].internal is True


def test_apply_s_claim_gives_each_request_as_read_alone_and_whether_ldap_has_its_account(engine):
    with transaction(engine) as conn:
        conn.execute(insert(organisations), [{"code": "ORG", "name": "Org", "branch": "b", "updated_at": T0}])
        conn.execute(insert(accounts), [
            {"id": account_id, "email": f"{account_id}@example.org", "given_name": "A", "family_name": "B",
             "primary_organisation": "ORG", "internal": True, "status": "active", "created_at": T0,
             "updated_at": T0, "ldap_version": version} for account_id, version in (("written", 3), ("new", None))])
        ids = insert_requests(conn, 4, status=Status.ACCEPTED.value, decided_at=T0, comment="ok")
        for request_id, account_id in zip(ids, ("written", "new", None, "written"), strict=True):
            conn.execute(requests.update().where(requests.c.id == request_id).values(account_id=account_id))
        conn.execute(requests.update().where(requests.c.id == ids[3]).values(applied_at=T0))
    claimed = repo.claim_with_accounts(engine, statuses=repo.GRANTED_STATUSES, worker_id="w1", now=T0,
                                       lease_seconds=60, limit=10, unapplied_only=True)
    with transaction(engine, readonly=True) as conn:
        alone = [repo.get_request(conn, i) for i in ids[:3]]
        claimed_by = dict(conn.execute(select(requests.c.id, requests.c.claimed_by)).all())
    assert [view for view, _ in claimed] == alone
    assert [written for _, written in claimed] == [True, False, None]     # None: no account (yet)
    assert claimed_by == {ids[0]: "w1", ids[1]: "w1", ids[2]: "w1", ids[3]: None}


def test_the_mail_contacts_of_a_batch_are_each_account_s_as_stored_and_unknown_ids_are_left_out(engine):
    people = [("plain", "Ana", "Lopez"), ("o'brien \"x\", y", "Zoé", "Ñúñez"), ("ALICE", "Al", "Ice")]
    with transaction(engine) as conn:
        conn.execute(insert(organisations), [{"code": "ORG", "name": "Org", "branch": "b", "updated_at": T0}])
        conn.execute(insert(accounts), [
            {"id": account_id, "email": f"{n}@example.org", "given_name": given, "family_name": family,
             "primary_organisation": "ORG", "internal": True, "status": "active", "created_at": T0, "updated_at": T0}
            for n, (account_id, given, family) in enumerate(people)])
    with transaction(engine, readonly=True) as conn:
        contacts = accounts_store.mail_contacts(conn, ["plain", "o'brien \"x\", y", "ALICE", "alice", "nobody"])
        none = accounts_store.mail_contacts(conn, [])
    assert contacts == {account_id: (account_id, f"{n}@example.org", given, family, "ORG")
                        for n, (account_id, given, family) in enumerate(people)}
    assert contacts["o'brien \"x\", y"].given_name == "Zoé" and contacts["ALICE"].primary_organisation == "ORG"
    assert none == {}
