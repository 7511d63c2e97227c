"""Mail tests: an outbox schema on SQLite (a temp file) and on PostgreSQL (a throwaway schema)."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, text

from syncd.store.tables import metadata

POSTGRES_URL = os.environ.get("SYNCD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _sqlite_engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'mail.db'}")
    metadata.create_all(engine)
    return engine, lambda: None


def _postgres_engine():
    schema = f"mail_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        admin.dispose()
        message = f"PostgreSQL at {POSTGRES_URL} is not usable ({type(exc).__name__}); set SYNCD_TEST_POSTGRES_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip("SKIPPED LOUDLY: " + message)
    engine = create_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    metadata.create_all(engine)

    def drop():
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return engine, drop


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def mail_engine(request, tmp_path):
    engine, drop = _sqlite_engine(tmp_path) if request.param == "sqlite" else _postgres_engine()
    try:
        yield engine
    finally:
        engine.dispose()
        drop()


@pytest.fixture
def sqlite_engine(tmp_path):
    engine, _ = _sqlite_engine(tmp_path)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
