"""Parked LDAP writes of accounts and memberships: a poison item steps aside, with its reason.

Requests got ``parked_at`` / ``parked_reason`` in 0007. An account's LDAP write and a
membership's (its removal from a group) had no place to record a failure: a permanently refused
account was picked first on every pass and kept the accounts behind it out of LDAP. Each now
carries its own attempts, next attempt (per-item back-off after a temporary failure), last error,
and the time and reason it was parked (refused for good: no retry until ``syncd parked retry``).

The account columns are prefixed ``ldap_`` like ``ldap_version``: they describe the LDAP write,
not the account. On SQLite the columns are added in batch mode.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACCOUNTS_PARKED = "ix_accounts_ldap_parked_at"
MEMBERSHIPS_PARKED = "ix_memberships_parked_at"


def _write_state(prefix: str) -> list[sa.Column]:
    return [sa.Column(f"{prefix}attempts", sa.Integer(), server_default="0", nullable=False),
            sa.Column(f"{prefix}next_attempt_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column(f"{prefix}last_error", sa.Text(), nullable=True),
            sa.Column(f"{prefix}parked_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column(f"{prefix}parked_reason", sa.Text(), nullable=True)]


def upgrade() -> None:
    for table, prefix, index in (("accounts", "ldap_", ACCOUNTS_PARKED), ("memberships", "", MEMBERSHIPS_PARKED)):
        with op.batch_alter_table(table) as batch:
            for column in _write_state(prefix):
                batch.add_column(column)
        op.create_index(index, table, [f"{prefix}parked_at"],
                        sqlite_where=sa.text(f"{prefix}parked_at IS NOT NULL"),
                        postgresql_where=sa.text(f"{prefix}parked_at IS NOT NULL"))


def downgrade() -> None:
    for table, prefix, index in (("accounts", "ldap_", ACCOUNTS_PARKED), ("memberships", "", MEMBERSHIPS_PARKED)):
        op.drop_index(index, table_name=table)
        with op.batch_alter_table(table) as batch:
            for column in reversed(_write_state(prefix)):
                batch.drop_column(column.name)
