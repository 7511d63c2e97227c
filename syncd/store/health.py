"""What the daemon records of its own runs and reads to decide what to do next, and what
``syncd status`` shows: requests per status, failing requests, job runs, waiting work.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from syncd.core.model import AccountStatus, Status
from syncd.store.repo import GRANTED_STATUSES, OPEN_STATUSES, aware
from syncd.store.tables import accounts, deciders, job_runs, outbox, reconcile_runs, requests, status_in

def status_counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(requests.c.status, func.count()).group_by(requests.c.status))
    return {status: count for status, count in rows}


def oldest_open_submitted_at(conn: Connection) -> datetime | None:
    value = conn.execute(select(func.min(requests.c.submitted_at))    # parked ones are counted apart
                         .where(requests.c.status.in_(OPEN_STATUSES), requests.c.parked_at.is_(None))).scalar()
    return aware(value)


def awaiting_decider_oldest(conn: Connection) -> datetime | None:
    """When the oldest request that nobody can decide was submitted (None: there is none)."""
    return aware(conn.execute(select(func.min(requests.c.submitted_at))
                              .where(requests.c.status == Status.AWAITING_DECIDER.value)).scalar())


def central_administrator_count(conn: Connection) -> int:
    """Active central administrators: without one, requests of organisations with no
    correspondent, centrally managed roles and escalations have nobody to decide them."""
    return conn.execute(select(func.count(func.distinct(deciders.c.account_id)))
                        .select_from(deciders.join(accounts, accounts.c.id == deciders.c.account_id))
                        .where(deciders.c.scope == "central", accounts.c.status == AccountStatus.ACTIVE.value)).scalar() or 0


def unapplied_count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(requests).where(
        status_in(requests, GRANTED_STATUSES), requests.c.applied_at.is_(None))).scalar() or 0


def failing_count(conn: Connection) -> int:
    """Accepted requests whose LDAP write failed and waits for a retry, parked ones apart."""
    return conn.execute(select(func.count()).select_from(requests).where(
        status_in(requests, GRANTED_STATUSES), requests.c.applied_at.is_(None),
        requests.c.last_error.is_not(None), requests.c.parked_at.is_(None))).scalar() or 0


def failing_requests(conn: Connection, limit: int = 10) -> list[RowMapping]:
    return list(conn.execute(select(requests.c.id, requests.c.status, requests.c.attempts,
                                    requests.c.last_error, requests.c.next_attempt_at)
                             .where(requests.c.last_error.is_not(None), requests.c.applied_at.is_(None),
                                    status_in(requests, GRANTED_STATUSES), requests.c.parked_at.is_(None))
                             .order_by(requests.c.id).limit(limit)).mappings())


def waiting_work(conn: Connection, now: datetime) -> set[str]:
    """The cheap wake-up probe: which jobs have work right now (indexed lookups, LIMIT 1 each).

    Rows another daemon holds under a live lease are not work for this one: counting them made
    every probe start a run that claimed nothing.
    """
    free = or_(requests.c.claimed_until.is_(None), requests.c.claimed_until <= now)
    due = and_(or_(requests.c.next_attempt_at.is_(None), requests.c.next_attempt_at <= now),
               requests.c.parked_at.is_(None))
    found = set()
    if conn.execute(select(requests.c.id).where(requests.c.status == Status.NEW.value, due, free)
                    .limit(1)).first():
        found.add("intake")
    if conn.execute(select(requests.c.id).where(status_in(requests, GRANTED_STATUSES),
                                                requests.c.applied_at.is_(None), due, free).limit(1)).first():
        found.add("apply")
    mail_free = or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= now)
    mail_due = or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= now)
    if conn.execute(select(outbox.c.id).where(outbox.c.status == "pending", mail_due, mail_free)
                    .limit(1)).first():
        found.add("deliver")
    return found


def record_job_run(conn: Connection, job: str, worker: str, started_at: datetime, error: str | None) -> int:
    """Remember how a job's last run went; return its count of consecutive failures."""
    row = conn.execute(select(job_runs).where(job_runs.c.job == job)).mappings().first()
    failures = 0 if error is None else (row["consecutive_failures"] + 1 if row else 1)
    values = dict(worker=worker, last_started_at=started_at, consecutive_failures=failures)
    if error is None:
        values.update(last_ok_at=started_at)
    else:
        values.update(last_error_at=started_at, last_error=error[:2000])
    if row is None:
        conn.execute(insert(job_runs).values(job=job, **values))
    else:
        conn.execute(update(job_runs).where(job_runs.c.job == job).values(**values))
    return failures


def job_succeeded_once(conn: Connection, job: str) -> bool:
    """Whether any daemon has ever run ``job`` without error."""
    return conn.execute(select(job_runs.c.last_ok_at).where(job_runs.c.job == job)).scalar() is not None


def job_health(conn: Connection) -> list[RowMapping]:
    return list(conn.execute(select(job_runs).order_by(job_runs.c.job)).mappings())


def start_reconcile_run(conn: Connection, mode: str, now: datetime) -> int:
    return conn.execute(insert(reconcile_runs).values(started_at=now, mode=mode)).inserted_primary_key[0]


def finish_reconcile_run(conn: Connection, run_id: int, now: datetime, summary: dict | None,
                         error: str | None) -> None:
    conn.execute(update(reconcile_runs).where(reconcile_runs.c.id == run_id)
                 .values(finished_at=now, summary=summary, error=error))
