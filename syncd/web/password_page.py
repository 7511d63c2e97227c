"""The page to choose a new password, for everyone: the link of the « mot de passe oublié » and
first-password mails (French, no JavaScript).

``GET /password/reset?token=…`` shows the form, or says the link cannot be used; it changes
nothing (mail scanners open links). ``POST /password/reset`` carries the token in its body
(never in the address, so it is in no log and no Referer), with a signed form token bound to it
like the decision form's (``syncd.web.decision_page``); the token is consumed - in
``syncd.jobs.passwords.reset_password``, in the transaction that sets the password in LDAP - only
when LDAP has accepted the password. Failed attempts are limited per client address
(``FailureLimit``).

Pages are rendered by ``syncd.web.pages``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Annotated

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from syncd.errors import DirectoryRejected, TemporaryError
from syncd.jobs import passwords
from syncd.mail import links
from syncd.web.auth import TokenBuckets
from syncd.web.pages import message, render

if TYPE_CHECKING:
    from syncd.web.app import Services

log = structlog.get_logger(__name__)

RESET_PATH = "/password/reset"
RESET_FORM_SALT = b"syncd.password-reset-form.v1\0"
_RESET_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,200}")   # secrets.token_urlsafe(32): 43 of these
# Failed attempts (a token that is unknown, used, expired or malformed; a form token that is not
# genuine) allowed per client address and process: a burst, then one more every so many seconds.
# Tokens are 256-bit random values, stored hashed; this only keeps guessing from being free.
RESET_FAILURE_BURST = 20
RESET_FAILURE_REFILL_SECONDS = 30.0
LDAP_CONSTRAINT_VIOLATION = 19        # what ppolicy answers a password it refuses
# The links' lifetimes as the refusal page states them, from the durations that set them.
_RESET_HOURS = int(passwords.RESET_TTL.total_seconds() // 3600)
_FIRST_PASSWORD_DAYS = passwords.FIRST_PASSWORD_TTL.days

PASSWORD_ERRORS_FR = {
    "empty": "Saisissez votre nouveau mot de passe.",
    "too_short": f"Le mot de passe doit comporter au moins {passwords.MIN_PASSWORD_LENGTH} caractères.",
    "too_long": f"Le mot de passe ne peut dépasser {passwords.MAX_PASSWORD_LENGTH} caractères.",
    "characters": "Le mot de passe contient un caractère non autorisé (tabulation, retour à la ligne, caractère "
                  "invisible ou de contrôle).",
    "too_simple": "Ce mot de passe est trop simple : un même caractère répété ou une suite comme « 123456789012 » "
                  "ou « azertyuiopqs ». Choisissez-en un plus difficile à deviner.",
    "common": "Ce mot de passe fait partie des plus courants, même avec des chiffres ou des symboles ajoutés. "
              "Choisissez-en un autre.",
    "personal": "Le mot de passe ne doit contenir ni votre prénom, ni votre nom, ni votre adresse e-mail.",
    "directory": "L'annuaire a refusé ce mot de passe : il ne respecte pas les règles de sécurité en vigueur. "
                 "Choisissez-en un autre.",
    "history": "Vous avez déjà utilisé ce mot de passe : choisissez-en un nouveau.",
}
CONFIRMATION_EMPTY = "Saisissez une seconde fois votre nouveau mot de passe."
CONFIRMATION_MISMATCH = "Les deux saisies ne sont pas identiques : saisissez deux fois le même mot de passe."
NEW_LINK_FR = ("Pour recevoir un nouveau lien : sur la page de connexion du portail des habilitations, saisissez "
               "votre adresse e-mail professionnelle, cliquez sur « Se connecter », puis sur « Vous avez oublié "
               "votre mot de passe ? ».")

router = APIRouter(include_in_schema=False)


class FailureLimit:
    """Failed attempts per client address: a token bucket (``auth.TokenBuckets``) that only
    failures drain. ``wait(who)`` is 0 while ``who`` may try again, else the seconds to wait."""

    def __init__(self, burst: float = RESET_FAILURE_BURST, refill_seconds: float = RESET_FAILURE_REFILL_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic):
        self._buckets = TokenBuckets(rate=1 / refill_seconds, burst=burst, monotonic=monotonic)

    def wait(self, who: str) -> float:
        return self._buckets.peek(who)

    def failed(self, who: str) -> None:
        self._buckets.take(who)


def _failure_limit(request: Request) -> FailureLimit:
    """The app's ``FailureLimit`` (``app.state.password_reset_limit``), made on first use."""
    limit = getattr(request.app.state, "password_reset_limit", None)
    if limit is None:
        limit = request.app.state.password_reset_limit = FailureLimit()
    return limit


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _reset_binding(key: str, token: str) -> str:
    """What the form token is bound to: derived from the reset token, which it does not reveal."""
    return "pw:" + hmac.new(key.encode(), RESET_FORM_SALT + token.encode(), hashlib.sha256).hexdigest()[:32]


def _reset_disabled() -> HTMLResponse:
    return message(404, "Page introuvable", "Le changement de mot de passe en ligne n'est pas activé sur ce service. "
                   "Contactez l'assistance du portail des habilitations.", kind="error")


def _reset_link_refused() -> HTMLResponse:
    """One answer for a token unknown, used, expired or malformed: it says nothing about an account."""
    return message(410, "Ce lien n'est plus valable",
                   "Ce lien de changement de mot de passe ne peut pas être utilisé : il a expiré (il est valable "
                   f"{_RESET_HOURS} heures, ou {_FIRST_PASSWORD_DAYS} jours pour le premier mot de passe d'un "
                   "nouveau compte), il a déjà servi, ou "
                   "il est incomplet (vérifiez qu'il a été copié en entier).",
                   "Si vous venez de choisir votre mot de passe avec ce lien, il est bien enregistré : "
                   "connectez-vous avec.", NEW_LINK_FR, kind="error")


def _too_many(wait: float) -> HTMLResponse:
    return message(429, "Trop de tentatives",
                   "Trop de liens non valables ont été présentés depuis votre connexion. Patientez quelques "
                   "minutes, puis rouvrez le lien reçu par courriel.", NEW_LINK_FR, kind="error", alert=True,
                   retry_after=max(1, int(wait + 0.999)))


def _reset_unavailable(text: str) -> HTMLResponse:
    return message(503, "Service momentanément indisponible", text, "Votre lien reste valable : réessayez dans "
                   "quelques minutes.", kind="error", alert=True, retry_after=30)


def _reset_form(svc: "Services", key: str, token: str, status: int = 200,
                errors: dict[str, str] | None = None) -> HTMLResponse:
    """The form; ``key`` is the signing key, which the caller has checked is set."""
    return render("password_reset.html", status, title="Choisir un nouveau mot de passe", action=RESET_PATH,
                  token=token, csrf=links.form_token(key, _reset_binding(key, token), svc.now()),
                  errors=errors or {}, min_length=passwords.MIN_PASSWORD_LENGTH)


def _password_errors(password: str, confirmation: str) -> dict[str, str]:
    """The form's errors by field (``password``, ``confirmation``), before asking LDAP anything."""
    errors: dict[str, str] = {}
    if not password:
        errors["password"] = PASSWORD_ERRORS_FR["empty"]
    else:
        try:
            passwords.check_password(password)
        except passwords.WeakPassword as exc:
            errors["password"] = PASSWORD_ERRORS_FR[exc.code]
    if not confirmation:
        errors["confirmation"] = CONFIRMATION_EMPTY
    elif not hmac.compare_digest(password.encode(), confirmation.encode()):
        errors["confirmation"] = CONFIRMATION_MISMATCH
    return errors


def _directory_refusal(exc: DirectoryRejected) -> str | None:
    """The form error for a password the directory refused (ppolicy), or None for another failure."""
    if getattr(exc, "result_code", None) != LDAP_CONSTRAINT_VIOLATION:
        return None
    return PASSWORD_ERRORS_FR["history" if "history" in str(exc).lower() else "directory"]


def _admitted(request: Request) -> tuple["Services", str, FailureLimit, str] | HTMLResponse:
    """The services, the signing key, the failure limit and who asks; or the page that turns the
    request away (the page is off without a signing key, or this client failed too often)."""
    svc: Services = request.app.state.syncd
    key = svc.signing_key
    if key is None:
        return _reset_disabled()
    limit, who = _failure_limit(request), _client(request)
    wait = limit.wait(who)
    if wait:
        return _too_many(wait)
    return svc, key, limit, who


def _link_refused(limit: FailureLimit, who: str, method: str) -> HTMLResponse:
    """Count a failure against the client, and answer as for any unusable link."""
    limit.failed(who)
    log.info("password_reset_link_refused", client=who, method=method)
    return _reset_link_refused()


@router.api_route(RESET_PATH, methods=["GET", "HEAD"], response_class=HTMLResponse)
async def reset_form(request: Request, token: str = "") -> HTMLResponse:
    admitted = _admitted(request)
    if isinstance(admitted, HTMLResponse):
        return admitted
    svc, key, limit, who = admitted
    try:
        usable = bool(_RESET_TOKEN.fullmatch(token)) and await run_in_threadpool(
            passwords.reset_is_usable, svc.rt, token)
    except TemporaryError:
        return _reset_unavailable("La page ne peut pas s'afficher pour le moment.")
    if not usable:
        return _link_refused(limit, who, request.method)
    return _reset_form(svc, key, token)


@router.post(RESET_PATH, response_class=HTMLResponse)
async def reset(request: Request, token: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "",
                password: Annotated[str, Form()] = "", confirmation: Annotated[str, Form()] = "") -> HTMLResponse:
    admitted = _admitted(request)
    if isinstance(admitted, HTMLResponse):
        return admitted
    svc, key, limit, who = admitted
    if not _RESET_TOKEN.fullmatch(token):
        return _link_refused(limit, who, "POST")
    try:
        links.check_form_token(key, csrf, _reset_binding(key, token), svc.now())
    except links.LinkRefused:
        limit.failed(who)
        log.info("password_reset_form_refused", client=who)
        return message(403, "Formulaire expiré",
                       "Pour des raisons de sécurité, le formulaire n'est plus valable. Rouvrez le lien reçu par "
                       "courriel puis recommencez.", kind="error", alert=True)
    unavailable = "Votre mot de passe n'a pas pu être enregistré pour le moment."
    try:
        usable = await run_in_threadpool(passwords.reset_is_usable, svc.rt, token)
    except TemporaryError:
        return _reset_unavailable(unavailable)
    if not usable:
        return _link_refused(limit, who, "POST")
    errors = _password_errors(password, confirmation)
    if errors:
        return _reset_form(svc, key, token, 400, errors)
    try:
        await svc.call_directory(partial(passwords.reset_password, writing=svc.writing), svc.rt, token, password)
    except passwords.WeakPassword as exc:         # e.g. it holds the person's name
        return _reset_form(svc, key, token, 400, {"password": PASSWORD_ERRORS_FR[exc.code]})
    except passwords.ResetRefused:                # used a moment ago, through another tab
        return _reset_link_refused()
    except TemporaryError:                        # LDAP or the database: rolled back, the link stays good
        return _reset_unavailable(unavailable)
    except DirectoryRejected as exc:
        refusal = _directory_refusal(exc)
        if refusal is not None:
            log.info("password_refused_by_directory", result_code=getattr(exc, "result_code", None))
            return _reset_form(svc, key, token, 400, {"password": refusal})
        log.error("password_reset_failed", error=str(exc))
        return message(500, "Votre mot de passe n'a pas pu être enregistré",
                       "Une erreur empêche d'enregistrer votre mot de passe. Votre lien reste valable ; si le problème "
                       "persiste, contactez l'assistance du portail des habilitations.", kind="error", alert=True)
    return message(200, "Votre mot de passe a été enregistré",
                   "Vous pouvez dès maintenant vous connecter au portail des habilitations avec votre adresse e-mail "
                   "professionnelle et ce nouveau mot de passe.",
                   "Ce lien a servi : il ne peut plus être utilisé.", kind="success")
