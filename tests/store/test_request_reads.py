"""Requests read by the batch (apply's read) are the requests read one by one."""

from __future__ import annotations

from datetime import timedelta

from syncd.core.model import RequestKind, Status
from syncd.store import repo
from syncd.store.db import transaction

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
