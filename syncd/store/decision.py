"""One decision's SQL, on the driver's cursor: the hot path of ``syncd web``'s decision endpoint.

A decision is a handful of indexed statements on single rows (lock the request, the decider's
roles, the membership held; then the status, the history event, the membership, the audit row,
the call's nonce). Run through SQLAlchemy Core, building, compiling and wrapping each one cost
more CPU than the database's own work, so they are plain SQL strings here, run on the driver's
cursor inside the caller's SQLAlchemy transaction: prepared once per connection (sqlite3 keeps a
cache of prepared statements; psycopg prepares a statement on the server from its fifth use).

What the statements read and write is what ``syncd.store.repo``, ``grants``, ``audit`` and
``tokens`` read and write; the rules (authorisation, the transition, the validity of a grant)
stay in the core, called by ``syncd.jobs.decisions`` between the reads and the writes. Driver
errors are translated by ``syncd.store.db.transaction`` as any other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, insert
from sqlalchemy.engine import Connection

from syncd.core import lifecycle
from syncd.core.model import Decider, DeciderScope, RequestView, Status
from syncd.errors import StoreRejected
from syncd.store import repo, wakeup
from syncd.store.leadership import WAKE_CHANNEL
from syncd.store.tables import UtcDateTime, accounts, requests, time_from_driver, time_to_driver

_REQUEST_COLUMNS = tuple(c.name for c in requests.columns)
_TIMES = frozenset(c.name for c in requests.columns if isinstance(c.type, UtcDateTime))
_BOOLEANS = frozenset(c.name for c in requests.columns if isinstance(c.type, Boolean))


def _both(sql: str) -> dict[bool, str]:
    """The statement for SQLite (``:name`` parameters) and for PostgreSQL (``%(name)s``), by
    ``postgresql``; ``{json}`` marks where PostgreSQL casts a JSON text parameter."""
    pg = re.sub(r":(\w+)", r"%(\1)s", sql)
    return {False: sql.replace("{json}", ""), True: pg.replace("{json}", "::json")}


_LOCK = {False: f"SELECT {', '.join(_REQUEST_COLUMNS)} FROM requests WHERE id = ?",
         True: f"SELECT {', '.join(_REQUEST_COLUMNS)} FROM requests WHERE id = %s FOR UPDATE"}

# An account (by id, or by its e-mail as stored: both indexed) and its decider roles that can
# matter for one organisation: central, or correspondent of that organisation.
_ROLES = ("SELECT a.id, a.email, a.status, d.scope, d.organisation_code FROM accounts a "
          "LEFT JOIN deciders d ON d.account_id = a.id "
          f"AND (d.scope = '{DeciderScope.CENTRAL.value}' OR d.organisation_code = :organisation_code) ")
_ROLE_COLUMNS = ("id", "email", "status", "scope", "organisation_code")
_ROLES_BY_REF = _both(_ROLES + "WHERE a.id = :ref OR a.email = :email")
_ROLES_BY_ANY_CASE = _both(_ROLES + "WHERE lower(a.email) = :email")
# Correlated rather than joined: SQLite would otherwise scan every account to find the few
# deciders of one organisation.
_ACTIVE_EMAIL = "(SELECT a.email FROM accounts a WHERE a.id = d.account_id AND a.status = 'active')"
_RIVAL = (f"SELECT d.account_id, {_ACTIVE_EMAIL}, d.organisation_code FROM deciders d "
          f"WHERE d.scope = '{DeciderScope.CORRESPONDENT.value}' AND d.organisation_code = :organisation_code "
          f"AND d.account_id <> :decider AND {_ACTIVE_EMAIL} IS NOT NULL")
_LOCAL_RIVAL = {True: _both(_RIVAL + " AND d.account_id <> :requester LIMIT 1"), False: _both(_RIVAL + " LIMIT 1")}

_HELD = _both("SELECT expires_at, revoked_at FROM memberships WHERE account_id = :account_id AND role_key = :role_key")
# The same, for the request's own (account, role): read beside the request, before its row is known.
_HELD_FOR = _both("SELECT m.expires_at, m.revoked_at FROM requests r JOIN memberships m "
                  "ON m.account_id = r.account_id AND m.role_key = r.role_key WHERE r.id = :request_id")
_ROLES_FOR = _both(_ROLES.replace(":organisation_code", "(SELECT coalesce(organisation_code, '') FROM requests "
                                  "WHERE id = :request_id)") + "WHERE a.id = :ref OR a.email = :email")


def moves_to(status: Status, column: str = "status") -> str:
    """SQL: the row's status is one the state machine moves to ``status`` from (``lifecycle.sources``,
    but staying put: a decision or an acceptance written twice would be recorded twice)."""
    froms = ", ".join(f"'{s.value}'" for s in sorted(lifecycle.sources(status) - {status}))
    return f"{column} IN ({froms})" if froms else "FALSE"


_RECORD_DECISION = {to: _both("UPDATE requests SET status = :status, decided_at = :at, decided_by = :by, "
                              f"comment = :why, updated_at = :at WHERE id = :request_id AND {moves_to(to)}")
                    for to in Status}
_EVENT = _both("INSERT INTO request_events (request_id, event, at, actor, detail) "
               "VALUES (:request_id, :event, :at, :actor, :detail{json})")
_AUDIT = _both("INSERT INTO audit_log (at, actor, action, request_id, target, detail) "
               "VALUES (:at, :actor, :action, :request_id, :target, :detail{json})")
# A grant lifts any revocation and leaves LDAP to catch up (grants.grant_memberships).
_GRANT = _both("INSERT INTO memberships (account_id, role_key, granted_by_request, granted_at, expires_at) "
               "VALUES (:account_id, :role_key, :request_id, :at, :expires_at) "
               "ON CONFLICT (account_id, role_key) DO UPDATE SET granted_by_request = excluded.granted_by_request, "
               "granted_at = excluded.granted_at, expires_at = excluded.expires_at, revoked_at = NULL, "
               "applied_at = NULL")
_CLAIM = _both("INSERT INTO used_tokens (key, created_at, expires_at, result) VALUES (:key, :now, :expires_at, "
               ":result{json}) ON CONFLICT (key) DO NOTHING RETURNING key")


NOT_READ = object()   # ``read``'s membership when the request asks for none


def read(conn: Connection, request_id: int, ref: str) -> tuple[RequestView | None, list[dict[str, Any]], Any]:
    """What a decision reads before the core decides: the request's row, locked (``lock_request``),
    the rows of ``account_roles(ref, its organisation)``, and the membership its (account, role)
    holds (``membership_held``, or ``NOT_READ`` for a request that names none). On PostgreSQL
    the three statements go in one pipeline: one round trip."""
    postgresql = _postgresql(conn)
    params = {"request_id": request_id, "ref": ref, "email": ref.lower()}
    if postgresql:
        with conn.connection.dbapi_connection.pipeline():
            lock = _run(conn, _LOCK[True], (request_id,))
            roles = _run(conn, _ROLES_FOR[True], params)
            held = _run(conn, _HELD_FOR[True], params)
        row = _request_row(lock.fetchone())
        role_rows = roles.fetchall()
        found = held.fetchone()
    else:
        row = lock_request(conn, request_id)
        role_rows = _run(conn, _ROLES_FOR[False], params).fetchall()
        found = _run(conn, _HELD_FOR[False], params).fetchone()
    if row is None:
        return None, [], NOT_READ
    rows = [dict(zip(_ROLE_COLUMNS, r, strict=True)) for r in role_rows]
    rows = [r for r in rows if r["id"] == ref] or rows
    if not rows:     # e-mails are stored in lower case: the case-blind scan only for one that was not
        rows = account_roles(conn, ref, row.organisation_code)
    if row.account_id is None or row.role_key is None:
        return row, rows, NOT_READ
    return row, rows, None if found is None else (time_from_driver(found[0]), time_from_driver(found[1]))


@contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """Statements run inside are sent together on PostgreSQL (psycopg's pipeline mode: the
    writes of a decision, one round trip); on SQLite, in-process, as they come. A row count is
    known there only when the pipeline ends: ``record_decision``'s guard is checked then."""
    if not _postgresql(conn):
        yield
        return
    unchecked = conn.info.setdefault(_UNCHECKED, [])
    try:
        with conn.connection.dbapi_connection.pipeline():
            yield
        for cur, message in unchecked:
            if cur.rowcount != 1:
                raise StoreRejected(message)
    finally:
        del conn.info[_UNCHECKED]


_UNCHECKED = "syncd_unchecked_writes"   # conn.info: the guarded writes ``pipelined`` checks at its end


def wake_apply(conn: Connection) -> None:
    """``leadership.notify(conn, WAKE_CHANNEL, "apply")`` on the driver's cursor: the daemon's
    apply lane is woken when the transaction commits (PostgreSQL: NOTIFY; SQLite: a datagram
    once ``db.transaction`` has committed)."""
    if _postgresql(conn):
        _run(conn, "SELECT pg_notify(%(channel)s, 'apply')", {"channel": WAKE_CHANNEL})
    else:
        wakeup.wake_after_commit(conn)


def _postgresql(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _run(conn: Connection, statement: str, params: Any) -> Any:
    """Run one statement on the driver's cursor of ``conn`` (in its transaction); the cursor."""
    cur = conn.connection.dbapi_connection.cursor()
    cur.execute(statement, params)
    return cur


def decider_and_rivals(conn: Connection, ref: str, organisation_code: str, requester_account_id: str | None,
                       rows: list[dict[str, Any]] | None = None) -> tuple[dict[str, Any] | None, list[Decider]]:
    """``find_account(ref)``, and the deciders ``current_route`` needs to tell whether that account
    decides a request of ``organisation_code`` made by ``requester_account_id``: one or two indexed
    queries instead of reading every decider of the organisation (as ``repo.decider_and_rivals``).

    The list holds the account's own roles that can matter for the organisation (central, or
    correspondent of that organisation) if the account is active, and, when it is not itself a
    correspondent of the organisation, one other active correspondent of it who is not the
    requester, if there is one: whether there is one is what sends a local request to the
    organisation's correspondents rather than to the central administrators. ``rows``: the
    account's, read already (``read``).
    """
    rows = account_roles(conn, ref, organisation_code) if rows is None else rows
    if not rows:
        return None, []
    account = rows[0]
    if account["status"] != "active":
        return account, []
    roles = [Decider(r["id"], r["email"], DeciderScope(r["scope"]), r["organisation_code"])
             for r in rows if r["id"] == account["id"] and r["scope"] is not None]
    if not roles or any(d.scope is DeciderScope.CORRESPONDENT for d in roles):
        return account, roles
    rival = local_rival(conn, organisation_code, account["id"], requester_account_id)
    if rival is not None:
        roles.append(Decider(rival[0], rival[1], DeciderScope.CORRESPONDENT, rival[2]))
    return account, roles


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def lock_request(conn: Connection, request_id: int) -> RequestView | None:
    """The request's row, locked for the transaction (PostgreSQL: ``FOR UPDATE``; SQLite's write
    lock covers it), as ``repo.get_request`` returns it: times aware in UTC, booleans as such."""
    return _request_row(_run(conn, _LOCK[_postgresql(conn)], (request_id,)).fetchone())


def _request_row(values: Any) -> RequestView | None:
    if values is None:
        return None
    row = dict(zip(_REQUEST_COLUMNS, values, strict=True))
    for name in _TIMES:
        row[name] = time_from_driver(row[name])
    for name in _BOOLEANS:
        if row[name] is not None:
            row[name] = bool(row[name])
    return repo.request_view(row)


def account_roles(conn: Connection, ref: str, organisation_code: str) -> list[dict[str, Any]]:
    """``ref``'s account (by id, else by e-mail) with each of its decider roles that can matter
    for ``organisation_code`` (``scope`` None when it has none): the rows of
    ``repo.decider_and_rivals``, which this replaces on the decision's path."""
    postgresql = _postgresql(conn)
    params = {"ref": ref, "email": ref.lower(), "organisation_code": organisation_code}
    rows = [dict(zip(_ROLE_COLUMNS, r, strict=True)) for r in _run(conn, _ROLES_BY_REF[postgresql], params).fetchall()]
    # The id first, then the e-mail; e-mails are stored in lower case, so the case-blind scan
    # is only for a row that was not.
    rows = [r for r in rows if r["id"] == ref] or rows
    if not rows:
        rows = [dict(zip(_ROLE_COLUMNS, r, strict=True))
                for r in _run(conn, _ROLES_BY_ANY_CASE[postgresql], params).fetchall()]
    return rows


def local_rival(conn: Connection, organisation_code: str, decider: str,
                requester: str | None) -> tuple[str, str, str] | None:
    """One active correspondent of the organisation other than ``decider`` and ``requester``:
    (account id, e-mail, organisation code), or None."""
    found = _run(conn, _LOCAL_RIVAL[requester is not None][_postgresql(conn)],
                 {"organisation_code": organisation_code, "decider": decider, "requester": requester}).fetchone()
    return tuple(found) if found else None


def membership_held(conn: Connection, account_id: str, role_key: str) -> tuple[datetime | None, datetime | None] | None:
    """(expires_at, revoked_at) of the membership, or None when there is none."""
    found = _run(conn, _HELD[_postgresql(conn)], {"account_id": account_id, "role_key": role_key}).fetchone()
    return None if found is None else (time_from_driver(found[0]), time_from_driver(found[1]))


def record_decision(conn: Connection, request_id: int, status: str, at: datetime, decided_by: str | None,
                    comment: str | None) -> None:
    """Write a decision on a request locked in the transaction, from a status the state machine moves
    to ``status`` from (``moves_to``): else it changes nothing and raises ``StoreRejected``."""
    postgresql = _postgresql(conn)
    cur = _run(conn, _RECORD_DECISION[Status(status)][postgresql], {
        "status": status, "at": time_to_driver(at, postgresql), "by": decided_by, "why": comment,
        "request_id": request_id})
    message = f"request {request_id}: the state machine has no move to {status} from its status"
    if _UNCHECKED in conn.info:    # inside ``pipelined``: the row count is not known yet
        conn.info[_UNCHECKED].append((cur, message))
    elif cur.rowcount != 1:
        raise StoreRejected(message)


def add_event(conn: Connection, request_id: int, event: str, at: datetime, actor: str | None,
              detail: dict | None) -> None:
    postgresql = _postgresql(conn)
    _run(conn, _EVENT[postgresql], {"request_id": request_id, "event": event, "at": time_to_driver(at, postgresql),
                                    "actor": actor, "detail": _json(detail)})


def audit(conn: Connection, *, at: datetime, actor: str, action: str, request_id: int | None, target: str | None,
          detail: dict | None) -> None:
    """``audit.record``: one row, unsealed, truncated to the columns' sizes as it does."""
    postgresql = _postgresql(conn)
    _run(conn, _AUDIT[postgresql], {
        "at": time_to_driver(at, postgresql), "actor": actor[:100], "action": action[:40], "request_id": request_id,
        "target": target[:1000] if target else None, "detail": _json(detail)})


def grant(conn: Connection, account_id: str, role_key: str, request_id: int, at: datetime,
          expires_at: datetime | None) -> None:
    """Write a granted membership, new or not: not revoked, not applied yet."""
    postgresql = _postgresql(conn)
    _run(conn, _GRANT[postgresql], {
        "account_id": account_id, "role_key": role_key, "request_id": request_id, "at": time_to_driver(at, postgresql),
        "expires_at": time_to_driver(expires_at, postgresql)})


def create_account(conn: Connection, account_id: str, request: RequestView, now: datetime) -> None:
    """The account an accepted account request asks for, pending until LDAP has it."""
    conn.execute(insert(accounts).values(
        id=account_id, email=request.email, civility=request.civility, given_name=request.given_name,
        family_name=request.family_name, primary_organisation=request.organisation_code,
        internal=bool(request.internal), terms_version=request.terms_version,
        terms_accepted_at=time_from_driver(request.submitted_at), status="pending", created_at=now,
        updated_at=now))


def claim_token(conn: Connection, key: str, now: datetime, expires_at: datetime, result: Any = None) -> bool:
    """``tokens.claim``: record ``key``; True if it was new, False if someone had recorded it already."""
    postgresql = _postgresql(conn)
    return _run(conn, _CLAIM[postgresql], {"key": key, "now": time_to_driver(now, postgresql),
                                           "expires_at": time_to_driver(expires_at, postgresql),
                                           "result": _json(result)}).fetchone() is not None
