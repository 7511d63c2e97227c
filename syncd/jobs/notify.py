"""Building the notification mails the jobs enqueue (the outbox delivers them later).

Every mail gets a dedupe key naming its request and purpose, so a job that runs twice after a
crash, or two daemons racing, enqueue it once.

Mails are written in the language of the ``smtp.language`` setting (``SYNCD_SMTP__LANGUAGE``,
French by default): callers pass ``language=language_of(rt.settings)``; a caller that passes
none gets French. The language is stored on the outbox row, and delivery renders with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from syncd.store.db import Connection

from syncd.core.model import Account, RequestKind, RequestView
from syncd.mail import links
from syncd.mail.outbox import Mail, enqueue
from syncd.mail.render import DEFAULT_LANGUAGE
from syncd.mappings import Mappings
from syncd.settings import DeskSettings, Settings, WebSettings
from syncd.store import repo


def language_of(settings: Settings) -> str:
    """The language notifications are written in: the ``smtp.language`` setting."""
    return settings.smtp.language


def request_context(conn: Connection, row: RequestView, mappings: Mappings, base_url: str) -> dict[str, Any]:
    """What every template may show about one request."""
    account = repo.account_by_id(conn, row.account_id) if row.account_id else None
    return context_of(row, account, mappings, base_url)


def context_of(row: RequestView, account: Account | None, mappings: Mappings, base_url: str) -> dict[str, Any]:
    """``request_context`` from values already read: the request and its account, if any."""
    given = account.given_name if account else row.given_name
    family = account.family_name if account else row.family_name
    org_code = row.organisation_code or (account.primary_organisation if account else None)
    target = None
    if row.kind is RequestKind.MOBILITY:
        # A mobility's organisation is where the person goes; the person is still of their own.
        target = mappings.organisation(org_code) if org_code else None
        org_code = account.primary_organisation if account else org_code
    org = mappings.organisation(org_code) if org_code else None
    role = mappings.role(row.role_key) if row.role_key else None
    app = mappings.application_of(row.role_key) if row.role_key else None
    return {
        "request_id": row.id,
        "kind": row.kind.value,
        "is_account_request": row.kind is RequestKind.ACCOUNT,
        "requester_name": " ".join(x for x in (given, family) if x) or (row.email or ""),
        "requester_email": (account.email if account else row.email) or "",
        "organisation_name": org.name if org else (org_code or ""),
        "target_organisation_name": target.name if target else (row.organisation_code or ""),
        "role_label": role.label if role else "",
        "application_label": app.label if app else "",
        "submitted_at": row.submitted_at.isoformat() if row.submitted_at else None,
        "deadline_at": row.deadline_at.isoformat() if row.deadline_at else None,
        "decide_url": f"{base_url.rstrip('/')}/decisions/{row.id}",
        "comment": row.comment,
        "reason": row.reason,
    }


def requester_mail(row: RequestView, account: Account | None, template: str, mappings: Mappings,
                   base_url: str, *, language: str = DEFAULT_LANGUAGE) -> Mail | None:
    """The mail ``to_requester`` would enqueue, for jobs that enqueue by the batch; None without an address."""
    context = context_of(row, account, mappings, base_url)
    if not context["requester_email"]:
        return None
    return Mail(recipient=context["requester_email"], template=template, context=context, request_id=row.id,
                dedupe_key=f"request:{row.id}:{template}", language=language)


def to_requester(conn: Connection, row: RequestView, template: str, mappings: Mappings, base_url: str,
                 now: datetime, *, language: str = DEFAULT_LANGUAGE, **extra: Any) -> None:
    context = request_context(conn, row, mappings, base_url) | extra
    recipient = context["requester_email"]
    if recipient:
        enqueue(conn, recipient=recipient, template=template, context=context, now=now,
                request_id=row.id, dedupe_key=f"request:{row.id}:{template}", language=language)


def to_deciders(conn: Connection, row: RequestView, decider_ids: tuple[str, ...] | list[str], template: str,
                mappings: Mappings, web: WebSettings, now: datetime, purpose: str, *,
                language: str = DEFAULT_LANGUAGE, desk: DeskSettings | None = None, **extra: Any) -> int:
    """Mail each decider; with a signing key, each gets a signed, single-use decision link of their own.

    The key is ``web.signing_key``; without one the mail carries the plain URL. A signed link is
    erased from the outbox row once the mail is sent. With a key, the deciders of
    ``desk.digest_only`` get no mail here: their daily digest lists the request (``syncd.jobs.digest``).
    """
    base_url = web.base_url
    context = request_context(conn, row, mappings, base_url) | extra
    key = links.signing_key(web)
    expires_at = links.link_expiry(row.deadline_at, now) if key else None
    sent = 0
    for decider_id in decider_ids:
        decider = repo.account_by_id(conn, decider_id)
        if decider is None or (key and digest_only(desk, decider.email)):
            continue
        personal: dict[str, Any] = {"decider_name": f"{decider.given_name} {decider.family_name}"}
        if key and expires_at:
            personal["decide_url"] = links.decision_url(base_url, key, row.id, decider_id, expires_at)
            personal["secret_keys"] = sorted(set(context.get("secret_keys") or []) | {"decide_url"})
        enqueue(conn, recipient=decider.email, template=template, context=context | personal, now=now,
                request_id=row.id, dedupe_key=f"request:{row.id}:{purpose}:{decider_id}", language=language)
        sent += 1
    return sent


def digest_only(desk: DeskSettings | None, email: str | None) -> bool:
    """Whether this decider prefers the daily digest to a mail per request (``desk.digest_only``)."""
    if desk is None or not desk.digest or not desk.digest_only:
        return False
    wanted = {e.strip().lower() for e in desk.digest_only}
    return "*" in wanted or (email or "").lower() in wanted
