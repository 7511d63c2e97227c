"""Schema migrations (Alembic), configured in code: no ``alembic.ini`` is needed at runtime.

``syncd db upgrade`` calls ``upgrade(url)``; the daemon checks ``is_up_to_date(url)`` at start.

``upgrade`` runs every pending migration in **one transaction** on both engines (PostgreSQL
has transactional DDL; on SQLite the engine's own ``BEGIN IMMEDIATE`` makes DDL transactional
too), so a failed upgrade leaves the schema as it was. Two upgrades started at once are
serialised (a PostgreSQL advisory lock; the SQLite write lock), the second finding nothing to do.
On SQLite, ``PRAGMA foreign_keys`` is switched off while migrating (batch migrations re-create
tables, and dropping a referenced table with foreign keys on would cascade-delete rows); instead
``PRAGMA foreign_key_check`` must come back empty before the transaction commits.

For developers, a new revision (a draft to be checked by hand) is made with::

    from alembic import command
    from syncd.store.migrate import alembic_config
    command.revision(alembic_config("sqlite:///scratch.db"), "what changes", autogenerate=True)

after ``upgrade("sqlite:///scratch.db")``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog
import tenacity
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine, make_url

from syncd.errors import StoreRejected, StoreUnavailable
from syncd.store.db import _parse_url, is_sqlite, make_engine, transaction, translate_errors

log = structlog.get_logger(__name__)

__all__ = ["upgrade", "current_revision", "head_revision", "is_up_to_date", "alembic_config"]

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")

# Key of the PostgreSQL advisory lock that serialises concurrent upgrades ("syncd" in ASCII).
MIGRATION_LOCK_KEY = 0x73796E6364


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` for syncd's migrations, optionally bound to ``url``."""
    cfg = Config()
    # ConfigParser interpolates "%": escape it in the folder name.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        cfg.attributes["url"] = url  # not a main option: no interpolation, never written anywhere
    return cfg


def head_revision() -> str:
    """The revision the code expects the database to be at."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:  # pragma: no cover - a packaging mistake
        raise StoreRejected(f"the migration history has {len(heads)} heads, expected one: {heads}")
    return heads[0]


def upgrade(url: str, revision: str = "head") -> None:
    """See ``_upgrade_once``; a temporary failure (another process held the database's write lock
    longer than the busy timeout, a dropped connection) is retried: a migration that finds the
    database already at its target does nothing, so trying again is safe."""
    retrying = tenacity.Retrying(retry=tenacity.retry_if_exception_type(StoreUnavailable),
                                 stop=tenacity.stop_after_attempt(3),
                                 wait=tenacity.wait_random_exponential(multiplier=0.5, max=5), reraise=True)
    for attempt in retrying:
        with attempt:
            _upgrade_once(url, revision)


def _upgrade_once(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision`` (default: the latest). Idempotent.

    Creates the SQLite file (and its folder) if missing. Safe against another *process*
    upgrading at the same time; not thread-safe (Alembic's context is process-global). Raises ``StoreUnavailable`` if the
    database cannot be reached or is locked, ``StoreRejected`` if a migration fails or the
    database is at a revision this code does not know (a newer syncd migrated it).
    """
    parsed = _parse_url(url)
    if parsed.get_backend_name() == "sqlite" and not _is_sqlite_memory(url):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    try:
        before = _current_revision(engine)
        log.info("store_upgrade_started", database=_safe(url), from_revision=before, target=revision)
        cfg = alembic_config(url)
        with translate_errors(), _alembic_errors():
            with engine.connect() as conn:
                if is_sqlite(conn):
                    sqlite_foreign_keys_off(conn)
                with conn.begin():
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, revision)
        after = _current_revision(engine)
        log.info("store_upgraded", database=_safe(url), from_revision=before, revision=after)
    finally:
        engine.dispose()  # the migration connection had foreign keys off: never reuse it


def current_revision(url: str) -> str | None:
    """The revision the database is at; ``None`` for an empty database (or no SQLite file)."""
    if sqlite_file_missing(url):
        return None
    engine = make_engine(url)
    try:
        return _current_revision(engine)
    finally:
        engine.dispose()


def is_up_to_date(url: str) -> bool:
    """Whether the database is exactly at the code's head revision."""
    return current_revision(url) == head_revision()


# --------------------------------------------------------------------------- helpers


def sqlite_foreign_keys_off(conn: Connection) -> None:
    """Switch SQLite foreign key enforcement off on this connection, before any transaction.

    The PRAGMA is a no-op inside a transaction, so it goes straight to the driver (SQLAlchemy
    would open one first). Used by migrations only; the connection must not be pooled again.
    """
    if conn.in_transaction():
        raise RuntimeError("PRAGMA foreign_keys cannot change inside a transaction")
    conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")


def _current_revision(engine: Engine) -> str | None:
    with transaction(engine, readonly=True) as conn, _alembic_errors():
        heads = MigrationContext.configure(conn).get_current_heads()
    if len(heads) > 1:
        raise StoreRejected(f"the database records several migration heads: {sorted(heads)}")
    return heads[0] if heads else None


@contextmanager
def _alembic_errors() -> Iterator[None]:
    try:
        yield
    except (CommandError, RevisionError) as exc:
        raise StoreRejected(f"migration failed: {exc}") from exc


def _is_sqlite_memory(url: str) -> bool:
    parsed = make_url(url)
    return parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"


def sqlite_file_missing(url: str) -> bool:
    """Whether ``url`` names a SQLite file that does not exist (connecting would create it)."""
    parsed = _parse_url(url)
    if parsed.get_backend_name() != "sqlite" or _is_sqlite_memory(url):
        return False
    if parsed.database.startswith("file:"):  # a URI filename: let SQLite deal with it
        return False
    return not Path(parsed.database).exists()


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
