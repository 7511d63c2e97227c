"""The audit trail is append-only in effect: tampering with it shows."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, update

from syncd.store import audit
from syncd.store.db import make_engine, transaction
from syncd.store.tables import audit_log

T = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)


def fill(engine, n=5):
    for i in range(n):
        with transaction(engine) as conn:
            audit.record(conn, at=T + timedelta(seconds=i), actor="c1", action="decided", request_id=i,
                         target=f"habilitation:role-{i}", detail={"status": "accepted", "comment": "é"})


def test_an_untouched_trail_verifies_and_exports_as_json_lines(engine):
    fill(engine)
    with transaction(engine) as conn:
        assert audit.verify(conn) is None
        lines = [json.loads(line) for line in audit.export_json_lines(conn)]
    assert [l["request_id"] for l in lines] == [0, 1, 2, 3, 4]
    assert lines[1]["prev_hash"] == lines[0]["hash"]


def test_a_changed_row_breaks_the_chain_at_that_row(engine):
    fill(engine)
    with transaction(engine) as conn:
        third = list(audit.rows(conn))[2]["id"]
        conn.execute(update(audit_log).where(audit_log.c.id == third).values(actor="someone-else"))
    with transaction(engine) as conn:
        assert audit.verify(conn) == third


def test_a_deleted_row_breaks_the_chain_at_the_next_one(engine):
    fill(engine)
    with transaction(engine) as conn:
        ids = [r["id"] for r in audit.rows(conn)]
        conn.execute(delete(audit_log).where(audit_log.c.id == ids[1]))
    with transaction(engine) as conn:
        assert audit.verify(conn) == ids[2]


def test_concurrent_writers_never_fork_the_chain(db_url):
    engines = [make_engine(db_url), make_engine(db_url)]

    def write(engine, who):
        for i in range(25):
            with transaction(engine) as conn:
                audit.record(conn, at=T, actor=who, action="ldap_member_added", detail={"i": i})

    threads = [threading.Thread(target=write, args=(e, f"w{n}")) for n, e in enumerate(engines)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with transaction(engines[0]) as conn:
        assert audit.count(conn) == 50
        assert audit.verify(conn) is None
    for e in engines:
        e.dispose()


def test_a_batch_of_rows_is_chained_in_order_onto_the_existing_trail(engine):
    fill(engine, 2)
    with transaction(engine) as conn:
        last = audit.record_many(conn, [audit.Entry(at=T, actor="syncd", action="ldap_member_added", request_id=n,
                                                    detail={"member": f"uid={n}"}) for n in range(10, 15)])
    with transaction(engine) as conn:
        trail = list(audit.rows(conn))
        assert audit.verify(conn) is None
    assert [r["request_id"] for r in trail] == [0, 1, 10, 11, 12, 13, 14]
    assert trail[2]["prev_hash"] == trail[1]["hash"] and trail[-1]["hash"] == last


def test_values_cut_to_their_column_size_still_verify(engine):
    with transaction(engine) as conn:
        audit.record(conn, at=T, actor="x" * 300, action="decided", target="t" * 3000)
    with transaction(engine) as conn:
        assert audit.verify(conn) is None
