"""Account versions: LDAP is behind an account exactly while ldap_version differs from version.

Comparing timestamps missed a change made in the same instant as a write to LDAP, and lost a
change committed while that write was in flight. Existing accounts already written to LDAP
start in step (version 1, ldap_version 1).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("ldap_version", sa.Integer(), nullable=True))
    op.execute("UPDATE accounts SET ldap_version = 1 WHERE ldap_synced_at IS NOT NULL "
               "AND (updated_at IS NULL OR updated_at <= ldap_synced_at)")


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("ldap_version")
        batch.drop_column("version")
