"""The audit trail is append-only in effect: rows are sealed into a hash chain, and tampering shows."""

from __future__ import annotations

import contextlib
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, text, update

from syncd.errors import StoreRejected
from syncd.store import audit
from syncd.store.db import make_engine, transaction
from syncd.store.tables import audit_log

T = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)


def fill(engine, n=5, first=0):
    for i in range(first, first + n):
        with transaction(engine) as conn:
            audit.record(conn, at=T + timedelta(seconds=i), actor="c1", action="decided", request_id=i,
                         target=f"habilitation:role-{i}", detail={"status": "accepted", "comment": "é"})


def seal(engine) -> int:
    with transaction(engine) as conn:
        return audit.seal(conn)


def _migration():
    import importlib.util
    from pathlib import Path

    import syncd.store
    path = Path(syncd.store.__file__).parent / "migrations" / "versions" / "0004_audit_sealing.py"
    spec = importlib.util.spec_from_file_location("audit_sealing_migration", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def as_the_owner_without_triggers(conn):
    """What the database's owner can do: the triggers stop mistakes, the chain shows tampering.
    They are put back in the same transaction, so the next test has them."""
    m = _migration()
    if conn.dialect.name == "postgresql":
        conn.execute(text("DROP TRIGGER audit_log_append_only ON audit_log"))
        yield
        conn.execute(text(m.POSTGRESQL_TRIGGERS[1]))
    else:
        conn.execute(text("DROP TRIGGER audit_log_sealed_rows_are_final"))
        conn.execute(text("DROP TRIGGER audit_log_rows_are_never_deleted"))
        yield
        for statement in m.SQLITE_TRIGGERS:
            conn.execute(text(statement))


def test_rows_wait_unsealed_until_sealed_then_verify_and_export_in_chain_order(engine):
    fill(engine)
    with transaction(engine) as conn:
        assert audit.unsealed(conn) == 5 and list(audit.rows(conn)) == [] and audit.head(conn) is None
        assert audit.verify(conn) is None
    assert seal(engine) == 5
    with transaction(engine) as conn:
        assert audit.unsealed(conn) == 0 and audit.verify(conn) is None
        lines = [json.loads(line) for line in audit.export_json_lines(conn)]
        assert audit.head(conn) == (5, lines[-1]["hash"])
    assert [l["request_id"] for l in lines] == [0, 1, 2, 3, 4]
    assert [l["seq"] for l in lines] == [1, 2, 3, 4, 5]
    assert lines[0]["prev_hash"] is None and lines[1]["prev_hash"] == lines[0]["hash"]


def test_sealing_again_chains_new_rows_onto_the_head_and_an_export_resumes_after_a_seq(engine):
    fill(engine, 3)
    seal(engine)
    with transaction(engine) as conn:
        head = audit.head(conn)
    fill(engine, 2, first=10)
    assert seal(engine) == 2 and seal(engine) == 0
    with transaction(engine) as conn:
        resumed = [json.loads(line) for line in audit.export_json_lines(conn, since_seq=head[0])]
        assert audit.verify(conn) is None
    assert [l["request_id"] for l in resumed] == [10, 11]
    assert resumed[0]["prev_hash"] == head[1]


def test_a_row_committed_after_a_later_one_was_sealed_is_chained_after_it(engine):
    late = engine.connect()
    transaction_of_late = late.begin()
    audit.record(late, at=T, actor="slow", action="decided", request_id=1)   # takes the lower id, commits last
    if engine.dialect.name == "sqlite":
        transaction_of_late.commit()        # SQLite has one writer: nothing can overtake it
        fill(engine, 1, first=2)
        seal(engine)
    else:
        fill(engine, 1, first=2)
        assert seal(engine) == 1, "the uncommitted row is not visible, so not sealed"
        transaction_of_late.commit()
        assert seal(engine) == 1
    late.close()
    with transaction(engine) as conn:
        trail = list(audit.rows(conn))
        assert audit.verify(conn) is None and audit.unsealed(conn) == 0
    expected = [1, 2] if engine.dialect.name == "sqlite" else [2, 1]
    assert [r["request_id"] for r in trail] == expected


def test_the_database_refuses_to_change_a_sealed_row_or_delete_any_row(engine):
    fill(engine, 2)
    seal(engine)
    fill(engine, 1, first=5)
    for change in (update(audit_log).where(audit_log.c.request_id == 0).values(actor="someone-else"),
                   delete(audit_log).where(audit_log.c.request_id == 0),
                   delete(audit_log).where(audit_log.c.request_id == 5)):
        with pytest.raises(StoreRejected, match="append-only"):
            with transaction(engine) as conn:
                conn.execute(change)
    with transaction(engine) as conn:
        assert audit.count(conn) == 3 and audit.verify(conn) is None


def test_a_changed_row_breaks_the_chain_at_that_row(engine):
    fill(engine)
    seal(engine)
    with transaction(engine) as conn:
        third = list(audit.rows(conn))[2]["id"]
        with as_the_owner_without_triggers(conn):
            conn.execute(update(audit_log).where(audit_log.c.id == third).values(actor="someone-else"))
    with transaction(engine) as conn:
        assert audit.verify(conn) == third


def test_a_deleted_row_breaks_the_chain_at_the_next_one(engine):
    fill(engine)
    seal(engine)
    with transaction(engine) as conn:
        ids = [r["id"] for r in audit.rows(conn)]
        with as_the_owner_without_triggers(conn):
            conn.execute(delete(audit_log).where(audit_log.c.id == ids[1]))
    with transaction(engine) as conn:
        assert audit.verify(conn) == ids[2]


def test_a_row_renumbered_to_hide_a_deletion_still_breaks_the_chain(engine):
    fill(engine, 3)
    seal(engine)
    with transaction(engine) as conn:
        ids = [r["id"] for r in audit.rows(conn)]
        with as_the_owner_without_triggers(conn):
            conn.execute(delete(audit_log).where(audit_log.c.id == ids[1]))
            conn.execute(update(audit_log).where(audit_log.c.id == ids[2]).values(seq=2))
    with transaction(engine) as conn:
        assert audit.verify(conn) == ids[2]


def test_concurrent_writers_and_sealers_never_fork_the_chain(db_url):
    engines = [make_engine(db_url), make_engine(db_url)]

    def write_and_seal(engine, who):
        for i in range(25):
            with transaction(engine) as conn:
                audit.record(conn, at=T, actor=who, action="ldap_member_added", detail={"i": i})
            if i % 5 == 4:
                seal(engine)

    threads = [threading.Thread(target=write_and_seal, args=(e, f"w{n}")) for n, e in enumerate(engines)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seal(engines[0])
    with transaction(engines[0]) as conn:
        assert audit.count(conn) == 50 and audit.unsealed(conn) == 0
        assert audit.verify(conn) is None
        assert [r["seq"] for r in audit.rows(conn)] == list(range(1, 51))
    for e in engines:
        e.dispose()


def test_a_batch_of_rows_is_chained_in_order_onto_the_existing_trail(engine):
    fill(engine, 2)
    with transaction(engine) as conn:
        audit.record_many(conn, [audit.Entry(at=T, actor="syncd", action="ldap_member_added", request_id=n,
                                             detail={"member": f"uid={n}"}) for n in range(10, 15)])
    seal(engine)
    with transaction(engine) as conn:
        trail = list(audit.rows(conn))
        assert audit.verify(conn) is None
        assert audit.head(conn)[1] == trail[-1]["hash"]
    assert [r["request_id"] for r in trail] == [0, 1, 10, 11, 12, 13, 14]
    assert trail[2]["prev_hash"] == trail[1]["hash"]


def test_sealing_works_through_batches_smaller_than_what_waits(engine):
    fill(engine, 7)
    with transaction(engine) as conn:
        assert audit.seal(conn, limit=3) == 3
    with transaction(engine) as conn:
        assert audit.seal(conn, limit=3) == 3 and audit.seal(conn, limit=3) == 1
        assert audit.verify(conn) is None and [r["seq"] for r in audit.rows(conn)] == list(range(1, 8))


def test_values_cut_to_their_column_size_still_verify(engine):
    with transaction(engine) as conn:
        audit.record(conn, at=T, actor="x" * 300, action="decided", target="t" * 3000)
    seal(engine)
    with transaction(engine) as conn:
        assert audit.verify(conn) is None
