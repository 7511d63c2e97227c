"""The queries of the correspondents' desk and of its daily digest (docs/web.md, issue #15).

* revocations of desk links (``desk_revocations``): ``record_revocation``, ``revoked_since``;
* what a decider has to decide: ``pending_for`` (routed to them, ``request_deciders``), and
  ``awaiting_decider`` (nobody can decide them: shown to central administrators);
* the rights held in an organisation, or of centrally managed roles: ``rights_held``;
* the digest: ``pending_counts`` per decider, ``digests_sent`` on one day (outbox dedupe keys).

Reads take no lock; the desk's decisions and withdrawals go through the use-cases of
``syncd.jobs`` (``decisions.decide_request``, ``habilitations.revoke``), which write.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, insert, or_, select
from sqlalchemy.engine import Connection, RowMapping

from syncd.core.model import DeciderScope, Status
from syncd.store.tables import accounts, deciders, desk_revocations, memberships, outbox, request_deciders, requests

DIGEST_KEY = "digest:{day}:{account_id}"   # the outbox dedupe key of one decider's digest of one day

_PERSON = (accounts.c.given_name.label("a_given"), accounts.c.family_name.label("a_family"),
           accounts.c.email.label("a_email"), accounts.c.internal.label("a_internal"))
# What the desk, the digest and ``repo.request_view`` read of a request: the desk renders 500 of
# them in a few milliseconds only without the other columns (their times cost a conversion each).
_REQUEST = tuple(requests.c[name] for name in (
    "id", "kind", "status", "submitted_at", "email", "given_name", "family_name", "internal", "organisation_code",
    "role_key", "reason", "account_id", "deadline_at", "decided_by", "comment", "applied_at", "first_routed_at"))


# --- revocations ----------------------------------------------------------------------------------

def record_revocation(conn: Connection, account_id: str, at: datetime, by: str, reason: str | None) -> None:
    conn.execute(insert(desk_revocations).values(account_id=account_id, revoked_at=at, revoked_by=by[:100],
                                                 reason=reason))


def revoked_since(conn: Connection, account_id: str, issued_at: datetime) -> bool:
    """Whether the operator revoked ``account_id``'s desk links at or after ``issued_at``."""
    return conn.execute(select(desk_revocations.c.id).where(
        desk_revocations.c.account_id == account_id, desk_revocations.c.revoked_at >= issued_at).limit(1)
    ).first() is not None


# --- deciders -------------------------------------------------------------------------------------

def scopes_of(conn: Connection, account_id: str) -> tuple[bool, tuple[str, ...]]:
    """(whether the account is an active central administrator, the organisations it is an active
    correspondent of)."""
    rows = conn.execute(select(deciders.c.scope, deciders.c.organisation_code)
                        .join(accounts, accounts.c.id == deciders.c.account_id)
                        .where(deciders.c.account_id == account_id, accounts.c.status == "active")).all()
    central = any(r.scope == DeciderScope.CENTRAL.value for r in rows)
    return central, tuple(sorted(r.organisation_code for r in rows if r.scope == DeciderScope.CORRESPONDENT.value))


# --- requests -------------------------------------------------------------------------------------

def pending_for(conn: Connection, decider_id: str, role_keys: Collection[str] | None = None) -> list[RowMapping]:
    """Every pending request routed to ``decider_id``, the closest deadline first (none last): the
    columns ``_REQUEST`` names, and the requester's account columns (``a_given``, ``a_family``, ``a_email``, ``a_internal``).
    ``role_keys``: only requests for these roles (an application's)."""
    stmt = (select(*_REQUEST, *_PERSON)
            .join(request_deciders, request_deciders.c.request_id == requests.c.id)
            .outerjoin(accounts, accounts.c.id == requests.c.account_id)
            .where(request_deciders.c.account_id == decider_id, requests.c.status == Status.PENDING.value))
    if role_keys is not None:
        stmt = stmt.where(requests.c.role_key.in_(list(role_keys)))
    return list(conn.execute(stmt.order_by(requests.c.deadline_at.is_(None), requests.c.deadline_at,
                                           requests.c.id)).mappings())


def awaiting_decider(conn: Connection, role_keys: Collection[str] | None = None,
                     limit: int = 1000) -> list[RowMapping]:
    """Requests nobody can decide (``awaiting_decider``), the oldest first, with the requester's
    account columns as ``pending_for``."""
    stmt = (select(*_REQUEST, *_PERSON).outerjoin(accounts, accounts.c.id == requests.c.account_id)
            .where(requests.c.status == Status.AWAITING_DECIDER.value))
    if role_keys is not None:
        stmt = stmt.where(requests.c.role_key.in_(list(role_keys)))
    return list(conn.execute(stmt.order_by(requests.c.submitted_at, requests.c.id).limit(limit)).mappings())


# --- rights ---------------------------------------------------------------------------------------

def rights_held(conn: Connection, now: datetime, *, organisations: Collection[str] = (),
                role_keys: Collection[str] = (), within: Collection[str] | None = None,
                limit: int = 1000) -> list[RowMapping]:
    """Memberships held now (not withdrawn, not expired) by accounts of ``organisations``, or of
    the roles ``role_keys`` whoever holds them, and only of the roles ``within`` if given (an
    application's): the holder's name, e-mail and organisation (``primary_organisation``) with
    each, sorted by role then family name. At most ``limit``."""
    if not organisations and not role_keys:
        return []
    scope = []
    if organisations:
        # The organisations' people as a subquery on the memberships' own key, not a filter on the
        # joined accounts: with an application's roles (``within``) SQLite's planner then reads
        # the roles' index by role and account (2–4 ms) instead of every holder of the roles
        # (66–128 ms at 300,000 memberships).
        scope.append(memberships.c.account_id.in_(
            select(accounts.c.id).where(accounts.c.primary_organisation.in_(list(organisations)))))
    if role_keys:
        scope.append(memberships.c.role_key.in_(list(role_keys)))
    stmt = (select(memberships.c.account_id, memberships.c.role_key, memberships.c.granted_at,
                   memberships.c.expires_at, memberships.c.applied_at, accounts.c.given_name,
                   accounts.c.family_name, accounts.c.email, accounts.c.primary_organisation)
            .join(accounts, accounts.c.id == memberships.c.account_id)
            .where(memberships.c.revoked_at.is_(None), or_(*scope),
                   or_(memberships.c.expires_at.is_(None), memberships.c.expires_at > now)))
    if within is not None:
        stmt = stmt.where(memberships.c.role_key.in_(list(within)))
    stmt = (stmt
            .order_by(memberships.c.role_key, accounts.c.family_name, accounts.c.given_name, accounts.c.id)
            .limit(limit))
    return list(conn.execute(stmt).mappings())


# --- the digest -----------------------------------------------------------------------------------

def pending_counts(conn: Connection) -> dict[str, int]:
    """How many pending requests are routed to each decider who has any."""
    rows = conn.execute(select(request_deciders.c.account_id, func.count())
                        .join(requests, requests.c.id == request_deciders.c.request_id)
                        .where(requests.c.status == Status.PENDING.value)
                        .group_by(request_deciders.c.account_id)).all()
    return {r[0]: int(r[1]) for r in rows}


def awaiting_decider_count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(requests)
                        .where(requests.c.status == Status.AWAITING_DECIDER.value)).scalar() or 0


def digests_sent(conn: Connection, day: str, account_ids: Collection[str]) -> set[str]:
    """Those of ``account_ids`` whose digest of ``day`` (YYYY-MM-DD, Paris) is in the outbox
    already (exact keys: the unique index answers, on every engine)."""
    keys = {DIGEST_KEY.format(day=day, account_id=a): a for a in account_ids}
    found: set[str] = set()
    chunk = list(keys)
    for i in range(0, len(chunk), 500):
        rows = conn.execute(select(outbox.c.dedupe_key).where(outbox.c.dedupe_key.in_(chunk[i:i + 500]))).scalars()
        found |= {keys[k] for k in rows}
    return found
