"""The desk's access reviews tab: the rights a review campaign asks the decider to confirm or withdraw.

* ``GET /desk/reviews``: the rights of the campaigns under way the decider reviews now
  (``syncd.jobs.reviews.items_for``), by organisation and application, each unanswered one with
  a checkbox, the answered ones with their answer; the end of each window and what happens then
  to the unanswered ones. Changes nothing.
* ``POST /desk/reviews``: ``item`` (repeated, review item ids), ``action`` (``confirm`` or
  ``withdraw``), ``reason`` (required to withdraw), ``csrf``. All the selected rights through
  ``syncd.jobs.reviews.confirm`` or ``withdraw`` at once - all or none: one the decider may not
  answer refuses the form. A right answered before is not answered twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from syncd.errors import DecisionRefused
from syncd.jobs import reviews
from syncd.store import desk as desk_store
from syncd.store import repo
from syncd.store import reviews as review_store
from syncd.store.db import transaction
from syncd.web import desk_auth
from syncd.web.desk_page import MAX_COMMENT, decider_name, selected_ids
from syncd.web.desk_rights import REASON_INVALID, REASON_REQUIRED
from syncd.web.pages import render
from syncd.web.schemas import forbidden_character

if TYPE_CHECKING:
    from syncd.web.app import Services
    from syncd.web.desk_auth import Session

log = structlog.get_logger(__name__)
router = APIRouter(include_in_schema=False)

NOTHING_SELECTED = "Sélectionnez au moins une habilitation (case à cocher de sa ligne)."
ANSWERS_FR = {"confirmed": "Confirmée", "withdrawn": "Retirée", "kept_tacitly": "Conservée tacitement",
              "withdrawn_unanswered": "Retirée sans réponse", "ended": "Terminée entre-temps"}
REFUSALS_FR = {"not_found": "Une des habilitations choisies ne fait plus partie d'une revue en cours.",
               "not_authorised": "Une des habilitations choisies ne relève pas de votre revue.",
               "own_request": "Vous ne pouvez pas répondre pour vos propres habilitations."}


def reviews_view(svc: "Services", session: "Session") -> dict:
    m = svc.rt.mappings
    items = reviews.items_for(svc.rt, session.decider_id)
    with transaction(svc.rt.engine, readonly=True) as conn:
        account = repo.account_by_id(conn, session.decider_id)
        central, organisations = desk_store.scopes_of(conn, session.decider_id)
        rules = {c["id"]: c["unanswered"] for c in review_store.under_way(conn)}
    campaigns: dict[int, dict] = {}
    for i in items:
        org = m.organisation(i.organisation_code)
        campaign = campaigns.setdefault(i.campaign_id, {
            "id": i.campaign_id, "organisation": org.name if org else i.organisation_code, "closes_at": i.closes_at,
            "unanswered": rules.get(i.campaign_id, "keep"), "groups": {}, "open": 0})
        group = campaign["groups"].setdefault(i.application_label or "Autres habilitations", [])
        group.append({"id": i.id, "role": i.role_label, "holder": i.holder_name, "email": i.holder_email,
                      "granted_at": i.granted_at, "answer": ANSWERS_FR.get(i.decision or "", "")})
        campaign["open"] += i.decision is None
    for campaign in campaigns.values():
        campaign["groups"] = sorted(campaign["groups"].items(), key=lambda g: g[0].casefold())
    return {"decider_name": decider_name(account), "central": central, "organisations": organisations,
            "campaigns": list(campaigns.values())}


def _tab(svc: "Services", session: "Session", view: dict, status_code: int = 200, **extra) -> HTMLResponse:
    csrf = desk_auth.csrf_token(svc.signing_key, session)
    response = render("desk_reviews.html", status_code, title="Revue des habilitations", tab="reviews", csrf=csrf,
                      **view, **({"selected": set(), "reason": "", "error": None, "done": None,
                                  "reason_error": False} | extra))
    return desk_auth.respond(svc, session, response)


@router.get("/desk/reviews", response_class=HTMLResponse)
async def show(request: Request) -> HTMLResponse:
    svc: Services = request.app.state.syncd
    session = await desk_auth.authenticate(svc, request)
    if not isinstance(session, desk_auth.Session):
        return session
    return _tab(svc, session, await run_in_threadpool(reviews_view, svc, session))


@router.post("/desk/reviews", response_class=HTMLResponse)
async def answer(request: Request, action: Annotated[str, Form(max_length=20)] = "",
                 reason: Annotated[str, Form(max_length=20_000)] = "",
                 csrf: Annotated[str, Form(max_length=1000)] = "") -> HTMLResponse:
    svc: Services = request.app.state.syncd
    session = await desk_auth.authenticate_form(svc, request, csrf)
    if not isinstance(session, desk_auth.Session):
        return session
    ids = selected_ids((await request.form()).getlist("item"))
    error = None
    if not ids:
        error = NOTHING_SELECTED
    elif action == "withdraw" and not reason.strip():
        error = REASON_REQUIRED
    elif action == "withdraw" and (len(reason) > MAX_COMMENT
                                   or forbidden_character(reason, multi_line=True) is not None):
        error = REASON_INVALID
    elif action not in ("confirm", "withdraw"):
        error = NOTHING_SELECTED
    done = None
    if error is None:
        try:
            done = await run_in_threadpool(_answer, svc, session, action, ids, reason.strip())
        except DecisionRefused as exc:
            error = REFUSALS_FR.get(exc.code, "Aucune habilitation n'a pu être traitée.")
    view = await run_in_threadpool(reviews_view, svc, session)
    if error is not None:
        return _tab(svc, session, view, 400, error=error, selected=set(ids), reason=reason[:MAX_COMMENT],
                    reason_error=error in (REASON_REQUIRED, REASON_INVALID))
    return _tab(svc, session, view, done=(action, len(done or [])))


def _answer(svc: "Services", session: "Session", action: str, ids: list[int], reason: str) -> list[int]:
    with svc.writing():
        if action == "confirm":
            done = reviews.confirm(svc.rt, ids, session.decider_id)
        else:
            done = reviews.withdraw(svc.rt, ids, session.decider_id, reason)
    log.info("desk_review_answered", action=action, items=len(done), decider=session.decider_id)
    return done
