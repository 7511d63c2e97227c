"""The migrations build exactly the schema of ``syncd.store.tables``, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from syncd.store.db import make_engine
from syncd.store.migrate import alembic_config, current_revision, head_revision, is_up_to_date, upgrade
from syncd.store.tables import metadata

# SQLAlchemy and Alembic cannot read SQLite's indexes on expressions (ix_accounts_ldap_due) back,
# and say so: there the index is checked by name from the catalogue (``_index_names``).
pytestmark = [pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index"),
              pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")]


def _diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def _named_constraints(url: str) -> dict[str, set[tuple[str, str]]]:
    """Every table's primary key, foreign keys, unique and check constraints and indexes, by name."""
    engine = make_engine(url)
    try:
        insp = inspect(engine)
        found = {}
        for table in metadata.sorted_tables:
            t = table.name
            names = {("pk", insp.get_pk_constraint(t)["name"])}
            names |= {("fk", fk["name"]) for fk in insp.get_foreign_keys(t)}
            names |= {("uq", uq["name"]) for uq in insp.get_unique_constraints(t)}
            names |= {("ck", ck["name"]) for ck in insp.get_check_constraints(t)}
            names |= {("ix", name) for name in _index_names(engine, insp, t)}
            found[t] = names
        return found
    finally:
        engine.dispose()


def _index_names(engine, insp, table: str) -> set[str]:
    """The table's own indexes (not those standing for a constraint). SQLAlchemy does not reflect
    SQLite's indexes on expressions (ix_accounts_ldap_due): there they are read from the catalogue,
    where an index standing for a constraint has no SQL of its own."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            return set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                                            "AND sql IS NOT NULL", (table,)).scalars())
    return {ix["name"] for ix in insp.get_indexes(table) if not ix.get("duplicates_constraint")}


def _model_constraints() -> dict[str, set[tuple[str, str]]]:
    kinds = {"PrimaryKeyConstraint": "pk", "ForeignKeyConstraint": "fk",
             "UniqueConstraint": "uq", "CheckConstraint": "ck"}
    found = {}
    for table in metadata.sorted_tables:
        names = {(kinds[type(c).__name__], c.name) for c in table.constraints}
        names |= {("ix", ix.name) for ix in table.indexes}
        found[table.name] = names
    return found


def test_an_upgraded_empty_database_matches_the_models_exactly(db_url):
    assert _diff(db_url) == []


def test_an_upgraded_database_has_every_constraint_and_index_of_the_models_by_name(db_url):
    assert _named_constraints(db_url) == _model_constraints()


def test_the_comparison_would_notice_a_missing_index(empty_db_url):
    upgrade(empty_db_url)  # its own database: the session's shared one must keep its schema
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_memberships_role_key")
    finally:
        engine.dispose()
    assert [d[0] for d in _diff(empty_db_url)] == ["add_index"]


def test_upgrade_is_idempotent(db_url):
    assert current_revision(db_url) == head_revision()
    upgrade(db_url)
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    assert is_up_to_date(db_url)
    assert _diff(db_url) == []


def test_an_empty_database_is_not_up_to_date_until_upgraded(empty_db_url):
    assert current_revision(empty_db_url) is None
    assert not is_up_to_date(empty_db_url)
    upgrade(empty_db_url)
    assert is_up_to_date(empty_db_url)
    assert _diff(empty_db_url) == []


def test_downgrading_to_base_removes_every_table_and_upgrading_again_restores_them(empty_db_url):
    upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    cfg = alembic_config(empty_db_url)
    try:
        command.downgrade(cfg, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    assert current_revision(empty_db_url) is None
    upgrade(empty_db_url)
    assert _diff(empty_db_url) == []


def test_looking_at_a_missing_sqlite_file_does_not_create_it(tmp_path):
    path = tmp_path / "nowhere" / "syncd.db"
    url = f"sqlite:///{path}"
    assert current_revision(url) is None
    assert not is_up_to_date(url)
    assert not path.exists()


def test_upgrade_creates_the_sqlite_file_and_its_folder(tmp_path):
    path = tmp_path / "var" / "syncd.db"
    upgrade(f"sqlite:///{path}")
    assert path.exists()
    assert is_up_to_date(f"sqlite:///{path}")


def test_a_database_migrated_by_a_newer_syncd_is_refused_as_unknown(sqlite_engine):
    from syncd.errors import StoreRejected

    with sqlite_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    url = sqlite_engine.url.render_as_string(hide_password=False)
    assert not is_up_to_date(url)
    with pytest.raises(StoreRejected):
        upgrade(url)


def test_two_upgrades_started_at_once_by_two_processes_both_succeed(empty_db_url):
    """Two ``syncd db upgrade`` (say, two daemons starting) on an empty database at once."""
    # Each child imports everything, says "ready", then waits for "go" so both really race.
    code = ("import sys; from syncd.store.migrate import upgrade; print('ready', flush=True); "
            "sys.stdin.readline(); upgrade(sys.argv[1])")
    procs = [subprocess.Popen([sys.executable, "-c", code, empty_db_url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == b"ready"
    for p in procs:
        p.stdin.write(b"go\n")
        p.stdin.flush()
    outputs = [p.communicate(timeout=60)[0].decode(errors="replace") for p in procs]
    # On failure, say why: the children's last lines, their debug chatter left out.
    tails = ["\n".join(line for line in out.splitlines() if "[debug" not in line)[-3000:] for out in outputs]
    assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(tails)
    assert is_up_to_date(empty_db_url)
    assert _diff(empty_db_url) == []


def test_an_audit_trail_chained_before_sealing_existed_still_verifies_after_the_upgrade(empty_db_url):
    from datetime import datetime, timezone

    from sqlalchemy import text

    from syncd.store import audit
    from syncd.store.db import make_engine, transaction
    upgrade(empty_db_url, "0003")
    engine = make_engine(empty_db_url)
    prev = None
    with transaction(engine) as conn:   # rows as revision 0003 wrote them: chained in id order
        for i in range(3):
            row = {"at": datetime(2026, 11, 20, 9, i, tzinfo=timezone.utc).isoformat(), "actor": "u-claire",
                   "action": "decided", "request_id": i, "target": None, "detail": {"status": "accepted"}}
            digest = audit._digest(prev, row)
            conn.execute(text("INSERT INTO audit_log (at, actor, action, request_id, detail, prev_hash, hash) "
                              "VALUES (:at, :actor, :action, :request_id, :detail, :prev, :hash)"),
                         row | {"at": datetime(2026, 11, 20, 9, i, tzinfo=timezone.utc),
                                "detail": '{"status": "accepted"}', "prev": prev, "hash": digest})
            prev = digest
    upgrade(empty_db_url)
    with transaction(engine) as conn:
        audit.record(conn, at=datetime(2026, 11, 27, tzinfo=timezone.utc), actor="syncd", action="expired")
        assert audit.seal(conn) == 1
        assert audit.verify(conn) is None
        assert [r["seq"] for r in audit.rows(conn)] == [1, 2, 3, 4] and audit.head(conn)[0] == 4
    engine.dispose()


def test_downgrading_below_mobility_refuses_while_mobility_requests_exist(empty_db_url):
    from datetime import datetime, timezone

    from sqlalchemy import insert

    from syncd.store.tables import requests
    upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    cfg = alembic_config(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(requests).values(kind="mobility", email="a@b.fr", organisation_code="CPAM-75",
                                                 submitted_at=datetime.now(timezone.utc)))
        with pytest.raises(RuntimeError, match="mobility"):
            command.downgrade(cfg, "0009")
        with engine.begin() as conn:
            conn.execute(requests.delete())
        command.downgrade(cfg, "0009")
        assert current_revision(empty_db_url) == "0009"
    finally:
        engine.dispose()
    upgrade(empty_db_url)
    assert _diff(empty_db_url) == []
