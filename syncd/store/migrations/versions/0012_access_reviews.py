"""Access reviews: review campaigns and the rights they review (issue #15, part 3).

Two new tables, nothing changed in the others.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "review_campaigns",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("organisation_code", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(100), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unanswered", sa.String(16), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["organisation_code"], ["organisations.code"],
                                name="fk_review_campaigns_organisation_code_organisations"),
        sa.CheckConstraint("state in ('open','awaiting_reviewer','closed')", name="state"),
        sa.CheckConstraint("unanswered in ('keep','withdraw')", name="unanswered"),
        sa.PrimaryKeyConstraint("id", name="pk_review_campaigns"),
    )
    op.create_index("ix_review_campaigns_one_under_way", "review_campaigns", ["organisation_code"], unique=True,
                    sqlite_where=sa.text("closed_at IS NULL"), postgresql_where=sa.text("closed_at IS NULL"))
    op.create_table(
        "review_items",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", BigId, nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("role_key", sa.String(64), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(24), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["campaign_id"], ["review_campaigns.id"],
                                name="fk_review_items_campaign_id_review_campaigns"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_review_items_account_id_accounts"),
        sa.UniqueConstraint("campaign_id", "account_id", "role_key",
                            name="uq_review_items_campaign_id_account_id_role_key"),
        sa.CheckConstraint("decision is null or decision in "
                           "('confirmed','withdrawn','kept_tacitly','withdrawn_unanswered','ended')",
                           name="decision"),
        sa.PrimaryKeyConstraint("id", name="pk_review_items"),
    )
    op.create_index("ix_review_items_campaign_id_decision", "review_items", ["campaign_id", "decision"])


def downgrade() -> None:
    op.drop_index("ix_review_items_campaign_id_decision", table_name="review_items")
    op.drop_table("review_items")
    op.drop_index("ix_review_campaigns_one_under_way", table_name="review_campaigns")
    op.drop_table("review_campaigns")
