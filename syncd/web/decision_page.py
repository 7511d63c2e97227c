"""The decision page, for correspondents: the signed links in the deciders' mails (French, no JavaScript).

``GET /decide/{token}`` shows the request and two forms; it changes nothing (mail scanners and
link previews open links). ``POST /decide/{token}`` takes the decision: the form carries a
signed token bound to the link (``syncd.mail.links.form_token``), a refusal needs a comment, and
the link is consumed - recorded in ``used_tokens``, in the decision's own transaction - only when
a decision is recorded. A refused attempt (no comment, not authorised any more, already decided)
leaves it usable. ``GET /decisions/{request_id}`` is the unsigned link mails carry when no
signing key is configured.

Pages are rendered by ``syncd.web.pages``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from syncd.store import queries
from syncd.core import lifecycle
from syncd.core.model import AccountStatus, Status, Verdict
from syncd.core.tacit import is_due
from syncd.errors import DecisionRefused, TemporaryError
from syncd.store import repo, tokens
from syncd.store.db import transaction
from syncd.mail import links
from syncd.web.pages import message, render
from syncd.web.schemas import forbidden_character

if TYPE_CHECKING:
    from syncd.web.app import Services

log = structlog.get_logger(__name__)

COMMENT_REQUIRED = "Merci d'indiquer le motif du refus : il est communiqué au demandeur."
COMMENT_TOO_LONG = "Le motif du refus ne peut dépasser 2 000 caractères."
COMMENT_CHARACTER = ("Le motif du refus contient un caractère non autorisé (U+{:04X} : caractère de contrôle, "
                     "de direction d'écriture ou impossible à encoder) : retirez-le puis recommencez.")
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

router = APIRouter(include_in_schema=False)


def _title(r: queries.RequestDetail) -> str:
    return {"account": "Demande de création de compte à valider",
            "mobility": "Demande de changement d'organisme à valider"}.get(r.kind, "Demande d'habilitation à valider")


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
        decider = repo.account_by_id(conn, claims.decider_id)
        refusal = None
        if detail is None:
            refusal = "not_found"
        elif detail.requester_account_id is not None and detail.requester_account_id == claims.decider_id:
            refusal = "own_request"
        elif Status(detail.status) in lifecycle.UNDECIDABLE:     # the core's refusal, before the deadline's
            refusal = lifecycle.UNDECIDABLE[Status(detail.status)][0]
        else:
            row = repo.get_request(conn, claims.request_id)
            # An escalated external account request is decided past its deadline (never tacit).
            if is_due(detail.deadline, now) and lifecycle.tacit_applies(
                    row, internal_accounts=rt.mappings.policy.internal_account_tacit):
                refusal = "deadline_passed"
            elif decider is None or decider.status != AccountStatus.ACTIVE or \
                    claims.decider_id not in current_route(conn, rt, row).decider_ids:
                refusal = "not_authorised"
    name = f"{decider.given_name} {decider.family_name}" if decider else "Madame, Monsieur"
    return _State(claims, used, detail, refusal, name)


def _read_link(svc: "Services", token: str) -> links.LinkClaims | HTMLResponse:
    """The link's claims, or the page saying why it cannot serve: links are off, or it expired or is not valid."""
    if svc.signing_key is None:
        return message(404, "Page introuvable", "Les liens de validation ne sont pas activés.", kind="error")
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
          comment: str | None = None, comment_error: bool = False) -> HTMLResponse:
    assert state.detail is not None
    return render("decide.html", status, title=_title(state.detail), r=state.detail, decider_name=state.decider_name,
                  action=f"{links.LINK_PATH}{token}",
                  csrf=links.form_token(svc.signing_key, state.claims.link_id, svc.now()),
                  error=error, comment_error=error if comment_error else None, comment=comment)


# --- routes ----------------------------------------------------------------------------------------

@router.get("/decide/{token}", response_class=HTMLResponse)
async def show(request: Request, token: str) -> HTMLResponse:
    svc: Services = request.app.state.syncd
    claims = _read_link(svc, token)
    if isinstance(claims, HTMLResponse):
        return claims
    return await _page(svc, claims, token)


async def _page(svc: "Services", claims: links.LinkClaims, token: str, status: int = 200, **form) -> HTMLResponse:
    """What the link shows now: the form (with ``form``'s error, if any), or why it decides nothing."""
    try:
        state = await run_in_threadpool(_state, svc, claims)
    except TemporaryError:
        return _unavailable()
    if state.used:
        return _used(state)
    if state.refusal is not None:
        return _closed(state)
    return _form(svc, state, token, status, **form)


@router.post("/decide/{token}", response_class=HTMLResponse)
async def decide(request: Request, token: str,
                 verdict: Annotated[str, Form(max_length=20)] = "",
                 comment: Annotated[str, Form(max_length=20_000)] = "",
                 csrf: Annotated[str, Form(max_length=600)] = "") -> HTMLResponse:
    svc: Services = request.app.state.syncd
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
    bad = forbidden_character(comment, multi_line=True)
    if bad is not None:   # the API's rule (syncd.web.schemas): refused before the database sees it
        return await _page(svc, claims, token, 400, error=COMMENT_CHARACTER.format(ord(bad)),
                           comment=_printable(comment[:2000]), comment_error=True)
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
        return _form(svc, state, token, 400, error=text, comment=comment[:2000], comment_error=True)
    state.refusal = refused.code
    from syncd.web.api import DECISION_STATUS
    return _closed(state, DECISION_STATUS.get(refused.code, 409))


def _printable(text: str) -> str:
    """``text`` without the characters the rule refuses, to show it again in the form."""
    return "".join(c for c in text if forbidden_character(c, multi_line=True) is None)


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
    return message(503, "Service momentanément indisponible",
                   "Votre décision n'a pas pu être enregistrée. Réessayez dans quelques minutes.", kind="error",
                   alert=True, retry_after=30)


@router.get("/decisions/{request_id}", response_class=HTMLResponse)
async def plain_link(request_id: str) -> HTMLResponse:
    """The unsigned link mails carry when no signing key is configured."""
    return message(200, "Décider d'une demande",
                   "Les liens de validation directe ne sont pas activés sur ce service. Connectez-vous au portail "
                   "des habilitations pour accepter ou refuser cette demande.")
