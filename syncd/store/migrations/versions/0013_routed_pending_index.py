"""The tacit sweep's index: routed pending requests by deadline (issue 16).

* ``ix_requests_routed_pending_deadline``: ``(deadline_at, id)`` of the requests that are
  ``pending`` and have reached a decider (``first_routed_at``), the rows the tacit sweep claims,
  oldest deadline first (``syncd.store.tacit.claim_due``). Without it the claim went through the
  index on ``status`` and read the page of every pending request, due or not: about 17,000 pages
  and 45–120 ms for 30,000 pending requests scattered over a million, at each batch; with it, the
  pages of the due requests only (375, 9–25 ms).

Building it reads the whole ``requests`` table once (about half a second per million rows here);
writes to the table wait meanwhile. It indexes only the pending routed requests, so it stays
small.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROUTED_PENDING = sa.text("status = 'pending' AND first_routed_at IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_requests_routed_pending_deadline", "requests", ["deadline_at", "id"],
                    sqlite_where=_ROUTED_PENDING, postgresql_where=_ROUTED_PENDING)


def downgrade() -> None:
    op.drop_index("ix_requests_routed_pending_deadline", table_name="requests")
