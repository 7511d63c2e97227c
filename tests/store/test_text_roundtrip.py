"""Whatever text the portal (or syncd) puts in the queue table comes back unchanged."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import String, Text, delete, insert, select

from syncd.errors import StoreRejected
from syncd.store.db import transaction
from syncd.store.tables import requests

from tests.store.rows import request_row

# Free-text columns: every string column except the constrained ones (kind, status) and the
# foreign key (account_id). String(n) limits are characters on PostgreSQL.
FREE_TEXT = {
    c.name: (c.type.length or 2000)
    for c in requests.columns
    if isinstance(c.type, (String, Text)) and c.name not in ("kind", "status", "account_id")
}


def test_the_free_text_columns_are_the_expected_ones():
    assert set(FREE_TEXT) == {
        "email", "civility", "given_name", "family_name", "organisation_code", "terms_version",
        "role_key", "portal_ref", "reason", "decided_by", "comment", "last_error", "claimed_by", "parked_reason",
    }


values = st.fixed_dictionaries(
    {name: st.one_of(st.none(), st.text(max_size=min(length, 300))) for name, length in FREE_TEXT.items()}
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=values)
def test_arbitrary_text_in_the_queue_table_round_trips(engine, row):
    has_nul = any(v is not None and "\x00" in v for v in row.values())
    if has_nul and engine.dialect.name == "postgresql":
        # PostgreSQL text cannot hold NUL: refused cleanly, never a crash or a driver error.
        with pytest.raises(StoreRejected):
            with transaction(engine) as conn:
                conn.execute(insert(requests).values(request_row(**row)))
        return
    with transaction(engine) as conn:
        rid = conn.execute(insert(requests).values(request_row(**row))).inserted_primary_key[0]
    try:
        with transaction(engine, readonly=True) as conn:
            back = conn.execute(select(*(requests.c[n] for n in row)).where(requests.c.id == rid)).one()
        assert back._asdict() == row
    finally:
        with transaction(engine) as conn:
            conn.execute(delete(requests).where(requests.c.id == rid))


@pytest.mark.parametrize("text", ["\x00", "a\x00b"])
def test_a_nul_character_is_refused_by_postgresql_and_kept_by_sqlite(engine, text):
    if engine.dialect.name == "postgresql":
        with pytest.raises(StoreRejected):
            with transaction(engine) as conn:
                conn.execute(insert(requests).values(request_row(comment=text)))
    else:
        with transaction(engine) as conn:
            rid = conn.execute(insert(requests).values(request_row(comment=text))).inserted_primary_key[0]
            assert conn.execute(select(requests.c.comment).where(requests.c.id == rid)).scalar_one() == text
