"""Signed one-click decision links, and the signed token of the decision form.

A link names one request and one decider, expires, and is single-use: its random id goes into
``used_tokens`` (``link:<id>``) when a decision taken through it is recorded. It is signed with
``web.signing_key`` (HMAC-SHA256, itsdangerous), under a salt of its own so that no other token
signed with the same key can pass for a link.

This module needs no web framework: the jobs put links in the deciders' mails
(``syncd.jobs.notify.to_deciders``) and the web pages check them. ``rt`` is a ``syncd.runtime.Runtime``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from itsdangerous import BadSignature, URLSafeSerializer

if TYPE_CHECKING:
    from syncd.settings import WebSettings

LINK_SALT = "syncd.decision-link.v1"
FORM_SALT = "syncd.decision-form.v1"
LINK_PATH = "/decide/"
# A link lives until a day after the request's tacit deadline (the page then says the request was
# accepted tacitly), and at most this long when the deadline is unknown or very far.
DEFAULT_LINK_DAYS = 14
MAX_LINK_DAYS = 400
LINK_GRACE = timedelta(days=1)
FORM_TTL = timedelta(hours=12)
MIN_KEY_LENGTH = 32


class LinkRefused(Exception):
    """A link or form token that cannot be used; ``code`` is ``invalid`` or ``expired``."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class LinkClaims:
    request_id: int
    decider_id: str
    expires_at: datetime
    link_id: str

    @property
    def used_key(self) -> str:
        """The ``used_tokens`` key recorded when the link is consumed."""
        return f"link:{self.link_id}"


def serializer(key: str, salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(key, salt=salt, signer_kwargs={"digest_method": hashlib.sha256})


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# --- the signing key -----------------------------------------------------------------------------

def signing_key(web: "WebSettings") -> str | None:
    """``web.signing_key`` (``SYNCD_WEB__SIGNING_KEY`` or ``_FILE``), or None when unset."""
    if web.signing_key is None:
        return None
    return web.signing_key.get_secret_value() or None


# --- links ----------------------------------------------------------------------------------------

def link_expiry(deadline_at: datetime | None, now: datetime) -> datetime:
    """When a link made ``now`` for a request with this tacit deadline stops working."""
    longest = now + timedelta(days=MAX_LINK_DAYS)
    if deadline_at is None:
        return now + timedelta(days=DEFAULT_LINK_DAYS)
    return min(max(_aware(deadline_at) + LINK_GRACE, now + LINK_GRACE), longest)


def make_token(key: str, request_id: int, decider_id: str, expires_at: datetime) -> str:
    payload = {"r": int(request_id), "d": str(decider_id), "x": _epoch(expires_at), "j": secrets.token_urlsafe(12)}
    return serializer(key, LINK_SALT).dumps(payload)


def read_token(key: str, token: str, now: datetime) -> LinkClaims:
    """The claims of a genuine, unexpired link token, or ``LinkRefused``.

    Single use is checked by the caller against ``used_tokens`` (``LinkClaims.used_key``).
    """
    if not token or len(token) > 1000:
        raise LinkRefused("invalid", "This link is not valid.")
    try:
        payload: Any = serializer(key, LINK_SALT).loads(token)
        claims = LinkClaims(int(payload["r"]), str(payload["d"]),
                            datetime.fromtimestamp(int(payload["x"]), tz=timezone.utc), str(payload["j"]))
    except (BadSignature, KeyError, TypeError, ValueError, OverflowError, OSError):
        raise LinkRefused("invalid", "This link is not valid.") from None
    if now >= claims.expires_at:
        raise LinkRefused("expired", "This link has expired.")
    return claims


def decision_url(base_url: str, key: str, request_id: int, decider_id: str, expires_at: datetime) -> str:
    return f"{base_url.rstrip('/')}{LINK_PATH}{make_token(key, request_id, decider_id, expires_at)}"


def decision_link(rt: Any, request_id: int, decider_id: str, now: datetime) -> str:
    """A signed, single-use link through which ``decider_id`` decides ``request_id``.

    It expires a day after the request's tacit deadline. Needs ``web.signing_key``.
    """
    from syncd.store import repo
    from syncd.store.db import transaction

    key = signing_key(rt.settings.web)
    if key is None:
        raise ValueError("web.signing_key is not set: set SYNCD_WEB__SIGNING_KEY or SYNCD_WEB__SIGNING_KEY_FILE")
    with transaction(rt.engine, readonly=True) as conn:
        deadline = repo.deadline_of(conn, request_id)
    return decision_url(rt.settings.web.base_url, key, request_id, decider_id, link_expiry(deadline, now))


# --- the decision form ----------------------------------------------------------------------------

def form_token(key: str, link_id: str, now: datetime) -> str:
    """A signed token the decision form carries back: bound to the link, valid ``FORM_TTL``."""
    return serializer(key, FORM_SALT).dumps({"j": link_id, "x": _epoch(now + FORM_TTL)})


def check_form_token(key: str, token: str | None, link_id: str, now: datetime) -> None:
    """Raise ``LinkRefused`` unless ``token`` is a genuine, fresh form token of this link."""
    if not token or len(token) > 500:
        raise LinkRefused("invalid", "The form token is missing.")
    try:
        payload: Any = serializer(key, FORM_SALT).loads(token)
        bound, expires = str(payload["j"]), int(payload["x"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise LinkRefused("invalid", "The form token is not valid.") from None
    if not secrets.compare_digest(bound.encode(), link_id.encode()):
        raise LinkRefused("invalid", "The form token belongs to another link.")
    if _epoch(now) >= expires:
        raise LinkRefused("expired", "The form has expired.")

