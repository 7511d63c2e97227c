"""Change stamps of the person entries, and the incremental reconciliation's cursor.

* ``ldap_stamps``: per account, the directory's change stamp of its entry (``entryCSN`` on
  OpenLDAP) when syncd last wrote it or saw it equal to the account's fields (``digest`` of the
  fields the entry is computed from: a change made in SQL without bumping ``version`` still
  shows), and the layout fingerprint
  (mappings and syncd release) that equality was computed under. A full reconciliation compares
  dn + stamp and reads whole entries only where they disagree (docs/reconcile.md). A cache: an
  account without a row is simply read in full, so the table starts empty.
* ``reconcile_cursors``: per directory kind, the stamp from which ``syncd reconcile --since-last``
  searches for changed entries.

* ``ix_memberships_role_key_account_id_revoked_at``: a covering index for the reconciliation's
  read of each role's rows (3x faster on SQLite than looking up ``revoked_at`` row by row; it
  makes ``ix_memberships_role_key`` redundant, left in place here).

New tables and an index: nothing to rewrite on SQLite.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COVERING = "ix_memberships_role_key_account_id_revoked_at"


def upgrade() -> None:
    op.create_table(
        "ldap_stamps",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("digest", sa.String(32), nullable=False),
        sa.Column("stamp", sa.String(64), nullable=False),
        sa.Column("layout", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name="pk_ldap_stamps"),
    )
    op.create_table(
        "reconcile_cursors",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("stamp", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_reconcile_cursors"),
    )
    op.create_index(COVERING, "memberships", ["role_key", "account_id", "revoked_at"])


def downgrade() -> None:
    op.drop_index(COVERING, table_name="memberships")
    op.drop_table("reconcile_cursors")
    op.drop_table("ldap_stamps")
