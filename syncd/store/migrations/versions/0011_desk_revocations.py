"""The correspondents' desk: revocations of desk links (issue #15).

* ``desk_revocations``: one row per ``syncd desk revoke``. Every desk link issued to the account
  at or before ``revoked_at``, and every desk session opened with such a link, is refused from
  then on, by every web process (``syncd.web.desk_auth``). Rows are kept: they are the record of
  who revoked what, and when.

A new table: nothing to rewrite.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "desk_revocations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_desk_revocations"),
    )
    op.create_index("ix_desk_revocations_account_id", "desk_revocations", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_desk_revocations_account_id", table_name="desk_revocations")
    op.drop_table("desk_revocations")
