"""The pages people reach from the links in their mails (French, no JavaScript).

The decision page, for correspondents; the page to choose a new password, for everyone (below,
``/password/reset``).

``GET /decide/{token}`` shows the request and two forms; it changes nothing (mail scanners and
link previews open links). ``POST /decide/{token}`` takes the decision: the form carries a
signed token bound to the link (``syncd.web.links.form_token``), a refusal needs a comment, and
the link is consumed - recorded in ``used_tokens``, in the decision's own transaction - only when
a decision is recorded. A refused attempt (no comment, not authorised any more, already decided)
leaves it usable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import jinja2
import structlog
from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from syncd import queries
from syncd.core.model import Status, Verdict
from syncd.core.tacit import is_due
from syncd.errors import DecisionRefused, DirectoryRejected, TemporaryError
from syncd.jobs import passwords
from syncd.store import repo
from syncd.store.db import transaction
from syncd.store.tables import accounts
from syncd.web import links, tokens
from syncd.web.auth import TokenBuckets

if TYPE_CHECKING:
    from syncd.web.app import Services

log = structlog.get_logger(__name__)

PARIS = ZoneInfo("Europe/Paris")
TEMPLATES = Path(__file__).parent / "templates"

CSS = """
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;line-height:1.5}
body{margin:0;color:#161616;background:#f6f6f6}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem}
header{background:#000091;color:#fff;padding:.75rem 1.5rem}.brand{margin:0;font-weight:700}
main{max-width:46rem;margin:1.5rem auto;background:#fff;padding:1.5rem 2rem;border-radius:4px}
footer{max-width:46rem;margin:0 auto 2rem;color:#3a3a3a;font-size:.875rem;padding:0 2rem}
h1{font-size:1.6rem;margin-top:0}h2{font-size:1.2rem}
dl.request{display:grid;gap:.25rem;margin:1rem 0 1.5rem}dl.request div{display:grid;grid-template-columns:13rem 1fr}
dt{font-weight:700}dd{margin:0}
section{border-top:1px solid #ddd;padding-top:.5rem;margin-bottom:1rem}
label{display:block;font-weight:700}.hint{margin:.25rem 0;color:#3a3a3a;font-size:.9rem}
textarea,input[type=password]{display:block;width:100%;box-sizing:border-box;font:inherit;padding:.5rem;border:1px solid #3a3a3a;margin:.25rem 0 1rem}
textarea[aria-invalid=true],input[aria-invalid=true]{border:2px solid #ce0500}
button{font:inherit;font-weight:700;padding:.6rem 1.2rem;border:0;border-radius:4px;cursor:pointer;color:#fff}
button.accept{background:#18753c}button.refuse{background:#ce0500}button.primary{background:#000091}
button:focus-visible,textarea:focus-visible,input:focus-visible,a:focus-visible{outline:3px solid #0a76f6;outline-offset:2px}
.error,.field-error{color:#ce0500}.error{border-left:4px solid #ce0500;padding:.25rem 1rem;margin-bottom:1rem}
.success{border-left:4px solid #18753c;padding:.25rem 1rem}.info{border-left:4px solid #000091;padding:.25rem 1rem}
@media (max-width:40rem){dl.request div{grid-template-columns:1fr}main{padding:1rem}}
""".strip()
CSS_HASH = "sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CSP = (f"default-src 'none'; style-src '{CSS_HASH}'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
HTML_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",       # the link's token must not leak to another site
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}

COMMENT_REQUIRED = "Merci d'indiquer le motif du refus : il est communiqué au demandeur."
COMMENT_TOO_LONG = "Le motif du refus ne peut dépasser 2 000 caractères."
REFUSALS_FR = {
    "own_request": ("Vous ne pouvez pas décider de votre propre demande",
                    "Cette demande est la vôtre : elle est soumise à un autre gestionnaire."),
    "not_authorised": ("Vous n'êtes pas habilité(e) à décider de cette demande",
                       "Cette demande relève désormais d'un autre gestionnaire (par exemple après un changement "
                       "de correspondant dans l'organisme)."),
    "already_decided": ("Cette demande a déjà été traitée", "Une décision a déjà été enregistrée."),
    "already_tacitly_accepted": ("Cette demande a été acceptée tacitement",
                                 "Le délai de réponse est écoulé : la demande a été acceptée tacitement."),
    "deadline_passed": ("Le délai de réponse est écoulé",
                        "Sans refus formel avant la date limite, la demande est acceptée tacitement."),
    "rejected": ("Cette demande a été rejetée", "Elle était invalide et ne peut pas être décidée."),
    "not_routed": ("Cette demande n'est pas encore prête", "Elle est en cours de prise en compte : "
                                                           "réessayez dans quelques minutes."),
    "not_found": ("Demande introuvable", "Cette demande n'existe pas ou plus."),
}


def fr_datetime(value: datetime | None) -> str:
    return value.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M") if value else "—"


def make_environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fr_datetime"] = fr_datetime
    env.globals["css"] = jinja2.utils.markupsafe.Markup(CSS)
    return env


ENV = make_environment()

router = APIRouter(include_in_schema=False)


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("r", None)
    html = ENV.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=HTML_HEADERS)


def message(status: int, title: str, *paragraphs: str, r=None, kind: str = "info", alert: bool = False):
    return render("message.html", status, title=title, paragraphs=paragraphs, r=r, kind=kind, alert=alert)


def _title(r: queries.RequestDetail) -> str:
    return ("Demande de création de compte à valider" if r.kind == "account"
            else "Demande d'habilitation à valider")


# --- what a link may do now -----------------------------------------------------------------------

class _State:
    def __init__(self, claims: links.LinkClaims, used: bool, detail: queries.RequestDetail | None,
                 refusal: str | None, decider_name: str):
        self.claims, self.used, self.detail, self.refusal, self.decider_name = claims, used, detail, refusal, decider_name


def _state(svc: "Services", claims: links.LinkClaims) -> _State:
    """Read what the page needs: the request, whether the link was used, whether the decider may decide."""
    from syncd.jobs.routing import current_route
    rt = svc.rt
    now = svc.now()
    with transaction(rt.engine, readonly=True) as conn:
        used = tokens.is_used(conn, claims.used_key)
        detail = queries.request_detail(conn, claims.request_id, rt.mappings)
        decider = conn.execute(select(accounts.c.given_name, accounts.c.family_name, accounts.c.status)
                               .where(accounts.c.id == claims.decider_id)).first()
        refusal = None
        if detail is None:
            refusal = "not_found"
        elif detail.requester_account_id is not None and detail.requester_account_id == claims.decider_id:
            refusal = "own_request"
        elif detail.status == Status.ACCEPTED_TACITLY.value:
            refusal = "already_tacitly_accepted"
        elif detail.status in (Status.ACCEPTED.value, Status.REFUSED.value):
            refusal = "already_decided"
        elif detail.status == Status.REJECTED.value:
            refusal = "rejected"
        elif detail.status == Status.NEW.value:
            refusal = "not_routed"
        elif is_due(detail.deadline, now):
            refusal = "deadline_passed"
        else:
            row = repo.get_request(conn, claims.request_id)
            if decider is None or decider.status != "active" or \
                    claims.decider_id not in current_route(conn, rt, row).decider_ids:
                refusal = "not_authorised"
    name = f"{decider.given_name} {decider.family_name}" if decider else "Madame, Monsieur"
    return _State(claims, used, detail, refusal, name)


def _read_link(svc: "Services", token: str) -> links.LinkClaims | HTMLResponse:
    try:
        return links.read_token(svc.signing_key, token, svc.now())
    except links.LinkRefused as exc:
        if exc.code == "expired":
            return message(410, "Ce lien a expiré",
                           "Le lien de validation n'est plus valable. Si la demande attend encore votre décision, "
                           "utilisez le lien du dernier courriel de rappel reçu.", kind="error")
        return message(403, "Lien invalide",
                       "Ce lien de validation n'est pas valide. Vérifiez qu'il a été copié en entier.",
                       kind="error")


def _closed(state: _State, status: int | None = None) -> HTMLResponse:
    """The page for a link that cannot decide anything (any more)."""
    title, text = REFUSALS_FR[state.refusal or "already_decided"]
    code = status or {"own_request": 403, "not_authorised": 403, "not_found": 404}.get(state.refusal or "", 200)
    paragraphs = [text]
    if state.detail is not None and state.detail.comment and state.detail.status == Status.REFUSED.value:
        paragraphs.append(f"Motif du refus : {state.detail.comment}")
    return message(code, title, *paragraphs, r=state.detail, kind="error" if code >= 400 else "info")


def _form(svc: "Services", state: _State, token: str, status: int = 200, error: str | None = None,
          comment: str | None = None) -> HTMLResponse:
    assert state.detail is not None
    return render("decide.html", status, title=_title(state.detail), r=state.detail, decider_name=state.decider_name,
                  action=f"{links.LINK_PATH}{token}",
                  csrf=links.form_token(svc.signing_key, state.claims.link_id, svc.now()),
                  error=error, comment_error=error if error in (COMMENT_REQUIRED, COMMENT_TOO_LONG) else None,
                  comment=comment)


# --- routes ----------------------------------------------------------------------------------------

@router.get("/decide/{token}", response_class=HTMLResponse)
async def show(request: Request, token: str) -> HTMLResponse:
    svc: Services = request.app.state.syncd
    if svc.signing_key is None:
        return message(404, "Page introuvable", "Les liens de validation ne sont pas activés.", kind="error")
    claims = _read_link(svc, token)
    if isinstance(claims, HTMLResponse):
        return claims
    try:
        state = await run_in_threadpool(_state, svc, claims)
    except TemporaryError:
        return _unavailable()
    if state.used:
        return _used(state)
    if state.refusal is not None:
        return _closed(state)
    return _form(svc, state, token)


@router.post("/decide/{token}", response_class=HTMLResponse)
async def decide(request: Request, token: str,
                 verdict: Annotated[str, Form(max_length=20)] = "",
                 comment: Annotated[str, Form(max_length=20_000)] = "",
                 csrf: Annotated[str, Form(max_length=600)] = "") -> HTMLResponse:
    svc: Services = request.app.state.syncd
    if svc.signing_key is None:
        return message(404, "Page introuvable", "Les liens de validation ne sont pas activés.", kind="error")
    claims = _read_link(svc, token)
    if isinstance(claims, HTMLResponse):
        return claims
    now = svc.now()
    try:
        links.check_form_token(svc.signing_key, csrf, claims.link_id, now)
    except links.LinkRefused:
        return message(403, "Formulaire expiré",
                       "Pour des raisons de sécurité, le formulaire n'est plus valable. Rouvrez le lien reçu par "
                       "courriel puis recommencez.", kind="error", alert=True)
    if verdict not in ("accept", "refuse"):
        return message(400, "Décision incomprise", "Choisissez « Accepter » ou « Refuser ».", kind="error",
                       alert=True)
    try:
        outcome = await run_in_threadpool(_decide, svc, claims, Verdict(verdict), comment, now)
    except TemporaryError:
        return _unavailable()
    if isinstance(outcome, HTMLResponse):
        return outcome
    state, refused = outcome
    if refused is None:
        return _done(state, Verdict(verdict))
    if refused.code in ("comment_required", "comment_too_long"):
        if state.detail is None or state.refusal is not None:
            return _closed(state, 400)
        text = COMMENT_REQUIRED if refused.code == "comment_required" else COMMENT_TOO_LONG
        return _form(svc, state, token, 400, error=text, comment=comment[:2000])
    state.refusal = refused.code
    from syncd.web.api import DECISION_STATUS
    return _closed(state, DECISION_STATUS.get(refused.code, 409))


class _LinkUsed(Exception):
    """Raised in the decision's transaction when a decision used the link already: it writes nothing."""


def _decide(svc: "Services", claims: links.LinkClaims, verdict: Verdict, comment: str, now: datetime):
    """Decide, consuming the link in the decision's own transaction if the decision stands."""
    with svc.writing():
        return _decide_now(svc, claims, verdict, comment, now)


def _decide_now(svc: "Services", claims: links.LinkClaims, verdict: Verdict, comment: str, now: datetime):
    from syncd.jobs.decisions import decide_request
    rt = svc.rt

    def use_up(conn, refusal: DecisionRefused | None) -> None:
        if refusal is None:
            if not tokens.claim(conn, claims.used_key, now, claims.expires_at + links.LINK_GRACE):
                raise _LinkUsed()
        elif tokens.is_used(conn, claims.used_key):
            raise _LinkUsed()   # a used link says so, rather than why this attempt would be refused

    try:
        decide_request(rt, claims.request_id, claims.decider_id, verdict, comment or None, channel="link",
                       single_use=use_up)
    except _LinkUsed:
        return _used(_state(svc, claims))
    except DecisionRefused as exc:
        svc.metrics.decisions_refused.labels(exc.code, "link").inc()
        return _state(svc, claims), exc
    svc.metrics.decisions.labels(verdict.value, "link").inc()
    log.info("link_decision", request_id=claims.request_id, decider=claims.decider_id, verdict=verdict.value)
    return _state(svc, claims), None


def _done(state: _State, verdict: Verdict) -> HTMLResponse:
    if verdict is Verdict.ACCEPT:
        return message(200, "Votre décision a été enregistrée : demande acceptée",
                       "Merci. Le demandeur est informé par courriel dès que son accès est ouvert, "
                       "en général dans la minute.", r=state.detail, kind="success")
    return message(200, "Votre décision a été enregistrée : demande refusée",
                   "Merci. Le demandeur est informé du refus par courriel, avec le motif que vous avez indiqué.",
                   r=state.detail, kind="success")


def _used(state: _State) -> HTMLResponse:
    paragraphs = ["Ce lien de validation a déjà servi : une décision a été enregistrée."]
    if state.detail is not None:
        paragraphs.append(f"Statut actuel de la demande : {state.detail.status_label}.")
    return message(410, "Ce lien a déjà été utilisé", *paragraphs, r=state.detail, kind="info")


def _unavailable() -> HTMLResponse:
    response = message(503, "Service momentanément indisponible",
                       "Votre décision n'a pas pu être enregistrée. Réessayez dans quelques minutes.", kind="error",
                       alert=True)
    response.headers["Retry-After"] = "30"
    return response


@router.get("/decisions/{request_id}", response_class=HTMLResponse)
async def plain_link(request_id: str) -> HTMLResponse:
    """The unsigned link mails carry when no signing key is configured."""
    return message(200, "Décider d'une demande",
                   "Les liens de validation directe ne sont pas activés sur ce service. Connectez-vous au portail "
                   "des habilitations pour accepter ou refuser cette demande.")


# --- choosing a new password: the link of the « mot de passe oublié » and first-password mails -----
#
# ``GET /password/reset?token=…`` shows the form, or says the link cannot be used; it changes
# nothing (mail scanners open links). ``POST /password/reset`` carries the token in its body
# (never in the address, so it is in no log and no Referer), with a signed form token bound to it
# like the decision form's; the token is consumed - in ``syncd.jobs.passwords.reset_password``,
# in the transaction that sets the password in LDAP - only when LDAP has accepted the password.

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
    response = message(429, "Trop de tentatives",
                       "Trop de liens non valables ont été présentés depuis votre connexion. Patientez quelques "
                       "minutes, puis rouvrez le lien reçu par courriel.", NEW_LINK_FR, kind="error", alert=True)
    response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
    return response


def _reset_unavailable(text: str) -> HTMLResponse:
    response = message(503, "Service momentanément indisponible", text, "Votre lien reste valable : réessayez dans "
                       "quelques minutes.", kind="error", alert=True)
    response.headers["Retry-After"] = "30"
    return response


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


def _set_password(svc: "Services", token: str, password: str) -> str:
    with svc.writing():
        return passwords.reset_password(svc.rt, token, password)


@router.api_route(RESET_PATH, methods=["GET", "HEAD"], response_class=HTMLResponse)
async def reset_form(request: Request, token: str = "") -> HTMLResponse:
    svc: Services = request.app.state.syncd
    key = svc.signing_key
    if key is None:
        return _reset_disabled()
    limit, who = _failure_limit(request), _client(request)
    wait = limit.wait(who)
    if wait:
        return _too_many(wait)
    try:
        usable = bool(_RESET_TOKEN.fullmatch(token)) and await run_in_threadpool(
            passwords.reset_is_usable, svc.rt, token)
    except TemporaryError:
        return _reset_unavailable("La page ne peut pas s'afficher pour le moment.")
    if not usable:
        limit.failed(who)
        log.info("password_reset_link_refused", client=who, method=request.method)
        return _reset_link_refused()
    return _reset_form(svc, key, token)


@router.post(RESET_PATH, response_class=HTMLResponse)
async def reset(request: Request, token: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "",
                password: Annotated[str, Form()] = "", confirmation: Annotated[str, Form()] = "") -> HTMLResponse:
    svc: Services = request.app.state.syncd
    key = svc.signing_key
    if key is None:
        return _reset_disabled()
    limit, who = _failure_limit(request), _client(request)
    wait = limit.wait(who)
    if wait:
        return _too_many(wait)
    if not _RESET_TOKEN.fullmatch(token):
        limit.failed(who)
        log.info("password_reset_link_refused", client=who, method="POST")
        return _reset_link_refused()
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
        limit.failed(who)
        log.info("password_reset_link_refused", client=who, method="POST")
        return _reset_link_refused()
    errors = _password_errors(password, confirmation)
    if errors:
        return _reset_form(svc, key, token, 400, errors)
    try:
        await run_in_threadpool(_set_password, svc, token, password)
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
