"""Operator actions behind the command line: status, bootstrap accounts, deciders, test submissions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select

from syncd.core.intake import normalise_email
from syncd.errors import PermanentError
from syncd.jobs.runtime import Runtime
from syncd.mail.outbox import oldest_pending_age, pending_count
from syncd.store import health, parked, repo
from syncd.store.db import DIALECT_INSERTS, transaction
from syncd.store.tables import accounts, deciders, requests


def status_report(rt: Runtime) -> dict[str, Any]:
    now = rt.clock()
    with transaction(rt.engine) as conn:
        counts = health.status_counts(conn)
        oldest = health.oldest_open_submitted_at(conn)
        report = {
            "requests": counts,
            "oldest_pending_age_seconds": (now - oldest).total_seconds() if oldest else None,
            "accepted_not_applied": health.unapplied_count(conn),
            "failing_requests": [dict(r) for r in health.failing_requests(conn)],
            "outbox_pending": pending_count(conn),
            "outbox_oldest_pending_age_seconds": oldest_pending_age(conn, now),
            "jobs": [dict(r) for r in health.job_health(conn)],
            "parked": parked.summary(conn),
        }
    report["healthy"] = all(j["consecutive_failures"] == 0 for j in report["jobs"])
    return report


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h {rest // 60}m" if days else f"{hours}h {rest // 60}m {rest % 60}s"


def format_status(report: dict[str, Any]) -> str:
    lines = ["requests per status:"]
    for status in ("new", "pending", "accepted", "accepted_tacitly", "refused", "rejected"):
        lines.append(f"  {status:18} {report['requests'].get(status, 0)}")
    lines.append(f"oldest pending request: {_age(report['oldest_pending_age_seconds'])}")
    lines.append(f"accepted, not yet in LDAP: {report['accepted_not_applied']}")
    for r in report["failing_requests"]:
        lines.append(f"  request {r['id']}: attempt {r['attempts']}, next at {r['next_attempt_at']}: {r['last_error']}")
    lines.append(f"outbox: {report['outbox_pending']} pending, oldest {_age(report['outbox_oldest_pending_age_seconds'])}")
    lines.append("parked (refused for good, waiting for an operator: syncd parked list):")
    for kind, p in report["parked"].items():
        oldest = f", oldest {p['oldest']} since {p['oldest_parked_at']}: {p['oldest_reason']}" if p["count"] else ""
        lines.append(f"  {kind:12} {p['count']}{oldest}")
    lines.append("jobs:")
    for j in report["jobs"]:
        state = "ok" if j["consecutive_failures"] == 0 else f"FAILING x{j['consecutive_failures']}: {j['last_error']}"
        if j["consecutive_failures"] == 0 and j["last_error_at"] is not None:
            state += f" (last failed {j['last_error_at']}: {j['last_error']})"
        lines.append(f"  {j['job']:10} last ok {j['last_ok_at'] or '-'}  {state}")
    lines.append("health: " + ("ok" if report["healthy"] else "DEGRADED (see failing jobs above)"))
    return "\n".join(lines)


def add_account(rt: Runtime, email: str, given_name: str, family_name: str, organisation: str, *,
                internal: bool = True, director: bool = False) -> str:
    from syncd.jobs.apply import push_account
    normalised = normalise_email(email)
    if normalised is None:
        raise PermanentError(f"{email!r} is not a valid e-mail address")
    if rt.mappings.organisation(organisation) is None:
        raise PermanentError(f"unknown organisation {organisation!r}")
    now = rt.clock()
    with transaction(rt.engine) as conn:
        repo.upsert_organisations(conn, rt.mappings.organisations, now)
        if repo.account_by_email(conn, normalised):
            raise PermanentError(f"an account already exists for {normalised}")
        account_id = repo.new_account_id()
        conn.execute(insert(accounts).values(
            id=account_id, email=normalised, given_name=given_name, family_name=family_name,
            primary_organisation=organisation, internal=internal, director=director, status="active",
            created_at=now, updated_at=now))
        row = repo.account_by_id(conn, account_id)
    push_account(rt, row)
    return account_id


def _decider_key(conn, rt: Runtime, email: str, organisation: str | None):
    account = repo.account_by_email(conn, email)
    if account is None:
        raise PermanentError(f"no account for {email}: create it first")
    if organisation is not None and rt.mappings.organisation(organisation) is None:
        raise PermanentError(f"unknown organisation {organisation!r}")
    return account["id"], ("correspondent" if organisation else "central")


def add_decider(rt: Runtime, email: str, organisation: str | None) -> None:
    with transaction(rt.engine) as conn:
        account_id, scope = _decider_key(conn, rt, email, organisation)
        # Idempotent, and safe when two run at once: the unique key, or for a central
        # administrator the partial unique index, turns the second insert into nothing.
        insert_or_nothing = DIALECT_INSERTS[conn.dialect.name]
        conn.execute(insert_or_nothing(deciders).values(
            account_id=account_id, scope=scope, organisation_code=organisation, created_at=rt.clock()
        ).on_conflict_do_nothing())


def remove_decider(rt: Runtime, email: str, organisation: str | None) -> None:
    with transaction(rt.engine) as conn:
        account_id, scope = _decider_key(conn, rt, email, organisation)
        conn.execute(delete(deciders).where(
            deciders.c.account_id == account_id, deciders.c.scope == scope,
            deciders.c.organisation_code.is_(None) if organisation is None
            else deciders.c.organisation_code == organisation))


def submit_habilitation(rt: Runtime, email: str, role_key: str) -> int:
    """Insert a habilitation request exactly as docs/queue.md tells the portal to."""
    with transaction(rt.engine) as conn:
        return conn.execute(insert(requests).values(kind="habilitation", submitted_at=rt.clock(), email=email,
                                                    role_key=role_key)).inserted_primary_key[0]
