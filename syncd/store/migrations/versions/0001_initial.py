"""Initial schema: every table of syncd.store.tables as of 0.1.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Written by hand from an autogenerate draft (SQLite and PostgreSQL) and checked against
``syncd/store/tables.py``; ``tests/store/test_migrations.py`` asserts that an upgraded empty
database compares equal to the models on both engines. Constraint names are spelled out
(``op.f``) exactly as the models' naming convention produces them. Plain SQLAlchemy types only:
``UtcDateTime`` in the models is a Python-side decorator over ``DateTime(timezone=True)``.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _big_id() -> sa.types.TypeEngine:
    # SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit integer.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("branch", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_organisations")),
    )

    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("civility", sa.String(length=8), nullable=True),
        sa.Column("given_name", sa.String(length=100), nullable=False),
        sa.Column("family_name", sa.String(length=100), nullable=False),
        sa.Column("birth_name", sa.String(length=100), nullable=True),
        sa.Column("contact_email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("primary_organisation", sa.String(length=64), nullable=False),
        sa.Column("secondary_organisation", sa.String(length=64), nullable=True),
        sa.Column("internal", sa.Boolean(), nullable=False),
        sa.Column("director", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("terms_version", sa.String(length=20), nullable=True),
        sa.Column("terms_accepted_at", _time(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.Column("ldap_synced_at", _time(), nullable=True),
        sa.Column("password_set_at", _time(), nullable=True),
        sa.CheckConstraint("status in ('pending','active','disabled')", name=op.f("ck_accounts_status")),
        sa.ForeignKeyConstraint(
            ["primary_organisation"], ["organisations.code"],
            name=op.f("fk_accounts_primary_organisation_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["secondary_organisation"], ["organisations.code"],
            name=op.f("fk_accounts_secondary_organisation_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("email", name=op.f("uq_accounts_email")),
    )

    op.create_table(
        "deciders",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("organisation_code", sa.String(length=64), nullable=True),
        sa.Column("created_at", _time(), nullable=False),
        sa.CheckConstraint(
            "(scope = 'correspondent' and organisation_code is not null)"
            " or (scope = 'central' and organisation_code is null)",
            name=op.f("ck_deciders_scope"),
        ),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_deciders_account_id_accounts")),
        sa.ForeignKeyConstraint(
            ["organisation_code"], ["organisations.code"],
            name=op.f("fk_deciders_organisation_code_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deciders")),
        sa.UniqueConstraint(
            "account_id", "scope", "organisation_code",
            name=op.f("uq_deciders_account_id_scope_organisation_code"),
        ),
    )

    op.create_table(
        "requests",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        # written by the portal (docs/queue.md)
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("submitted_at", _time(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("civility", sa.String(length=8), nullable=True),
        sa.Column("given_name", sa.String(length=100), nullable=True),
        sa.Column("family_name", sa.String(length=100), nullable=True),
        sa.Column("internal", sa.Boolean(), nullable=True),
        sa.Column("organisation_code", sa.String(length=64), nullable=True),
        sa.Column("terms_accepted", sa.Boolean(), nullable=True),
        sa.Column("terms_version", sa.String(length=20), nullable=True),
        sa.Column("role_key", sa.String(length=64), nullable=True),
        sa.Column("portal_ref", sa.String(length=100), nullable=True),
        # written by syncd
        sa.Column("status", sa.String(length=20), server_default="new", nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("account_id", sa.String(length=40), nullable=True),
        sa.Column("deadline_at", _time(), nullable=True),
        sa.Column("decided_at", _time(), nullable=True),
        sa.Column("decided_by", sa.String(length=40), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("applied_at", _time(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", _time(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", _time(), nullable=True),
        sa.Column("updated_at", _time(), nullable=True),
        sa.CheckConstraint("kind in ('account','habilitation','renewal')", name=op.f("ck_requests_kind")),
        sa.CheckConstraint(
            "status in ('new','pending','accepted','accepted_tacitly','refused','rejected')",
            name=op.f("ck_requests_status"),
        ),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_requests_account_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
        sa.UniqueConstraint("portal_ref", name=op.f("uq_requests_portal_ref")),
    )
    op.create_index(op.f("ix_requests_status_next_attempt"), "requests", ["status", "next_attempt_at"])
    op.create_index(op.f("ix_requests_status_deadline"), "requests", ["status", "deadline_at"])
    op.create_index(op.f("ix_requests_account_role"), "requests", ["account_id", "role_key"])

    op.create_table(
        "request_deciders",
        sa.Column("request_id", _big_id(), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"],
            name=op.f("fk_request_deciders_request_id_requests"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_request_deciders_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("request_id", "account_id", name=op.f("pk_request_deciders")),
    )

    op.create_table(
        "request_events",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("request_id", _big_id(), nullable=False),
        sa.Column("at", _time(), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"],
            name=op.f("fk_request_events_request_id_requests"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_events")),
    )
    op.create_index(op.f("ix_request_events_request_id"), "request_events", ["request_id"])

    op.create_table(
        "memberships",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("role_key", sa.String(length=64), nullable=False),
        sa.Column("granted_by_request", _big_id(), nullable=True),
        sa.Column("granted_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=True),
        sa.Column("revoked_at", _time(), nullable=True),
        sa.Column("applied_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_memberships_account_id_accounts")),
        sa.ForeignKeyConstraint(
            ["granted_by_request"], ["requests.id"], name=op.f("fk_memberships_granted_by_request_requests"),
        ),
        sa.PrimaryKeyConstraint("account_id", "role_key", name=op.f("pk_memberships")),
    )
    op.create_index(op.f("ix_memberships_role_key"), "memberships", ["role_key"])

    op.create_table(
        "outbox",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), server_default="fr", nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("request_id", _big_id(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", _time(), nullable=True),
        sa.Column("sent_at", _time(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", _time(), nullable=True),
        sa.CheckConstraint("status in ('pending','sent','failed')", name=op.f("ck_outbox_status")),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"], name=op.f("fk_outbox_request_id_requests")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_outbox_dedupe_key")),
    )
    op.create_index(op.f("ix_outbox_status_next_attempt"), "outbox", ["status", "next_attempt_at"])

    op.create_table(
        "password_resets",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.Column("used_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_password_resets_account_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_resets")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_password_resets_token_hash")),
    )

    op.create_table(
        "job_runs",
        sa.Column("job", sa.String(length=40), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=True),
        sa.Column("last_started_at", _time(), nullable=True),
        sa.Column("last_ok_at", _time(), nullable=True),
        sa.Column("last_error_at", _time(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_job_runs")),
    )


def downgrade() -> None:
    # Reverse order of creation: referencing tables first. Indexes go with their tables.
    for table in (
        "job_runs", "password_resets", "outbox", "memberships", "request_events",
        "request_deciders", "requests", "deciders", "accounts", "organisations",
    ):
        op.drop_table(table)
