"""SQL fixtures: every test that touches the store runs on SQLite and on PostgreSQL.

* ``db_url`` - parametrised ``sqlite`` / ``postgresql``: the URL of an upgraded, empty database.
  SQLite: a fresh file per test. PostgreSQL: one database per test session
  (``syncd_test_<random>``, created on the server's ``test`` database, dropped at the end), its
  tables truncated (``RESTART IDENTITY CASCADE``) before each test.
* ``engine`` - ``make_engine(db_url)``, disposed after the test.
* ``sqlite_engine`` - an upgraded SQLite database only, for tests that need just one engine.
* ``postgres_url`` - PostgreSQL only (not parametrised): the session database, emptied.
* ``empty_db_url`` - parametrised like ``db_url`` but *not* upgraded (a new SQLite file, or a new
  PostgreSQL schema set as the search_path): for migration tests.

PostgreSQL is expected on 127.0.0.1:5432 (trust auth, user ``postgres``, database ``test``);
``SYNCD_TEST_POSTGRES_URL`` overrides that admin URL. When the server cannot be reached the
PostgreSQL tests are skipped with a loud reason - unless ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from syncd.store.db import make_engine
from syncd.store.migrate import upgrade
from syncd.store.tables import metadata
from tests import run_summary

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DB_PARAMS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _admin_url() -> str:
    return os.environ.get("SYNCD_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)


def _admin_engine() -> Engine:
    # Plain SQLAlchemy: CREATE / DROP DATABASE must run outside a transaction.
    return create_engine(
        _admin_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"connect_timeout": 3}
    )


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An AUTOCOMMIT engine on the admin database, or skip (fail in CI) if unreachable."""
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server for us"
        engine.dispose()
        where = make_url(_admin_url()).render_as_string(hide_password=True)
        problem = f"PostgreSQL UNREACHABLE at {where} ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        if _in_ci():
            pytest.fail(f"{problem} - CI=true, so PostgreSQL tests fail instead of skipping", pytrace=False)
        reason = f"{problem} - PostgreSQL tests NOT RUN; set CI=true to make this a failure"
        run_summary.tests_skipped("PostgreSQL tests skipped", reason)
        pytest.skip(reason)
    yield engine
    engine.dispose()


def _create_database(admin: Engine) -> str:
    name = f"syncd_test_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(_admin_url()).set(database=name).render_as_string(hide_password=False)


def _drop_database(admin: Engine, url: str) -> None:
    name = make_url(url).database
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_session_url(postgres_admin: Engine) -> Iterator[str]:
    """One upgraded PostgreSQL database for the whole session."""
    url = _create_database(postgres_admin)
    try:
        upgrade(url)
        yield url
    finally:
        _drop_database(postgres_admin, url)


def _truncate_all(url: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        with engine.begin() as conn:
            # A test that leaked an open transaction would make TRUNCATE wait for ever: fail instead.
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(params=DB_PARAMS)
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """The URL of an upgraded, empty database (SQLite file, or the session's PostgreSQL one)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'syncd.db'}"
        upgrade(url)
        return url
    url = request.getfixturevalue("postgres_session_url")
    _truncate_all(url)
    return url


@pytest.fixture
def postgres_url(postgres_session_url: str) -> str:
    """PostgreSQL only: the session's upgraded database, emptied (for PostgreSQL-specific tests)."""
    _truncate_all(postgres_session_url)
    return postgres_session_url


@pytest.fixture(params=DB_PARAMS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """The URL of a brand-new database with no tables at all (not upgraded).

    On PostgreSQL, a fresh schema of the session database, made the connection's search_path
    (much faster than CREATE DATABASE; every statement syncd issues is unqualified).
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    session_url = request.getfixturevalue("postgres_session_url")
    schema = f"empty_{secrets.token_hex(6)}"
    admin = create_engine(session_url, poolclass=NullPool)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(session_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path) -> Iterator[Engine]:
    """An engine on an upgraded, empty SQLite database (not parametrised)."""
    url = f"sqlite:///{tmp_path / 'syncd-sqlite.db'}"
    upgrade(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()
