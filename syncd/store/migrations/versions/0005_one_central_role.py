"""An account is central administrator at most once.

The unique key (account, scope, organisation) treats NULL organisations as distinct, so two
concurrent `syncd decider add EMAIL` could both insert a central row. Duplicates already there
are merged (the oldest row stays), then a partial unique index on central rows stops new ones.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_deciders_one_central_role_per_account"


def upgrade() -> None:
    op.execute("DELETE FROM deciders WHERE organisation_code IS NULL AND id NOT IN "
               "(SELECT min(id) FROM deciders WHERE organisation_code IS NULL GROUP BY account_id)")
    op.create_index(INDEX, "deciders", ["account_id"], unique=True,
                    sqlite_where=sa.text("organisation_code IS NULL"),
                    postgresql_where=sa.text("organisation_code IS NULL"))


def downgrade() -> None:
    op.drop_index(INDEX, table_name="deciders")
