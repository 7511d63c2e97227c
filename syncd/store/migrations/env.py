"""Alembic environment for syncd (loaded by Alembic from this folder; see ``syncd.store.migrate``).

``syncd.store.migrate.upgrade`` hands over a Connection already inside a transaction
(``config.attributes["connection"]``); otherwise a URL is taken from ``config.attributes["url"]``,
the ``sqlalchemy.url`` main option or ``SYNCD_DATABASE__URL``. Nothing here configures logging.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from syncd.errors import StoreRejected
from syncd.store.db import is_sqlite, make_engine
from syncd.store.migrate import MIGRATION_LOCK_KEY, sqlite_foreign_keys_off
from syncd.store.tables import metadata

config = context.config


def _url() -> str:
    url = (
        config.attributes.get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("SYNCD_DATABASE__URL")
    )
    if not url:
        raise RuntimeError("no database url: pass one to syncd.store.migrate.alembic_config(url)")
    return url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=is_sqlite(connection),  # SQLite can only ALTER by re-creating tables
        transactional_ddl=True,                 # true on SQLite too, thanks to the engine's BEGIN
        compare_type=True,
        compare_server_default=True,
    )


def _migrate(connection: Connection) -> None:
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Serialise concurrent upgrades; released at commit / rollback.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()
        if is_sqlite(connection):
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise StoreRejected(f"migration left rows breaking foreign keys: {broken[:10]}")


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: print the SQL instead of running it."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        _migrate(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            if is_sqlite(connection):
                sqlite_foreign_keys_off(connection)
            _configure(connection)
            _migrate(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
