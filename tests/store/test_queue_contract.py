"""The examples of docs/queue.md (the portal's contract) work as written, on both engines."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from syncd.store.db import transaction
from syncd.store.queue import claim_requests
from syncd.store.tables import requests

DOC = Path(__file__).resolve().parents[2] / "docs" / "queue.md"


def _examples(engine_name: str) -> dict[str, str]:
    """{title: statement} for every "-- <engine>: <title>" statement in the doc's SQL blocks."""
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    found = {}
    for block in blocks:
        for chunk in re.split(r"\n(?=-- )", "\n" + block):
            chunk = chunk.strip()
            head, _, body = chunk.partition("\n")
            match = re.fullmatch(r"-- (sqlite|postgresql): (.+)", head)
            if match and match.group(1) == engine_name:
                found[match.group(2)] = body.strip().rstrip(";")
    return found


def test_the_doc_has_the_same_examples_for_both_engines():
    assert set(_examples("sqlite")) == set(_examples("postgresql")) == {
        "an account request", "a habilitation request for an existing account", "the requester's history",
    }


def test_the_portal_examples_insert_requests_syncd_can_take_in(engine):
    examples = _examples(engine.dialect.name)
    before = datetime.now(timezone.utc)
    for _ in range(2):  # inserting again with the same portal_ref does nothing
        with transaction(engine) as conn:
            conn.exec_driver_sql(examples["an account request"])
            conn.exec_driver_sql(examples["a habilitation request for an existing account"])
    with transaction(engine, readonly=True) as conn:
        rows = conn.execute(select(requests).order_by(requests.c.id)).mappings().all()
        history = conn.exec_driver_sql(examples["the requester's history"]).all()

    assert [(r["kind"], r["portal_ref"], r["status"]) for r in rows] == [
        ("account", "portal-a-1001", "new"), ("habilitation", "portal-h-2001", "new"),
    ]
    account = rows[0]
    assert account["internal"] is True and account["terms_accepted"] is True
    assert account["civility"] == "Mme" and account["attempts"] == 0
    for row in rows:
        assert row["submitted_at"].tzinfo == timezone.utc
        assert before - timedelta(seconds=5) <= row["submitted_at"] <= datetime.now(timezone.utc) + timedelta(seconds=5)
    assert len(history) == 2
    now = datetime.now(timezone.utc)
    assert claim_requests(engine, statuses=["new"], worker_id="intake", now=now, lease_seconds=60,
                          limit=10) == [r["id"] for r in rows]


@pytest.mark.parametrize("written, expected", [
    ("2026-11-02 09:30:00", datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)),
    ("2026-11-02 09:30:00.250", datetime(2026, 11, 2, 9, 30, 0, 250000, tzinfo=timezone.utc)),
    ("2026-11-02T10:30:00+01:00", datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)),
])
def test_times_the_portal_writes_in_sqlite_are_read_as_utc(sqlite_engine, written, expected):
    with transaction(sqlite_engine) as conn:
        conn.exec_driver_sql(
            "INSERT INTO requests (kind, submitted_at, email, role_key) VALUES ('habilitation', ?, 'a@b.fr', 'r')",
            (written,),
        )
        assert conn.execute(select(requests.c.submitted_at)).scalar_one() == expected
