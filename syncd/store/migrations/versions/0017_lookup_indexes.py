"""The lookups the portal's screens and intake run per call, read through indexes.

* ``ix_accounts_email_lower``: ``lower(email)`` of the accounts (``repo.account_by_email``: intake,
  once per request taken in; the forgotten-password form; decisions on account requests);
* ``ix_accounts_primary_organisation``: an organisation's people (a correspondent's page of the
  rights held in their organisation);
* ``ix_memberships_granted_by_request``: the memberships by the request that granted them (a
  requester's history, how each right granted ended);
* ``ix_password_resets_account_id``: an account's password links (those still open are spent
  when its password is set);
* ``ix_review_items_account_id``: an account's rights under review.

The last two are also what deleting an account (an account request refused before its entry
was written) checks for its foreign keys.

Without them each lookup read its whole table: about 20 ms per 150,000 accounts, and as long per
150,000 memberships or links, on each call (the rights page: ~260 ms per 300,000 memberships).

Building them reads the ``accounts`` table twice, the others once each;
writes to them wait meanwhile.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_accounts_email_lower", "accounts", [sa.text("lower(email)")])
    op.create_index("ix_accounts_primary_organisation", "accounts", ["primary_organisation"])
    op.create_index("ix_memberships_granted_by_request", "memberships", ["granted_by_request"])
    op.create_index("ix_password_resets_account_id", "password_resets", ["account_id"])
    op.create_index("ix_review_items_account_id", "review_items", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_review_items_account_id", table_name="review_items")
    op.drop_index("ix_password_resets_account_id", table_name="password_resets")
    op.drop_index("ix_memberships_granted_by_request", table_name="memberships")
    op.drop_index("ix_accounts_primary_organisation", table_name="accounts")
    op.drop_index("ix_accounts_email_lower", table_name="accounts")
