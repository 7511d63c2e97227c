"""Who is at the desk: the digest's personal link, the session it opens, and the forms' CSRF token.

Every tab of the correspondents' desk (``syncd.web.desk_page``, ``desk_rights``, ``desk_reviews``)
authenticates through this module alone:

1. **The link** (``desk_url``): a token signed with ``web.signing_key`` (HMAC-SHA256,
   itsdangerous, salt ``syncd.desk-link.v1``) naming one decider, when it was issued and when it
   expires (``desk.link_days`` after). The daily digest carries it (``syncd.jobs.digest``).
2. **The session**: opening the link (``GET /desk/open/{token}``) sets the cookie ``syncd_desk``
   (``SESSION_COOKIE``): signed the same way under its own salt, it names the decider, the link's
   issue and expiry times, a random session id, and when it was last renewed. It is HttpOnly,
   SameSite=Strict, Path=/desk, Secure when ``web.base_url`` is https, and lives
   ``desk.session_minutes`` after the last page served (each page renews it), never past the
   link's expiry. Nothing is kept in memory: any web process with the same key reads it.
   « Se déconnecter » records the session id in ``used_tokens`` (``desk-session:<id>``), so a
   copy of the cookie is refused as well.
3. **Revocation**: ``syncd desk revoke`` records a row in ``desk_revocations``; a link or a
   session whose link was issued at or before it is refused (``check``, on every page and POST).
4. **CSRF**: every form carries ``csrf_token(session)``, a signed token bound to the session id;
   ``csrf_ok`` checks it on every POST. Together with SameSite=Strict, a page of another site
   cannot post as the decider.

A new tab calls ``await authenticate(svc, request)`` (a ``Session``, or the French page to
answer with), checks ``csrf_ok`` on POST, and answers through ``respond(svc, session, response)``,
which renews the cookie. This module imports no web framework at load: the daemon imports it to
put the link in the digest.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from itsdangerous import BadSignature, URLSafeSerializer

if TYPE_CHECKING:
    from syncd.settings import Settings

LINK_SALT = "syncd.desk-link.v1"
SESSION_SALT = "syncd.desk-session.v1"
CSRF_SALT = "syncd.desk-csrf.v1"
OPEN_PATH = "/desk/open/"
REVIEWS_TAB = "reviews"     # ``?tab=`` of a link that opens on the access reviews (syncd.web.desk_reviews)
SESSION_COOKIE = "syncd_desk"
COOKIE_PATH = "/desk"
MAX_TOKEN = 1000


class Refused(Exception):
    """A desk link or session that cannot be used: ``code`` is ``invalid``, ``expired`` or ``revoked``."""

    def __init__(self, code: str):
        self.code = code
        super().__init__(code)


@dataclass(frozen=True)
class Session:
    """One decider at the desk: from which link (issued, expires), which session, renewed when."""

    decider_id: str
    issued_at: datetime      # the link's issue time: revocations are compared with it
    expires_at: datetime     # the link's expiry: no session outlives it
    session_id: str
    renewed_at: datetime


def _serializer(key: str, salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(key, salt=salt, signer_kwargs={"digest_method": hashlib.sha256})


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _at(ms: Any) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)


def _loads(key: str, salt: str, token: str | None) -> dict:
    if not token or len(token) > MAX_TOKEN:
        raise Refused("invalid")
    try:
        payload = _serializer(key, salt).loads(token)
    except (BadSignature, UnicodeError, ValueError):
        raise Refused("invalid") from None
    if not isinstance(payload, dict):
        raise Refused("invalid")
    return payload


# --- the link -------------------------------------------------------------------------------------

def link_token(key: str, decider_id: str, now: datetime, days: int) -> str:
    return _serializer(key, LINK_SALT).dumps({"d": str(decider_id), "i": _ms(now),
                                              "x": _ms(now + timedelta(days=days))})


def desk_url(settings: "Settings", decider_id: str, now: datetime) -> str:
    """The personal desk link of ``decider_id``; needs ``web.signing_key``."""
    from syncd.web.links import signing_key
    key = signing_key(settings.web)
    if key is None:
        raise ValueError("web.signing_key is not set: the desk needs it")
    return (f"{settings.web.base_url.rstrip('/')}{OPEN_PATH}"
            f"{link_token(key, decider_id, now, settings.desk.link_days)}")


def review_url(settings: "Settings", decider_id: str, now: datetime, closes_at: datetime) -> str:
    """A reviewer's personal desk link, opening on the access reviews tab (``REVIEWS_TAB``) and
    valid until a day after the campaign's window ends; without ``web.signing_key``, the tab's
    plain address."""
    from syncd.web.links import signing_key
    key = signing_key(settings.web)
    base = settings.web.base_url.rstrip("/")
    if key is None:
        return f"{base}/desk/reviews"
    days = max((closes_at - now).days + 2, 1)
    return f"{base}{OPEN_PATH}{link_token(key, decider_id, now, days)}?tab={REVIEWS_TAB}"


def read_link(key: str, token: str, now: datetime) -> Session:
    """A new session from a genuine, unexpired link token (revocation is ``check``'s), or ``Refused``."""
    payload = _loads(key, LINK_SALT, token)
    try:
        decider, issued, expires = str(payload["d"]), _at(payload["i"]), _at(payload["x"])
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        raise Refused("invalid") from None
    if now >= expires:
        raise Refused("expired")
    return Session(decider, issued, expires, secrets.token_urlsafe(16), now)


# --- the session ----------------------------------------------------------------------------------

def session_cookie(key: str, session: Session) -> str:
    return _serializer(key, SESSION_SALT).dumps({"d": session.decider_id, "i": _ms(session.issued_at),
                                                 "x": _ms(session.expires_at), "s": session.session_id,
                                                 "r": _ms(session.renewed_at)})


def read_session(key: str, cookie: str | None, now: datetime, lifetime: timedelta) -> Session:
    """The session of a genuine cookie renewed less than ``lifetime`` ago, or ``Refused``."""
    payload = _loads(key, SESSION_SALT, cookie)
    try:
        session = Session(str(payload["d"]), _at(payload["i"]), _at(payload["x"]), str(payload["s"]),
                          _at(payload["r"]))
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        raise Refused("invalid") from None
    if now >= session.expires_at or now >= session.renewed_at + lifetime:
        raise Refused("expired")
    return session


def ended_key(session: Session) -> str:
    """The ``used_tokens`` key that records a session ended by « Se déconnecter »."""
    return f"desk-session:{session.session_id}"


def check(conn, session: Session) -> None:
    """Raise ``Refused("revoked")`` if the operator revoked the decider's links since this one was
    issued, or the session was ended (logout)."""
    from syncd.store import desk as desk_store
    from syncd.store import tokens
    if desk_store.revoked_since(conn, session.decider_id, session.issued_at) or tokens.is_used(conn, ended_key(session)):
        raise Refused("revoked")


def set_cookie(response: Any, key: str, session: Session, now: datetime, lifetime: timedelta, secure: bool) -> None:
    """Put the session, renewed ``now``, on ``response`` (a Starlette response)."""
    renewed = Session(session.decider_id, session.issued_at, session.expires_at, session.session_id, now)
    max_age = int(max(0, min(lifetime.total_seconds(), (session.expires_at - now).total_seconds())))
    response.set_cookie(SESSION_COOKIE, session_cookie(key, renewed), max_age=max_age, path=COOKIE_PATH,
                        secure=secure, httponly=True, samesite="strict")


def clear_cookie(response: Any, secure: bool) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, secure=secure, httponly=True, samesite="strict")


# --- CSRF -----------------------------------------------------------------------------------------

def csrf_token(key: str, session: Session) -> str:
    return _serializer(key, CSRF_SALT).dumps({"s": session.session_id})


def csrf_ok(key: str, session: Session, token: str | None) -> bool:
    """Whether ``token`` is a genuine CSRF token of this very session."""
    try:
        bound = str(_loads(key, CSRF_SALT, token).get("s", ""))
    except Refused:
        return False
    return secrets.compare_digest(bound.encode(), session.session_id.encode())


# --- for the routes -------------------------------------------------------------------------------

def lifetime(settings: "Settings") -> timedelta:
    return timedelta(minutes=settings.desk.session_minutes)


def secure(settings: "Settings") -> bool:
    """Whether the cookie is ``Secure``: when the desk is served over https (``web.base_url``)."""
    return settings.web.base_url.lower().startswith("https://")


def refused_page(code: str, *, link: bool = False):
    """The French page for a link or a session that cannot serve (410 expired or revoked, 403 invalid)."""
    from syncd.web.pages import message
    again = "Utilisez le lien du dernier courriel récapitulatif reçu."
    if code == "invalid" and link:
        return message(403, "Lien invalide", "Ce lien vers votre bureau n'est pas valide. Vérifiez qu'il a été "
                                             "copié en entier, ou utilisez le lien du dernier courriel récapitulatif "
                                             "reçu.", kind="error")
    if link:
        return message(410, "Ce lien a expiré", "Le lien vers votre bureau n'est plus valable : il a expiré ou a été "
                                                "révoqué.", again, kind="error")
    return message(410 if code in ("expired", "revoked") else 401, "Votre session a expiré",
                   "Pour votre sécurité, la session de votre bureau est terminée (inactivité, déconnexion ou "
                   "lien révoqué).", again, kind="error")


async def authenticate(svc: Any, request: Any) -> "Session | Any":
    """The session of this request's cookie, checked against revocations, or the French page to answer."""
    from fastapi.concurrency import run_in_threadpool

    from syncd.store.db import transaction
    from syncd.web.pages import message
    key = svc.signing_key
    if key is None:
        return message(404, "Page introuvable", "Le bureau des correspondants n'est pas activé.", kind="error")

    def revoked(session: Session) -> None:
        with transaction(svc.rt.engine, readonly=True) as conn:
            check(conn, session)

    try:
        session = read_session(key, request.cookies.get(SESSION_COOKIE), svc.now(), lifetime(svc.rt.settings))
        await run_in_threadpool(revoked, session)
    except Refused as exc:
        return refused_page(exc.code)
    return session


def respond(svc: Any, session: Session, response: Any) -> Any:
    """``response``, with the session's cookie renewed."""
    set_cookie(response, svc.signing_key, session, svc.now(), lifetime(svc.rt.settings), secure(svc.rt.settings))
    return response
