"""Operator actions behind the command line: status, bootstrap accounts, deciders, test submissions."""

from __future__ import annotations

from typing import Any

import structlog

from syncd.core.intake import directory_refusals, normalise_email
from syncd.core.model import AccountStatus, Status
from syncd.errors import DirectoryRejected, DirectoryUnavailable, PermanentError
from syncd.runtime import Runtime
from syncd.store import accounts, audit, health, parked, repo
from syncd.store.db import transaction
from syncd.store.outbox import oldest_pending_age, pending_count


log = structlog.get_logger(__name__)

NO_CENTRAL_ADMINISTRATOR = (
    "WARNING: NO CENTRAL ADMINISTRATOR. Requests of organisations without a correspondent, of centrally "
    "managed roles and escalated external account requests wait in awaiting_decider until one is added: "
    "syncd decider add EMAIL --central")


UPGRADE_NOTE = "upgrading from 0.1? docs/upgrading.md lists what changed for existing deployments (0.2)"


def decider_warning(settings) -> str | None:
    """What ``check-config`` says about the deciders: the loud warning when the database is
    reachable, up to date and has no central administrator; why it could not tell otherwise."""
    from syncd.store.db import make_engine
    from syncd.store.migrate import is_up_to_date, sqlite_file_missing
    if sqlite_file_missing(settings.database_url):
        return None     # no database yet (connecting would create the file): nothing to say
    try:
        if not is_up_to_date(settings.database_url):
            return "deciders not checked: the database schema is not up to date (syncd db upgrade)"
        engine = make_engine(settings.database_url, pool_size=1)
        try:
            with transaction(engine, readonly=True) as conn:
                centrals = health.central_administrator_count(conn)
        finally:
            engine.dispose()
    except Exception as exc:    # check-config checks files; the database is a bonus
        return f"deciders not checked: the database is not reachable ({type(exc).__name__})"
    return NO_CENTRAL_ADMINISTRATOR if centrals == 0 else None


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
        waiting_since = health.awaiting_decider_oldest(conn)
        report["awaiting_decider_oldest_age_seconds"] = (now - waiting_since).total_seconds() if waiting_since else None
        report["central_administrators"] = health.central_administrator_count(conn)
    from syncd.jobs import reviews
    report["reviews"] = reviews.progress(rt)
    report["locked_out_accounts"] = _locked_out(rt)
    report["healthy"] = all(j["consecutive_failures"] == 0 for j in report["jobs"])
    return report


def _locked_out(rt: Runtime) -> list[str] | None:
    """Accounts the directory locked out after bad passwords (Active Directory); None when the
    directory has no such lockout, or could not be read (status must not fail for it)."""
    try:
        return rt.directory.locked_out_accounts()
    except (DirectoryUnavailable, DirectoryRejected) as exc:
        log.warning("status_lockouts_unread", error=str(exc))
        return None


def unlock_account(rt: Runtime, email: str) -> bool:
    """``syncd unlock EMAIL``: clear the directory's lockout of an account; True if it was locked."""
    with transaction(rt.engine, readonly=True) as conn:
        account = repo.account_by_email(conn, email.strip())
    if account is None:
        raise PermanentError(f"no account for {email!r}")
    cleared = rt.directory.clear_lockout(account.id)
    with transaction(rt.engine) as conn:
        audit.record(conn, at=rt.clock(), actor="cli", action="lockout_cleared", target=account.id)
    return cleared


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h {rest // 60}m" if days else f"{hours}h {rest // 60}m {rest % 60}s"


def format_status(report: dict[str, Any]) -> str:
    lines = [NO_CENTRAL_ADMINISTRATOR] if report["central_administrators"] == 0 else []
    lines.append("requests per status:")
    for status in (s.value for s in Status):
        lines.append(f"  {status:18} {report['requests'].get(status, 0)}")
    if report["requests"].get("awaiting_decider"):
        lines.append(f"  nobody can decide {report['requests']['awaiting_decider']} request(s), the oldest submitted "
                     f"{_age(report['awaiting_decider_oldest_age_seconds'])} ago: add a decider "
                     "(syncd decider add EMAIL --organisation CODE | --central)")
    lines.append(f"oldest pending request: {_age(report['oldest_pending_age_seconds'])}")
    lines.append(f"accepted, not yet in LDAP: {report['accepted_not_applied']}")
    for r in report["failing_requests"]:
        lines.append(f"  request {r['id']}: attempt {r['attempts']}, next at {r['next_attempt_at']}: {r['last_error']}")
    lines.append(f"outbox: {report['outbox_pending']} pending, oldest {_age(report['outbox_oldest_pending_age_seconds'])}")
    lines.append("parked (refused for good, waiting for an operator: syncd parked list):")
    for kind, p in report["parked"].items():
        oldest = f", oldest {p['oldest']} since {p['oldest_parked_at']}: {p['oldest_reason']}" if p["count"] else ""
        lines.append(f"  {kind:12} {p['count']}{oldest}")
    lines.append("access reviews under way (syncd review):" if report["reviews"] else "access reviews under way: none")
    for c in report["reviews"]:
        items = c["items"]
        answered = ", ".join(f"{k} {v}" for k, v in sorted(items.items()) if k != "undecided")
        line = (f"  {c['organisation_code']:12} campaign {c['campaign_id']} {c['state']}, ends {c['closes_at']}: "
                f"{sum(items.values())} right(s), {items.get('undecided', 0)} unanswered"
                + (f" ({answered})" if answered else ""))
        if c["no_reviewer"]:
            line += (f"; NOBODY CAN REVIEW {c['no_reviewer']}: they wait, nothing is withdrawn "
                     "(syncd decider add EMAIL --organisation CODE | --central)")
        lines.append(line)
    lines.append("jobs:")
    for j in report["jobs"]:
        state = "ok" if j["consecutive_failures"] == 0 else f"FAILING x{j['consecutive_failures']}: {j['last_error']}"
        if j["consecutive_failures"] == 0 and j["last_error_at"] is not None:
            state += f" (last failed {j['last_error_at']}: {j['last_error']})"
        lines.append(f"  {j['job']:10} last ok {j['last_ok_at'] or '-'}  {state}")
    if report.get("locked_out_accounts"):
        lines.append(f"locked out by the directory after bad passwords: {len(report['locked_out_accounts'])} "
                     "account(s) (syncd unlock EMAIL): " + ", ".join(report["locked_out_accounts"][:10]))
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
    # Checked before the row exists: an account the directory refuses would be retried for ever.
    refused = directory_refusals({"email": normalised, "given_name": given_name, "family_name": family_name},
                                 rt.mappings)
    if refused:
        raise PermanentError("; ".join(f"{field}: {reason}" for field, reason in refused.items()))
    now = rt.clock()
    with transaction(rt.engine) as conn:
        repo.upsert_organisations(conn, rt.mappings.organisations, now)
        if repo.account_by_email(conn, normalised):
            raise PermanentError(f"an account already exists for {normalised}")
        account_id = repo.new_account_id()
        repo.add_account(
            conn, id=account_id, email=normalised, given_name=given_name, family_name=family_name,
            primary_organisation=organisation, internal=internal, director=director, status=AccountStatus.ACTIVE.value,
            created_at=now, updated_at=now)
        row = accounts.by_ids(conn, [account_id])[account_id]
    push_account(rt, row)
    return account_id


def _decider_key(conn, rt: Runtime, email: str, organisation: str | None):
    account = repo.account_by_email(conn, email)
    if account is None:
        raise PermanentError(f"no account for {email}: create it first")
    if organisation is not None and rt.mappings.organisation(organisation) is None:
        raise PermanentError(f"unknown organisation {organisation!r}")
    return account.id, ("correspondent" if organisation else "central")


def add_decider(rt: Runtime, email: str, organisation: str | None) -> None:
    with transaction(rt.engine) as conn:
        account_id, scope = _decider_key(conn, rt, email, organisation)
        repo.add_decider(conn, account_id, scope, organisation, rt.clock())


def remove_decider(rt: Runtime, email: str, organisation: str | None) -> None:
    with transaction(rt.engine) as conn:
        account_id, scope = _decider_key(conn, rt, email, organisation)
        repo.remove_decider(conn, account_id, scope, organisation)


def submit_habilitation(rt: Runtime, email: str, role_key: str) -> int:
    """Insert a habilitation request exactly as docs/queue.md tells the portal to."""
    with transaction(rt.engine) as conn:
        return repo.submit_request(conn, {"kind": "habilitation", "submitted_at": rt.clock(), "email": email,
                                          "role_key": role_key})[0]
