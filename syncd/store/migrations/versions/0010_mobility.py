"""Mobility: a request kind ``mobility`` (a person moves to another organisation, issue #14).

The portal writes ``kind='mobility'`` with the requester's e-mail and the new organisation's
code (docs/queue.md). On SQLite the CHECK constraint changes through a batch rebuild of
``requests``; the audit triggers live on ``audit_log`` and are not touched.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = "kind in ('account','habilitation','renewal')"
NEW_KINDS = "kind in ('account','habilitation','renewal','mobility')"


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_constraint("kind", type_="check")
        batch.create_check_constraint("kind", NEW_KINDS)


def downgrade() -> None:
    # The old schema has no way to say "mobility", and those requests are referenced by the
    # append-only audit log: the downgrade refuses rather than lose or disguise them.
    count = op.get_bind().execute(sa.text("SELECT count(*) FROM requests WHERE kind = 'mobility'")).scalar()
    if count:
        raise RuntimeError(f"{count} mobility request(s) exist: revision 0009 cannot hold them")
    with op.batch_alter_table("requests") as batch:
        batch.drop_constraint("kind", type_="check")
        batch.create_check_constraint("kind", OLD_KINDS)
