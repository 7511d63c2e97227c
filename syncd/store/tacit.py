"""The tacit sweep's SQL: claim the due requests, then write a batch's acceptances set-based.

``claim_due`` reads the few columns the core's rule needs (``lifecycle.tacit_acceptances``) for up
to ``limit`` due requests, locked (PostgreSQL: ``SKIP LOCKED``), as plain tuples. The job lets the
core say what each becomes; ``accept`` then writes, for the ids the core accepted, the status change, the
history events, the audit rows and the memberships of plain habilitations as a few statements
whatever the batch's size: the ids go to the database once (SQLite: into a temporary table from
one JSON parameter; PostgreSQL: an ``unnest``-ed array in a single statement of data-modifying
CTEs, one round trip), and every row is derived there from ``requests``. Nothing is bound row by
row in Python.

The values are the rule's: the job passes the transition's status, time, decider and event, and
the end of validity for each role (``lifecycle.validity_end``); SQL only copies them. Rows are
written in the claim's order (oldest deadline first), so the audit rows are sealed in it.

Statements run on the driver's cursor inside the caller's SQLAlchemy transaction; driver errors
are translated by ``syncd.store.db.transaction`` as any other.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from syncd.core.lifecycle import TacitCandidate
from syncd.core.model import RequestKind, Status
from syncd.store.decision import moves_to
from syncd.store.tables import request_events, requests, time_from_driver, time_to_driver

# What ``lifecycle.tacit_acceptance`` reads, and what an acceptance grants.
_CLAIMED = TacitCandidate._fields


def _claim_sql(internal_accounts: bool, postgresql: bool) -> str:
    # Only what may be accepted tacitly (lifecycle.tacit_applies), and only what reached a decider:
    # an external account request past its deadline stays pending for its escalation, and must
    # not fill the batch ahead of the requests the sweep can move.
    mark = "%s" if postgresql else "?"
    account_ok = "r.internal IS TRUE" if internal_accounts else "FALSE"
    return (f"SELECT {', '.join('r.' + c for c in _CLAIMED)} FROM requests r "
            f"WHERE r.status = '{Status.PENDING.value}' AND r.deadline_at <= {mark} "
            "AND r.first_routed_at IS NOT NULL "
            "AND EXISTS (SELECT 1 FROM request_deciders d WHERE d.request_id = r.id) "
            f"AND (r.kind <> '{RequestKind.ACCOUNT.value}' OR {account_ok}) "
            f"ORDER BY r.deadline_at, r.id LIMIT {mark}" + (" FOR NO KEY UPDATE OF r SKIP LOCKED" if postgresql else ""))


_CLAIM = {(i, pg): _claim_sql(i, pg) for i in (True, False) for pg in (True, False)}


def _cursor(conn: Connection) -> Any:
    return conn.connection.dbapi_connection.cursor()


def claim_due(conn: Connection, now: datetime, limit: int, internal_accounts: bool = True) -> list[TacitCandidate]:
    """Up to ``limit`` pending requests whose deadline has come (oldest deadline first), locked,
    as the tuples the core's rule reads (``lifecycle.TacitCandidate``: times aware; in UTC on
    SQLite, in the session's zone on PostgreSQL as the driver gives them): those
    that may be accepted tacitly (``internal_accounts``: internal account requests may).

    On PostgreSQL rows another transaction holds are skipped (``SKIP LOCKED``): two daemons
    sweeping at once take disjoint requests, and a request a decider is deciding right now is
    left to that decision. SQLite's write transaction is exclusive, which covers it.

    PostgreSQL reads them through ``ix_requests_routed_pending_deadline`` (migration 0013), the
    due ones' pages only; SQLite through ``ix_requests_status_deadline``, in deadline order.
    """
    if conn.dialect.name == "postgresql":
        # Aware already, and booleans: each row made a candidate as it is read. In binary: the
        # server formats no time as text, the driver parses none.
        from psycopg.rows import args_row   # the driver's; the store imports without it
        cur = conn.connection.dbapi_connection.cursor(binary=True)
        cur.row_factory = args_row(TacitCandidate)
        cur.execute(_CLAIM[internal_accounts, True], (now, limit))
        return cur.fetchall()
    cur = _cursor(conn)
    cur.execute(_CLAIM[internal_accounts, False], (time_to_driver(now, False), limit))
    time = time_from_driver
    return [TacitCandidate(i, kind, status, None if internal is None else bool(internal), time(routed), time(deadline),
                           account, role)
            for i, kind, status, internal, routed, deadline, account, role in cur.fetchall()]


def _array(ids: Sequence[int]) -> str:
    """PostgreSQL's text form of an array of ids, cast in the statement: a tenth of the driver's
    CPU for a list of 10,000 ints."""
    return "{%s}" % ",".join(map(str, ids))


# The batch's ids in the claim's order, each with whether its membership is granted here, and
# each granted role's end of validity: temporary tables with keys, so that every statement
# below joins them by index (a join on json_each itself is a scan per row).
_SQLITE_FILL = (
    "CREATE TEMP TABLE IF NOT EXISTS tacit_due (pos INTEGER PRIMARY KEY, id INTEGER NOT NULL UNIQUE, "
    "plain INTEGER NOT NULL)",
    "CREATE TEMP TABLE IF NOT EXISTS tacit_expiry (role_key TEXT PRIMARY KEY, expires_at TEXT)",
    "DELETE FROM temp.tacit_due",
    "DELETE FROM temp.tacit_expiry",
)
_SQLITE_DUE = ("INSERT INTO temp.tacit_due (pos, id, plain) "
               "SELECT key, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)")
_SQLITE_EXPIRY = "INSERT INTO temp.tacit_expiry (role_key, expires_at) SELECT key, value FROM json_each(?)"
_SQLITE_MOVE = {to: "UPDATE requests SET status = :to_status, decided_at = :at, decided_by = :decided_by, comment = "
                f":comment, updated_at = :at WHERE id IN (SELECT id FROM temp.tacit_due) AND {moves_to(to)} RETURNING id"
                for to in Status}
_SQLITE_KEEP = "DELETE FROM temp.tacit_due WHERE id NOT IN (SELECT value FROM json_each(?))"
_SQLITE_EVENTS = ("INSERT INTO request_events (request_id, at, event, actor, detail) "
                  "SELECT id, :at, :event, :decided_by, :detail FROM temp.tacit_due ORDER BY pos")
_SQLITE_AUDIT = ("INSERT INTO audit_log (at, actor, action, request_id, target, detail) "
                 "SELECT :at, :actor, :action, r.id, "
                 "substr(r.kind || ':' || coalesce(nullif(r.role_key, ''), r.email, 'None'), 1, 1000), :detail "
                 "FROM temp.tacit_due d CROSS JOIN requests r ON r.id = d.id ORDER BY d.pos")
# Written in key order, as grants.grant_memberships does; a grant lifts any revocation and
# leaves LDAP to catch up. ``WHERE true``: SQLite's parser needs it before ON CONFLICT here.
# CROSS JOIN: SQLite joins in the order written, the batch's ids first, then each request by its
# key; left to its planner (no statistics on the temporary tables) it scanned the whole
# (account_id, role_key) index of requests to serve the ORDER BY.
_SQLITE_GRANT = ("INSERT INTO memberships (account_id, role_key, granted_by_request, granted_at, expires_at) "
                 "SELECT r.account_id, r.role_key, r.id, :at, e.expires_at "
                 "FROM temp.tacit_due d CROSS JOIN requests r ON r.id = d.id "
                 "CROSS JOIN temp.tacit_expiry e ON e.role_key = r.role_key "
                 "WHERE d.plain = 1 "
                 "ORDER BY r.account_id, r.role_key "
                 "ON CONFLICT (account_id, role_key) DO UPDATE SET granted_by_request = excluded.granted_by_request, "
                 "granted_at = excluded.granted_at, expires_at = excluded.expires_at, "
                 "revoked_at = NULL, applied_at = NULL")

_POSTGRESQL_ACCEPT = {to: f"""
WITH due AS (SELECT id, plain, pos FROM unnest(%(ids)s::bigint[], %(plain)s::boolean[]) WITH ORDINALITY AS u(id, plain, pos)),
moved AS (
    UPDATE requests r SET status = %(to_status)s, decided_at = %(at)s, decided_by = %(decided_by)s,
                          comment = %(comment)s, updated_at = %(at)s
    FROM due WHERE r.id = due.id AND r.id = ANY(%(ids)s::bigint[]) AND {moves_to(to, 'r.status')}
    RETURNING r.id, due.pos, due.plain, r.kind, r.role_key, r.email, r.account_id),
events AS (
    INSERT INTO request_events (request_id, at, event, actor, detail)
    SELECT id, %(at)s, %(event)s, %(decided_by)s, CAST(%(detail)s AS json) FROM moved ORDER BY pos),
audited AS (
    INSERT INTO audit_log (at, actor, action, request_id, target, detail)
    SELECT %(at)s, %(actor)s, %(action)s, id,
           left(kind || ':' || coalesce(nullif(role_key, ''), email, 'None'), 1000), CAST(%(detail)s AS json)
    FROM moved ORDER BY pos),
expiry AS (SELECT * FROM unnest(%(roles)s::text[], %(expires)s::timestamptz[]) AS e(role_key, expires_at)),
granted AS (
    INSERT INTO memberships (account_id, role_key, granted_by_request, granted_at, expires_at)
    SELECT m.account_id, m.role_key, m.id, %(at)s, e.expires_at
    FROM moved m JOIN expiry e ON e.role_key = m.role_key
    WHERE m.plain
    ORDER BY m.account_id, m.role_key
    ON CONFLICT (account_id, role_key) DO UPDATE SET granted_by_request = excluded.granted_by_request,
        granted_at = excluded.granted_at, expires_at = excluded.expires_at, revoked_at = NULL, applied_at = NULL)
SELECT count(*), CASE WHEN count(*) < cardinality(%(ids)s::bigint[]) THEN array_agg(id) END FROM moved
""" for to in Status}


def accept(conn: Connection, ids: Sequence[int], *, to_status: str, at: datetime,
           decided_by: str | None, comment: str | None, event: str, detail: dict[str, Any],
           grant_ids: Collection[int] = (), expiry: dict[str, datetime | None] | None = None) -> set[int]:
    """Record one transition on the requests ``ids`` (in that order), with a history event
    (``event``, ``detail``) and an audit row each (actor ``decided_by`` or "syncd"), and grant the
    membership its request asks for to each of ``grant_ids`` that moved, ending at
    ``expiry[role_key]``; return the ids moved.

    Only requests in a status the state machine moves to ``to_status`` from move (``decision.moves_to``):
    one decided meanwhile keeps its decision, and gets no event, audit row or membership. ``grant_ids`` must be habilitations whose
    (account, role) pairs differ from each other; ``expiry`` must name each of their roles.
    """
    if not ids:
        return set()
    actor = (decided_by or "syncd")[:100]
    expiry = expiry or {}
    plain = set(grant_ids)
    cur = _cursor(conn)
    if conn.dialect.name == "postgresql":
        roles = sorted(expiry)
        cur.execute(_POSTGRESQL_ACCEPT[Status(to_status)], {
            "ids": _array(ids), "to_status": to_status, "at": at,
            "decided_by": decided_by, "comment": comment, "event": event, "detail": json.dumps(detail),
            "actor": actor, "action": event[:40], "roles": roles, "expires": [expiry[r] for r in roles],
            "plain": "{%s}" % ",".join(["t" if i in plain else "f" for i in ids])})
        # How many moved, and which only when some did not (a decision came first): one row back.
        count, some = cur.fetchone()
        return set(ids) if count == len(ids) else set(some or ())
    stamp = time_to_driver(at, False)
    for statement in _SQLITE_FILL:
        cur.execute(statement)
    cur.execute(_SQLITE_DUE, (json.dumps([[i, int(i in plain)] for i in ids]),))
    cur.execute(_SQLITE_EXPIRY, (json.dumps({k: time_to_driver(v, False) for k, v in expiry.items()}),))
    cur.execute(_SQLITE_MOVE[Status(to_status)], {"to_status": to_status, "at": stamp,
                               "decided_by": decided_by, "comment": comment})
    moved = {r[0] for r in cur.fetchall()}
    if len(moved) < len(ids):
        cur.execute(_SQLITE_KEEP, (json.dumps(sorted(moved)),))
    text = json.dumps(detail)
    cur.execute(_SQLITE_EVENTS, {"at": stamp, "event": event, "decided_by": decided_by, "detail": text})
    cur.execute(_SQLITE_AUDIT, {"at": stamp, "actor": actor, "action": event[:40], "detail": text})
    if plain:
        cur.execute(_SQLITE_GRANT, {"at": stamp})
    return moved


# --- reminders ---------------------------------------------------------------------------------

def pending_due_by(conn: Connection, now: datetime, horizon: datetime) -> list[int]:
    """The pending requests whose deadline is after ``now`` and at latest ``horizon``."""
    return list(conn.execute(select(requests.c.id).where(
        requests.c.status == Status.PENDING.value, requests.c.deadline_at > now,
        requests.c.deadline_at <= horizon).order_by(requests.c.id)).scalars())


def reminders_sent(conn: Connection, request_id: int) -> frozenset[int]:
    """The n of the "D-n" reminders already sent for a request (its ``reminded`` events)."""
    return frozenset(
        int(d["detail"]["days_before"]) for d in conn.execute(
            select(request_events.c.detail).where(request_events.c.request_id == request_id,
                                                  request_events.c.event == "reminded")).mappings()
        if d["detail"] and "days_before" in d["detail"])
