"""`syncd audit`: verify seals what waits, says where the head is; export resumes after a seq."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from syncd.cli import main
from syncd.store import audit
from syncd.store.db import make_engine, transaction

T = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def config(cli_config):
    assert main(["-c", str(cli_config), "db", "upgrade"]) == 0
    return cli_config


def written(config, *request_ids):
    engine = make_engine(f"sqlite:///{config.parent / 'syncd.db'}")
    with transaction(engine) as conn:
        audit.record_many(conn, [audit.Entry(at=T, actor="u-claire", action="decided", request_id=i)
                                 for i in request_ids])
    return engine


def test_verify_seals_what_waits_and_prints_the_head_to_keep_outside_the_database(config, capsys):
    engine = written(config, 1, 2, 3)
    assert main(["-c", str(config), "audit", "verify"]) == 0
    out = capsys.readouterr().out
    with transaction(engine) as conn:
        seq, digest = audit.head(conn)
    assert seq == 3 and f"3 rows sealed, head hash {digest}; 0 waiting" in out


def test_export_resumes_after_the_last_exported_seq(config, capsys):
    engine = written(config, 1, 2)
    assert main(["-c", str(config), "audit", "export"]) == 0
    first = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    written(config, 3)
    assert main(["-c", str(config), "audit", "export", "--since", str(first[-1]["seq"])]) == 0
    second = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["request_id"] for r in first] == [1, 2] and [r["request_id"] for r in second] == [3]
    assert second[0]["prev_hash"] == first[-1]["hash"]
    engine.dispose()


def test_export_without_sealing_says_what_it_left_out(config, capsys):
    written(config, 1)
    assert main(["-c", str(config), "audit", "export", "--no-seal"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "1 rows wait for sealing" in captured.err


def test_verify_exits_non_zero_and_names_the_row_when_the_trail_was_tampered_with(config, capsys):
    engine = written(config, 1, 2, 3)
    assert main(["-c", str(config), "audit", "verify"]) == 0
    with transaction(engine) as conn:
        conn.execute(text("DROP TRIGGER audit_log_sealed_rows_are_final"))   # as the database's owner could
        conn.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE request_id = 2"))
        tampered = conn.execute(text("SELECT id FROM audit_log WHERE request_id = 2")).scalar()
    capsys.readouterr()
    assert main(["-c", str(config), "audit", "verify"]) == 1
    assert f"BROKEN at row {tampered}" in capsys.readouterr().err
