"""Mails keep their content only for a while: ``outbox.content_erased_at``.

The retention job (``syncd.jobs.retention``) empties the context (names, comments, addresses
rendered into the mail) and the last error of mails sent or given up on long enough ago, and
stamps them here; a partial index finds the ones still to do without reading the erased ones.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_outbox_content_kept"


def upgrade() -> None:
    op.add_column("outbox", sa.Column("content_erased_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(INDEX, "outbox", ["created_at"],
                    sqlite_where=sa.text("content_erased_at IS NULL"),
                    postgresql_where=sa.text("content_erased_at IS NULL"))


def downgrade() -> None:
    op.drop_index(INDEX, table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("content_erased_at")
