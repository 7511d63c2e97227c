"""Every request ends in a state someone sees (issue "nothing stuck, nothing silent").

* ``awaiting_decider``: a request that nobody can decide (no correspondent and no central
  administrator) waits in this status, visible to operators, instead of being routed to nobody
  and accepted tacitly. The requester reads the same label as ``pending``.
* ``first_routed_at``: when the request first reached at least one decider. The tacit deadline
  never comes sooner than a minimum window after it, whatever ``submitted_at`` says; a later
  re-route does not move it.
* ``parked_at`` / ``parked_reason``: a request whose processing failed for good (the directory
  refused its write, intake crashed repeatedly) is parked: no more blind retries, out of the way
  of the others, listed by ``syncd parked`` until an operator retries or resolves it. Parking is
  not a status: the request keeps the status its decision gave it.

On SQLite the CHECK constraint changes through a batch rebuild of ``requests``; the audit
triggers live on ``audit_log`` and are not touched.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "status in ('new','pending','accepted','accepted_tacitly','refused','rejected')"
NEW_STATUSES = "status in ('new','pending','awaiting_decider','accepted','accepted_tacitly','refused','rejected')"
PARKED_INDEX = "ix_requests_parked_at"


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_constraint("status", type_="check")
        batch.create_check_constraint("status", NEW_STATUSES)
        batch.add_column(sa.Column("first_routed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("parked_reason", sa.Text(), nullable=True))
    # Requests already routed were first routed when they were submitted, as far as anyone knows.
    op.execute("UPDATE requests SET first_routed_at = submitted_at WHERE deadline_at IS NOT NULL")
    op.create_index(PARKED_INDEX, "requests", ["parked_at"],
                    sqlite_where=sa.text("parked_at IS NOT NULL"),
                    postgresql_where=sa.text("parked_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index(PARKED_INDEX, table_name="requests")
    # A request waiting for a decider goes back to the old behaviour: pending, routed to nobody.
    op.execute("UPDATE requests SET status = 'pending' WHERE status = 'awaiting_decider'")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("parked_reason")
        batch.drop_column("parked_at")
        batch.drop_column("first_routed_at")
        batch.drop_constraint("status", type_="check")
        batch.create_check_constraint("status", OLD_STATUSES)
