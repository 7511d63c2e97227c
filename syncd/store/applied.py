"""Apply's bookkeeping on PostgreSQL: a batch of requests marked applied in one statement.

Once a batch's members are in LDAP, each request is marked applied and gets its "applied"
history event, each membership its ``applied_at``, each member added its audit row. Through
SQLAlchemy that was a statement per table with a row of parameters per request, and the
memberships looked up by a list of (account, role) pairs, which PostgreSQL plans as one OR branch
per pair: most of apply's time once the directory is fast. Here the batch goes to the server as
a few arrays, ``unnest``-ed in one statement of data-modifying CTEs: one round trip per batch.
(SQLite runs in-process, where the per-row binding costs little: ``syncd.jobs.apply`` keeps its
statements there.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.engine import Connection

_MARK_APPLIED = """
WITH done AS (SELECT id, pos FROM unnest(%(ids)s::bigint[]) WITH ORDINALITY AS u(id, pos)),
marked AS (
    UPDATE requests r SET updated_at = %(now)s, applied_at = %(now)s, last_error = NULL, next_attempt_at = NULL,
                          claimed_by = NULL, claimed_until = NULL, parked_at = NULL, parked_reason = NULL
    WHERE r.id = ANY(%(ids)s::bigint[])),
events AS (
    INSERT INTO request_events (request_id, event, at) SELECT id, 'applied', %(now)s FROM done ORDER BY pos),
added AS (
    SELECT * FROM unnest(%(request_ids)s::bigint[], %(accounts)s::text[], %(roles)s::text[], %(groups)s::text[],
                         %(members)s::text[]) WITH ORDINALITY AS m(request_id, account_id, role_key, group_dn, member, pos)),
audited AS (
    INSERT INTO audit_log (at, actor, action, request_id, target, detail)
    SELECT %(now)s, 'syncd', 'ldap_member_added', request_id, left(group_dn, 1000), json_build_object('member', member)
    FROM added ORDER BY pos)
UPDATE memberships ms SET applied_at = %(now)s FROM added
WHERE ms.account_id = added.account_id AND ms.role_key = added.role_key
"""


def mark_applied(conn: Connection, ids: Sequence[int], members: Sequence[tuple[int, str, str, str, str]],
                 now: datetime) -> None:
    """Mark the requests ``ids`` applied at ``now`` (their claim, error and parking cleared: ``syncd
    replay`` may apply a parked one) with an "applied" event each, and for each member added —
    (request id, account id, role key, group DN, member DN) — its membership's ``applied_at`` and
    its audit row ("ldap_member_added", unsealed), in the order given."""
    if not ids:
        return
    cur = conn.connection.dbapi_connection.cursor()
    cur.execute(_MARK_APPLIED, {
        "ids": list(ids), "now": now, "request_ids": [m[0] for m in members], "accounts": [m[1] for m in members],
        "roles": [m[2] for m in members], "groups": [m[3] for m in members], "members": [m[4] for m in members]})
