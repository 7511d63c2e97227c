"""Three lookups the portal's screens and intake run per request, read through indexes.

* ``ix_accounts_email_lower``: ``lower(email)`` of the accounts (``repo.account_by_email``: intake,
  once per request taken in; the forgotten-password form; decisions on account requests);
* ``ix_memberships_granted_by_request``: the memberships by the request that granted them (a
  requester's history, how each right granted ended);
* ``ix_password_resets_open_by_account``: an account's password links still open (spent when its
  password is set).

Without them each lookup read its whole table: about 20 ms per 150,000 accounts, and as long per
150,000 memberships or links, on each call.

Building them reads the ``accounts``, ``memberships`` and ``password_resets`` tables once each;
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

_OPEN_LINK = sa.text("used_at IS NULL")


def upgrade() -> None:
    op.create_index("ix_accounts_email_lower", "accounts", [sa.text("lower(email)")])
    op.create_index("ix_memberships_granted_by_request", "memberships", ["granted_by_request"])
    op.create_index("ix_password_resets_open_by_account", "password_resets", ["account_id"],
                    sqlite_where=_OPEN_LINK, postgresql_where=_OPEN_LINK)


def downgrade() -> None:
    op.drop_index("ix_password_resets_open_by_account", table_name="password_resets")
    op.drop_index("ix_memberships_granted_by_request", table_name="memberships")
    op.drop_index("ix_accounts_email_lower", table_name="accounts")
