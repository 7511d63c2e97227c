"""The SQL schema, as SQLAlchemy Core tables; Alembic migrations must match it exactly.

``requests`` is the queue table the portal writes into: its contract is ``docs/queue.md``.
Times are timezone-aware UTC in Python on every engine (see ``UtcDateTime``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so migrations and models compare equal on every engine.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time: timezone-aware UTC in Python, whatever the engine.

    PostgreSQL stores ``timestamp with time zone`` and returns it in the session time zone;
    SQLite has no time type and SQLAlchemy stores an ISO string without offset, silently
    dropping any ``tzinfo``. So values are converted to UTC before binding (and stored naive on
    SQLite), and every value read back is returned aware, in UTC. A naive ``datetime`` is
    refused rather than guessed at (the store raises ``StoreRejected``).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime refused: pass a timezone-aware (UTC) datetime")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:          # SQLite: stored as UTC without offset
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


UtcTime = UtcDateTime()


def time_to_driver(value: datetime | None, postgresql: bool) -> Any:
    """A time as ``UtcDateTime`` binds it, for SQL run on the driver's cursor: UTC; on SQLite,
    naive text in SQLAlchemy's format. A naive ``datetime`` is refused."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime refused: pass a timezone-aware (UTC) datetime")
    value = value.astimezone(timezone.utc)
    return value if postgresql else value.strftime("%Y-%m-%d %H:%M:%S.%f")


def time_from_driver(value: Any) -> datetime | None:
    """A time read on the driver's cursor as ``UtcDateTime`` returns it: aware, in UTC."""
    if value is None:
        return None
    if isinstance(value, str):          # SQLite: the naive UTC text written above, or another writer's
        try:
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:              # it carried an offset of its own
            value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

REQUEST_STATUSES = ("new", "pending", "awaiting_decider", "accepted", "accepted_tacitly", "refused", "rejected")

organisations = Table(
    "organisations",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("branch", String(64), nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("updated_at", UtcTime, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(40), primary_key=True),           # stable id, the LDAP uid; never the e-mail
    Column("email", String(254), nullable=False, unique=True),  # professional e-mail = login
    Column("civility", String(8), nullable=True),           # "M." / "Mme"
    Column("given_name", String(100), nullable=False),
    Column("family_name", String(100), nullable=False),
    Column("birth_name", String(100), nullable=True),
    Column("contact_email", String(254), nullable=True),
    Column("phone", String(40), nullable=True),
    Column("primary_organisation", String(64), ForeignKey("organisations.code"), nullable=False),
    Column("secondary_organisation", String(64), ForeignKey("organisations.code"), nullable=True),
    Column("internal", Boolean, nullable=False),
    Column("director", Boolean, nullable=False, server_default=text("false")),
    Column("terms_version", String(20), nullable=True),
    Column("terms_accepted_at", UtcTime, nullable=True),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("created_at", UtcTime, nullable=False),
    Column("updated_at", UtcTime, nullable=False),
    Column("ldap_synced_at", UtcTime, nullable=True),        # when LDAP last got this row's values
    Column("password_set_at", UtcTime, nullable=True),
    # Bumped by every change; LDAP is behind while ldap_version differs (migration 0003).
    Column("version", Integer, nullable=False, server_default="1"),
    Column("ldap_version", Integer, nullable=True),
    # --- added in migration 0008: the LDAP write's failures (syncd.jobs.parking) ---
    Column("ldap_attempts", Integer, nullable=False, server_default="0"),
    Column("ldap_next_attempt_at", UtcTime, nullable=True),   # backed off after a temporary failure
    Column("ldap_last_error", Text, nullable=True),
    Column("ldap_parked_at", UtcTime, nullable=True),         # refused for good: no blind retry (syncd parked)
    Column("ldap_parked_reason", Text, nullable=True),
    CheckConstraint("status in ('pending','active','disabled')", name="status"),
)
Index("ix_accounts_ldap_parked_at", accounts.c.ldap_parked_at, sqlite_where=accounts.c.ldap_parked_at.isnot(None),
      postgresql_where=accounts.c.ldap_parked_at.isnot(None))
# Added in migration 0016: the accounts whose LDAP entry is behind their row, in the order the
# accounts job takes them (``accounts.due_for_ldap``, at each apply interval). Without it the job
# read every account (~16–20 ms per 150,000 on both engines). Its query holds the predicate's term
# as written (SQLite's condition: ``or_(ldap_version IS NULL, ldap_version < version)``, which
# renders it in parentheses — this text, in a query, would not be) and orders by the index's own
# columns: both planners then read the few rows behind, in order, and stop at the batch's limit.
LDAP_BEHIND = text("ldap_version IS NULL OR ldap_version < version")
LDAP_DUE_ORDER = (func.coalesce(accounts.c.ldap_next_attempt_at, accounts.c.updated_at), accounts.c.id)
Index("ix_accounts_ldap_due", *LDAP_DUE_ORDER, sqlite_where=LDAP_BEHIND, postgresql_where=LDAP_BEHIND)
# Added in migration 0017: an account found by its e-mail whatever its case (``repo.account_by_email``:
# intake, once per request; the forgotten-password form; the decisions on account requests). The
# unique constraint on ``email`` serves only the exact case; without this every such lookup read
# every account (~20 ms per 150,000).
Index("ix_accounts_email_lower", func.lower(accounts.c.email))
# Added in migration 0017: an organisation's people (a correspondent's page of the rights held in
# their organisation: without it SQLite walked every membership, ~260 ms per 300,000).
Index("ix_accounts_primary_organisation", accounts.c.primary_organisation)

deciders = Table(
    "deciders",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("scope", String(16), nullable=False),                      # correspondent / central
    Column("organisation_code", String(64), ForeignKey("organisations.code"), nullable=True),
    Column("created_at", UtcTime, nullable=False),
    UniqueConstraint("account_id", "scope", "organisation_code"),
    CheckConstraint(
        "(scope = 'correspondent' and organisation_code is not null)"
        " or (scope = 'central' and organisation_code is null)",
        name="scope",
    ),
)
# The unique key above treats NULL organisations as distinct, so it does not stop an account
# being made central administrator twice (two concurrent `decider add`): this index does.
Index("ix_deciders_one_central_role_per_account", deciders.c.account_id, unique=True,
      sqlite_where=deciders.c.organisation_code.is_(None), postgresql_where=deciders.c.organisation_code.is_(None))


requests = Table(
    "requests",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # --- written by the portal (see docs/queue.md) ---
    Column("kind", String(16), nullable=False),
    Column("submitted_at", UtcTime, nullable=False),
    Column("email", String(254), nullable=True),            # requester's professional e-mail
    Column("civility", String(8), nullable=True),
    Column("given_name", String(100), nullable=True),
    Column("family_name", String(100), nullable=True),
    Column("internal", Boolean, nullable=True),
    Column("organisation_code", String(64), nullable=True),
    Column("terms_accepted", Boolean, nullable=True),
    Column("terms_version", String(20), nullable=True),
    Column("role_key", String(64), nullable=True),
    Column("portal_ref", String(100), nullable=True, unique=True),  # portal's idempotency key
    # --- written by syncd ---
    Column("status", String(20), nullable=False, server_default="new"),
    Column("reason", Text, nullable=True),                   # why it was rejected
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=True),
    Column("deadline_at", UtcTime, nullable=True),
    Column("decided_at", UtcTime, nullable=True),
    Column("decided_by", String(40), nullable=True),        # decider account id, or "tacit"
    Column("comment", Text, nullable=True),
    Column("applied_at", UtcTime, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("claimed_by", String(100), nullable=True),
    Column("claimed_until", UtcTime, nullable=True),
    Column("updated_at", UtcTime, nullable=True),
    # --- added in migration 0007 ---
    Column("first_routed_at", UtcTime, nullable=True),       # first reached a decider: the minimum window starts
    Column("parked_at", UtcTime, nullable=True),             # failed for good: no blind retry (syncd parked)
    Column("parked_reason", Text, nullable=True),
    CheckConstraint("kind in ('account','habilitation','renewal','mobility')", name="kind"),
    CheckConstraint(
        "status in ('new','pending','awaiting_decider','accepted','accepted_tacitly','refused','rejected')",
        name="status",
    ),
)
Index("ix_requests_status_next_attempt", requests.c.status, requests.c.next_attempt_at)
Index("ix_requests_status_deadline", requests.c.status, requests.c.deadline_at)
Index("ix_requests_account_role", requests.c.account_id, requests.c.role_key)
Index("ix_requests_parked_at", requests.c.parked_at, sqlite_where=requests.c.parked_at.isnot(None),
      postgresql_where=requests.c.parked_at.isnot(None))
# Added in migration 0013: the tacit sweep's claim (syncd.store.tacit), the routed pending
# requests in deadline order. PostgreSQL served it by status alone and read a page per pending
# request, due or not (~17,000 pages for 30,000 pending among 1M requests); here only the due
# ones'. SQLite's planner already took ix_requests_status_deadline: one schema on both engines.
_ROUTED_PENDING = text("status = 'pending' AND first_routed_at IS NOT NULL")
Index("ix_requests_routed_pending_deadline", requests.c.deadline_at, requests.c.id,
      sqlite_where=_ROUTED_PENDING, postgresql_where=_ROUTED_PENDING)
# Added in migration 0014: the apply backlog, requests granted and not yet written to LDAP
# (apply's claim, the daemon's wake-up probe, `syncd status` and the metrics). Without them these
# walked every granted request ever applied: with 1M requests of history an idle probe took
# ~100 ms and an empty claim 170–190 ms, on both engines. Two shapes of one small set, because the
# two planners take different ones: PostgreSQL the ids alone (in claim order); SQLite, which
# keeps no statistics unless told to, only an index whose first column its query constrains by
# equality, and a partial index only for a query holding its terms as written, values included:
# the backlog's queries write the statuses into their SQL (``status_in``), sorted as here.
APPLY_BACKLOG = text("applied_at IS NULL AND status IN ('accepted', 'accepted_tacitly')")
Index("ix_requests_apply_backlog", requests.c.id, sqlite_where=APPLY_BACKLOG, postgresql_where=APPLY_BACKLOG)
Index("ix_requests_apply_backlog_by_status", requests.c.status, requests.c.id,
      sqlite_where=APPLY_BACKLOG, postgresql_where=APPLY_BACKLOG)


def status_in(table: Table, statuses: Iterable[str]) -> ColumnElement[bool]:
    """``table.status IN (...)``, the statuses sorted and written into the SQL instead of bound,
    so that a partial index whose predicate names them (``APPLY_BACKLOG``) can serve the query
    on SQLite. Only for the schema's own status values, which the callers check."""
    return table.c.status.in_(bindparam(None, sorted(statuses), expanding=True, literal_execute=True))

# Who a pending request is routed to (re-routing replaces these rows).
request_deciders = Table(
    "request_deciders",
    metadata,
    Column("request_id", BigId, ForeignKey("requests.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), primary_key=True),
)
# No index on ``account_id`` alone: with one, SQLite's planner (no statistics) reads a decider's
# pending requests (the desk) through every request ever routed to them instead of through the
# pending ones. Deleting an account (its foreign key) reads the table whole: 39 ms per million
# routings, once per account request refused before its entry was written.

request_events = Table(
    "request_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("request_id", BigId, ForeignKey("requests.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", UtcTime, nullable=False),
    Column("event", String(40), nullable=False),   # submitted, routed, reminded, decided, ...
    Column("actor", String(100), nullable=True),
    Column("detail", JSON, nullable=True),
)

# The desired state of group membership: one row per habilitation syncd granted.
memberships = Table(
    "memberships",
    metadata,
    Column("account_id", String(40), ForeignKey("accounts.id"), primary_key=True),
    Column("role_key", String(64), primary_key=True),
    Column("granted_by_request", BigId, ForeignKey("requests.id"), nullable=True),
    Column("granted_at", UtcTime, nullable=False),
    Column("expires_at", UtcTime, nullable=True),
    Column("revoked_at", UtcTime, nullable=True),    # set: the member must leave the group
    Column("applied_at", UtcTime, nullable=True),    # when LDAP last matched this row
    # --- added in migration 0008: the LDAP write's failures (syncd.jobs.parking) ---
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("parked_at", UtcTime, nullable=True),
    Column("parked_reason", Text, nullable=True),
)
Index("ix_memberships_role_key", memberships.c.role_key)
# Added in migration 0017: the memberships a request granted (a requester's history: how each right
# granted ended), read by request ids; without it each history page read every membership.
Index("ix_memberships_granted_by_request", memberships.c.granted_by_request)
Index("ix_memberships_parked_at", memberships.c.parked_at, sqlite_where=memberships.c.parked_at.isnot(None),
      postgresql_where=memberships.c.parked_at.isnot(None))
# A role's rows read from the index alone (the reconciliation, once per role group; migration 0009).
Index("ix_memberships_role_key_account_id_revoked_at", memberships.c.role_key, memberships.c.account_id,
      memberships.c.revoked_at)
# Added in migration 0015: the memberships two periodic jobs look for, instead of every row — the
# revoked ones still in their LDAP group (the accounts job, at each apply interval) and the held
# ones that expire (the expiry job, each minute): ~3–4 ms each per 70,000 rows before, growing
# with the accounts. Their queries hold these predicates' terms as written (SQLite's condition).
_REMOVALS_DUE = text("revoked_at IS NOT NULL AND applied_at IS NULL")
Index("ix_memberships_removals_due", memberships.c.account_id, memberships.c.role_key,
      sqlite_where=_REMOVALS_DUE, postgresql_where=_REMOVALS_DUE)
_EXPIRING = text("revoked_at IS NULL AND expires_at IS NOT NULL")
Index("ix_memberships_expiring", memberships.c.expires_at, sqlite_where=_EXPIRING, postgresql_where=_EXPIRING)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("created_at", UtcTime, nullable=False),
    Column("recipient", String(254), nullable=False),
    Column("template", String(64), nullable=False),
    Column("language", String(8), nullable=False, server_default="fr"),
    Column("context", JSON, nullable=False),
    Column("request_id", BigId, ForeignKey("requests.id"), nullable=True),
    Column("dedupe_key", String(200), nullable=True, unique=True),
    Column("status", String(16), nullable=False, server_default="pending"),  # pending / sent / failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcTime, nullable=True),
    Column("sent_at", UtcTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("claimed_by", String(100), nullable=True),        # worker holding it (syncd.store.queue)
    Column("claimed_until", UtcTime, nullable=True),
    # When the retention job emptied ``context`` and ``last_error`` (migration 0006).
    Column("content_erased_at", UtcTime, nullable=True),
    CheckConstraint("status in ('pending','sent','failed')", name="status"),
)
Index("ix_outbox_status_next_attempt", outbox.c.status, outbox.c.next_attempt_at)
# The mails whose content is still kept, by age: what the retention job looks through.
Index("ix_outbox_content_kept", outbox.c.created_at, sqlite_where=outbox.c.content_erased_at.is_(None),
      postgresql_where=outbox.c.content_erased_at.is_(None))

password_resets = Table(
    "password_resets",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("token_hash", String(128), nullable=False, unique=True),  # sha256 of the token; never the token
    Column("created_at", UtcTime, nullable=False),
    Column("expires_at", UtcTime, nullable=False),
    Column("used_at", UtcTime, nullable=True),
)
# Added in migration 0017: an account's links, those still open spent when its password is set
# (``passwords.password_set``); without it each password set read every link ever issued, as did
# deleting an account (its foreign key).
Index("ix_password_resets_account_id", password_resets.c.account_id)

# One row per daemon job: what ran last, whether it failed, and why (shown by `syncd status`).
job_runs = Table(
    "job_runs",
    metadata,
    Column("job", String(40), primary_key=True),
    Column("worker", String(100), nullable=True),
    Column("last_started_at", UtcTime, nullable=True),
    Column("last_ok_at", UtcTime, nullable=True),
    Column("last_error_at", UtcTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
)

# --- added in migration 0002 ---------------------------------------------------------------------

# Single-use markers: API nonces and idempotency keys, one-click decision links. A key seen
# once is refused the second time; rows past ``expires_at`` may be purged.
used_tokens = Table(
    "used_tokens",
    metadata,
    Column("key", String(200), primary_key=True),       # e.g. "nonce:<client>:<nonce>", "link:<id>"
    Column("created_at", UtcTime, nullable=False),
    Column("expires_at", UtcTime, nullable=False),
    Column("result", JSON, nullable=True),               # the answer to replay for an idempotency key
)
Index("ix_used_tokens_expires_at", used_tokens.c.expires_at)

# Append-only audit trail: every decision and every LDAP change, hash-chained (once sealed) so
# that a row changed or removed afterwards breaks the chain.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UtcTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(40), nullable=False),
    Column("request_id", BigId, nullable=True),
    Column("target", String(1000), nullable=True),
    Column("detail", JSON, nullable=True),
    # Chain position, previous and own hash: NULL until the sealing job chains the row (audit.seal).
    Column("seq", BigId, nullable=True, unique=True),
    Column("prev_hash", String(64), nullable=True),
    Column("hash", String(64), nullable=True, unique=True),
)
# The rows still to seal, found without scanning years of sealed ones.
Index("ix_audit_log_unsealed", audit_log.c.id, sqlite_where=audit_log.c.seq.is_(None),
      postgresql_where=audit_log.c.seq.is_(None))

# One row per reconciliation run: what it found and what it did.
reconcile_runs = Table(
    "reconcile_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("started_at", UtcTime, nullable=False),
    Column("finished_at", UtcTime, nullable=True),
    Column("mode", String(16), nullable=False),          # dry_run / apply
    Column("summary", JSON, nullable=True),
    Column("error", Text, nullable=True),
)

# The change stamp LDAP gave each person entry (entryCSN on OpenLDAP, syncd.directory.stamps) when
# syncd last wrote it or saw it equal to the account's fields (their digest; migration 0009). A full
# reconciliation reads again only the entries whose stamp, fields or layout moved.
ldap_stamps = Table(
    "ldap_stamps",
    metadata,
    Column("account_id", String(40), primary_key=True),   # no foreign key: a cache, never a reference
    Column("digest", String(32), nullable=False),         # of the account's fields the entry matched
    Column("stamp", String(64), nullable=False),
    Column("layout", String(32), nullable=False),         # mappings and syncd release it was computed under
)

# Where the next incremental reconciliation starts (``syncd reconcile --since-last``): one row per
# directory kind, the stamp at or after which entries may have changed since the last run.
reconcile_cursors = Table(
    "reconcile_cursors",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("stamp", String(64), nullable=False),
    Column("updated_at", UtcTime, nullable=False),
)

# The operator's revocations of the correspondents' desk links (``syncd desk revoke``, migration
# 0011): every desk link, and every desk session opened with one, issued to ``account_id`` at or
# before ``revoked_at`` stops working, in every web process (syncd.web.desk_auth).
desk_revocations = Table(
    "desk_revocations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", String(40), nullable=False, index=True),   # no foreign key: a record, kept
    Column("revoked_at", UtcTime, nullable=False),
    Column("revoked_by", String(100), nullable=False),
    Column("reason", Text, nullable=True),
)

# --- added in migration 0012: access review campaigns (syncd.core.reviews, syncd.jobs.reviews) -----

REVIEW_DECISIONS = ("confirmed", "withdrawn", "kept_tacitly", "withdrawn_unanswered", "ended")

# One campaign per organisation at a time: the rights its people hold in reviewed roles.
review_campaigns = Table(
    "review_campaigns",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("organisation_code", String(64), ForeignKey("organisations.code"), nullable=False),
    Column("state", String(20), nullable=False),
    Column("opened_at", UtcTime, nullable=False),
    Column("opened_by", String(100), nullable=False),       # "schedule" or "operator"
    Column("closes_at", UtcTime, nullable=False),            # the end of the (current) window
    Column("unanswered", String(16), nullable=False),        # keep / withdraw: the rule announced at opening
    Column("closed_at", UtcTime, nullable=True),
    Column("outcome", JSON, nullable=True),                  # counts per decision, once closed
    CheckConstraint("state in ('open','awaiting_reviewer','closed')", name="state"),
    CheckConstraint("unanswered in ('keep','withdraw')", name="unanswered"),
)
# Not two campaigns under way for one organisation (two daemons, or the schedule and the operator).
Index("ix_review_campaigns_one_under_way", review_campaigns.c.organisation_code, unique=True,
      sqlite_where=review_campaigns.c.closed_at.is_(None), postgresql_where=review_campaigns.c.closed_at.is_(None))

# One right under review: a membership as it stood when the campaign opened, and its answer.
review_items = Table(
    "review_items",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("campaign_id", BigId, ForeignKey("review_campaigns.id"), nullable=False),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("role_key", String(64), nullable=False),
    Column("granted_at", UtcTime, nullable=False),
    Column("decision", String(24), nullable=True),           # None: unanswered so far
    Column("decided_at", UtcTime, nullable=True),
    Column("decided_by", String(100), nullable=True),        # the reviewer's account id, or "syncd"
    Column("reason", Text, nullable=True),
    UniqueConstraint("campaign_id", "account_id", "role_key"),
    CheckConstraint("decision is null or decision in "
                    "('confirmed','withdrawn','kept_tacitly','withdrawn_unanswered','ended')", name="decision"),
)
Index("ix_review_items_campaign_id_decision", review_items.c.campaign_id, review_items.c.decision)
# Added in migration 0017: what deleting an account checks (its foreign key), which without it read
# every right of every review.
Index("ix_review_items_account_id", review_items.c.account_id)
