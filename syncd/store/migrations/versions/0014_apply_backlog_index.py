"""The apply backlog's indexes: requests granted and not yet written to LDAP (issue 16).

``ix_requests_apply_backlog`` ``(id)`` and ``ix_requests_apply_backlog_by_status`` ``(status,
id)``, both of the requests whose status is ``accepted`` or ``accepted_tacitly`` and whose
``applied_at`` is null: the rows apply claims in id order (``syncd.store.queue``) and the daemon's
wake-up probe, ``syncd status`` and the metrics count (``syncd.store.health``). Without them those
queries walked every granted request ever applied: with a million requests of history an idle
probe took about 100 ms and an empty claim 170–190 ms, on both engines, every few seconds.
PostgreSQL's planner takes the first, SQLite's (with no statistics) only the second.

Building them reads the whole ``requests`` table twice (about 0.1 s per million rows each here, on
both engines); writes to the table wait meanwhile. They index only the backlog, so they stay small.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As syncd.store.tables.APPLY_BACKLOG, written out: a migration keeps what it created.
_APPLY_BACKLOG = sa.text("applied_at IS NULL AND status IN ('accepted', 'accepted_tacitly')")


def upgrade() -> None:
    op.create_index("ix_requests_apply_backlog", "requests", ["id"],
                    sqlite_where=_APPLY_BACKLOG, postgresql_where=_APPLY_BACKLOG)
    op.create_index("ix_requests_apply_backlog_by_status", "requests", ["status", "id"],
                    sqlite_where=_APPLY_BACKLOG, postgresql_where=_APPLY_BACKLOG)


def downgrade() -> None:
    op.drop_index("ix_requests_apply_backlog_by_status", table_name="requests")
    op.drop_index("ix_requests_apply_backlog", table_name="requests")
