"""The daily digest: one mail a day per decider with something pending, holding their desk link.

From ``desk.digest_hour`` (Paris time) on, each pass (every ``jobs.digest_seconds``) mails every
decider who has pending requests routed to them and has had no digest today: the requests with
their deadlines, the closest first (``DIGEST_ITEMS`` at most, then how many more), and one
signed link to their desk (``syncd.mail.desk_links.desk_url``; erased from the outbox once sent).
Central administrators also read how many requests nobody can decide (``awaiting_decider``):
this digest is the mail that tells them, once a day, while any waits.

Once a day is the outbox's dedupe key (``digest:<day>:<account id>``), as the reminders'
mails are deduplicated: a second pass, or a second daemon, enqueues nothing. A day with
nothing pending sends nothing. Without ``web.signing_key`` there is no desk, and no digest.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import structlog

from syncd.store import queries
from syncd.core import lifecycle
from syncd.core.model import AccountStatus, DeciderScope
from syncd.jobs import notify
from syncd.runtime import Runtime
from syncd.mail.outbox import enqueue
from syncd.store import desk as desk_store
from syncd.store import repo
from syncd.store.db import transaction

log = structlog.get_logger(__name__)

DIGEST_ITEMS = 30
PARIS = ZoneInfo("Europe/Paris")


def send_digests(rt: Runtime) -> int:
    """Enqueue today's digest for every decider who has something pending and none yet; return how many."""
    from syncd.mail import desk_links, links
    settings = rt.settings
    now = rt.clock()
    local = now.astimezone(PARIS)
    if not settings.desk.digest or links.signing_key(settings.web) is None or local.hour < settings.desk.digest_hour:
        return 0
    day = local.date().isoformat()
    sent = 0
    with transaction(rt.engine) as conn:
        counts = desk_store.pending_counts(conn)
        waiting = desk_store.awaiting_decider_count(conn)
        central = {d.account_id for d in repo.current_deciders(conn) if d.scope is DeciderScope.CENTRAL}
        due = set(counts) | (central if waiting else set())
        for decider_id in sorted(due - desk_store.digests_sent(conn, day, due)):
            account = repo.account_by_id(conn, decider_id)
            if account is None or account.status != AccountStatus.ACTIVE:
                continue
            context = _context(conn, rt, decider_id, now) | {
                "decider_name": f"{account.given_name} {account.family_name}",
                "desk_url": desk_links.desk_url(settings, decider_id, now), "secret_keys": ["desk_url"],
                "waiting_count": waiting if decider_id in central else 0}
            if enqueue(conn, recipient=account.email, template="decider_digest", context=context, now=now,
                       dedupe_key=desk_store.DIGEST_KEY.format(day=day, account_id=decider_id),
                       language=notify.language_of(settings)) is not None:
                sent += 1
    if sent:
        log.info("digests_sent", count=sent, day=day)
    return sent


def _context(conn, rt: Runtime, decider_id: str, now: datetime) -> dict:
    """The decider's pending requests as the digest lists them, the closest deadline first."""
    rows = desk_store.pending_for(conn, decider_id)
    today = now.astimezone(PARIS).date()
    items = []
    for row in map(repo.request_view, rows[:DIGEST_ITEMS]):
        context = notify.context_of(row, repo.account_by_id(conn, row.account_id) if row.account_id else None,
                                    rt.mappings, rt.settings.web.base_url)
        tacit = lifecycle.tacit_applies(row, internal_accounts=rt.mappings.policy.internal_account_tacit)
        items.append({"request_id": row.id, "requester_name": context["requester_name"],
                      "organisation_name": context["organisation_name"],
                      "description": queries.describe(row.kind, row.role_key, rt.mappings, row.organisation_code),
                      "deadline_at": row.deadline_at.isoformat() if row.deadline_at and tacit else "",
                      "today": bool(tacit and row.deadline_at and row.deadline_at.astimezone(PARIS).date() <= today)})
    return {"count": len(rows), "items": items, "more": max(0, len(rows) - DIGEST_ITEMS),
            "expires_at": now + timedelta(days=rt.settings.desk.link_days)}


def revoke_links(rt: Runtime, decider_ref: str, reason: str | None = None, by: str = "operator") -> str:
    """Revoke every desk link issued to a decider until now, and the sessions opened with them
    (``syncd desk revoke``): recorded in ``desk_revocations`` and in the audit trail. Return the
    account id. The next digest carries a new link."""
    from syncd.errors import PermanentError
    from syncd.store import audit
    now = rt.clock()
    with transaction(rt.engine) as conn:
        account = repo.find_account(conn, decider_ref)
        if account is None:
            raise PermanentError(f"no account {decider_ref!r}")
        desk_store.record_revocation(conn, account.id, now, by, reason)
        audit.record(conn, at=now, actor=by, action="desk_links_revoked", target=account.id,
                     detail={"reason": reason} if reason else None)
    log.info("desk_links_revoked", account_id=account.id, by=by)
    return account.id
