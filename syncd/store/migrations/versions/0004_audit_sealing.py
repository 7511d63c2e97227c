"""Audit rows are sealed into the hash chain after their transaction, not inside it.

Chaining inside each writer's transaction made every decision wait for the chain's lock on
PostgreSQL. Rows now arrive with ``seq``, ``prev_hash`` and ``hash`` NULL, and the sealing job
chains them in ``seq`` order. Rows written before this revision were chained in ``id`` order
already: they keep their hashes and take ``seq = id``.

Triggers now refuse to change a sealed row or to delete any row. They stop a mistaken script, not
the database's owner, who can drop them: what shows deliberate tampering is the chain.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

SEALED_ROW_MESSAGE = "audit_log is append-only: a sealed row cannot change"
DELETE_MESSAGE = "audit_log is append-only: rows are never deleted"

SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER audit_log_sealed_rows_are_final BEFORE UPDATE ON audit_log
        WHEN OLD.seq IS NOT NULL BEGIN SELECT RAISE(ABORT, '{SEALED_ROW_MESSAGE}'); END""",
    f"""CREATE TRIGGER audit_log_rows_are_never_deleted BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, '{DELETE_MESSAGE}'); END""",
)
POSTGRESQL_TRIGGERS = (
    f"""CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN RAISE EXCEPTION '{DELETE_MESSAGE}'; END IF;
            IF OLD.seq IS NOT NULL THEN RAISE EXCEPTION '{SEALED_ROW_MESSAGE}'; END IF;
            RETURN NEW;
        END $$""",
    """CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
)


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("seq", BigId, nullable=True))
        batch.alter_column("hash", existing_type=sa.String(64), nullable=True)
        batch.create_unique_constraint("uq_audit_log_seq", ["seq"])
    op.execute("UPDATE audit_log SET seq = id")
    op.create_index("ix_audit_log_unsealed", "audit_log", ["id"], sqlite_where=sa.text("seq IS NULL"),
                    postgresql_where=sa.text("seq IS NULL"))
    for statement in POSTGRESQL_TRIGGERS if op.get_bind().dialect.name == "postgresql" else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER audit_log_sealed_rows_are_final")
        op.execute("DROP TRIGGER audit_log_rows_are_never_deleted")
    # The old chain was by id: rows not sealed yet, or sealed out of id order, cannot go back.
    op.drop_index("ix_audit_log_unsealed", table_name="audit_log")
    op.execute("DELETE FROM audit_log WHERE seq IS NULL")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint("uq_audit_log_seq", type_="unique")
        batch.drop_column("seq")
        batch.alter_column("hash", existing_type=sa.String(64), nullable=False)
