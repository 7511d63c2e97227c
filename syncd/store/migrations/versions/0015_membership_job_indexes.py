"""The periodic jobs' memberships: revoked ones still in LDAP, held ones that expire.

* ``ix_memberships_removals_due``: ``(account_id, role_key)`` of the memberships revoked and not
  yet out of their LDAP group (``grants.removals_due``, read by the accounts job at each apply
  interval);
* ``ix_memberships_expiring``: ``(expires_at)`` of the memberships held with an expiry
  (``grants.expiring``, read by the expiry job each minute).

Without them each read every membership (3–4 ms per 70,000 rows here, on both engines; about
50 ms at a million). Building them reads the ``memberships`` table twice; writes wait meanwhile.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REMOVALS_DUE = sa.text("revoked_at IS NOT NULL AND applied_at IS NULL")
_EXPIRING = sa.text("revoked_at IS NULL AND expires_at IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_memberships_removals_due", "memberships", ["account_id", "role_key"],
                    sqlite_where=_REMOVALS_DUE, postgresql_where=_REMOVALS_DUE)
    op.create_index("ix_memberships_expiring", "memberships", ["expires_at"],
                    sqlite_where=_EXPIRING, postgresql_where=_EXPIRING)


def downgrade() -> None:
    op.drop_index("ix_memberships_expiring", table_name="memberships")
    op.drop_index("ix_memberships_removals_due", table_name="memberships")
