"""The correspondents' desk: the requests to decide, in bulk (French, server-rendered, no JavaScript).

Routes (docs/web.md, "The correspondents' desk"); who is at the desk is ``syncd.web.desk_auth``'s:

* ``GET /desk/open/{token}``: the digest's personal link; starts the session (sets the cookie)
  and sends the browser on to ``/desk`` (``/desk/reviews`` with ``?tab=reviews``, a review
  campaign's mail) - a page of this site, so the SameSite=Strict cookie
  goes with it even when the mail was read on another site. Changes nothing in the store.
* ``GET /desk``: the pending requests routed to the decider, the closest deadline first (those
  accepted tacitly today marked), filtered by ``?application=`` and ``?status=``
  (``pending``, ``due_today``, ``awaiting_decider``: central administrators also see the
  requests nobody can decide, which they cannot decide either). Changes nothing.
* ``POST /desk/decide``: ``request`` (repeated), ``verdict`` (``accept`` / ``refuse``),
  ``comment`` (required to refuse), ``csrf``. Each request goes through
  ``syncd.jobs.decisions.decide_request`` (authorisation, event, audit row, mail), channel
  ``desk``; a request already decided is reported, never decided again.
* ``POST /desk/logout``: ends the session (the cookie is cleared).

The rights tab is ``syncd.web.desk_rights``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from syncd.store import queries
from syncd.core import lifecycle
from syncd.core.model import Status, Verdict
from syncd.errors import DecisionRefused
from syncd.store import desk as desk_store
from syncd.store import repo
from syncd.store.db import transaction
from syncd.store import tokens
from syncd.mail import desk_links
from syncd.web import desk_auth
from syncd.web.decision_page import COMMENT_CHARACTER, COMMENT_REQUIRED, COMMENT_TOO_LONG, REFUSALS_FR
from syncd.web.pages import PARIS, fr_datetime, message, render
from syncd.web.schemas import forbidden_character

if TYPE_CHECKING:
    from syncd.web.app import Services
    from syncd.web.desk_auth import Session

log = structlog.get_logger(__name__)
router = APIRouter(include_in_schema=False)

STATUSES = {"pending": "En attente de votre décision", "due_today": "Acceptées tacitement aujourd'hui sans refus",
            "awaiting_decider": "Sans décideur (administrateurs centraux)"}
NOTHING_SELECTED = "Sélectionnez au moins une demande (case à cocher de sa ligne)."
MAX_COMMENT = 2000
MAX_SELECTED = 1000
OUTCOMES_FR = {"accepted": "Demande acceptée", "refused": "Demande refusée"} | {
    code: title for code, (title, _text) in REFUSALS_FR.items()}


# --- what the tab shows ---------------------------------------------------------------------------

def decider_name(account) -> str:
    return f"{account.given_name} {account.family_name}" if account else ""


def _item(row, svc: "Services", today, tacit_of: dict) -> dict:
    m = svc.rt.mappings
    deadline = repo.aware(row["deadline_at"])
    # The core's rule depends on the kind and the account type alone: asked once per pair.
    key = (row["kind"], row["internal"])
    if key not in tacit_of:
        tacit_of[key] = lifecycle.tacit_applies(repo.request_view(row),
                                                internal_accounts=m.policy.internal_account_tacit)
    tacit = tacit_of[key]
    app = m.application_of(row["role_key"]) if row["role_key"] else None
    org = m.organisation(row["organisation_code"]) if row["organisation_code"] else None
    submitted = repo.aware(row["submitted_at"])
    return {"id": row["id"], "kind": row["kind"],
            "requester": " ".join(x for x in (row["a_given"] or row["given_name"], row["a_family"] or row["family_name"])
                                  if x) or (row["a_email"] or row["email"] or ""),
            "email": row["a_email"] or row["email"] or "",
            "organisation": org.name if org else (row["organisation_code"] or "—"),
            "description": queries.describe(row["kind"], row["role_key"], m, row["organisation_code"]),
            "application": app.label if app else "—",
            "submitted_iso": submitted.isoformat(), "submitted": fr_datetime(submitted),
            "deadline_iso": deadline.isoformat() if deadline else "", "deadline": fr_datetime(deadline), "tacit": tacit,
            "today": bool(tacit and deadline and deadline.astimezone(PARIS).date() <= today)}


def pending_view(svc: "Services", session: "Session", application: str, status: str) -> dict:
    """Everything the requests tab shows, read in one read-only transaction."""
    m, now = svc.rt.mappings, svc.now()
    app = next((a for a in m.applications if a.key == application), None)
    role_keys = [r.key for r in app.roles] if app else None
    with transaction(svc.rt.engine, readonly=True) as conn:
        account = repo.account_by_id(conn, session.decider_id)
        central, organisations = desk_store.scopes_of(conn, session.decider_id)
        rows = desk_store.pending_for(conn, session.decider_id, role_keys) if status != Status.AWAITING_DECIDER else []
        waiting = desk_store.awaiting_decider(conn, role_keys) if central and status in ("", Status.AWAITING_DECIDER) else []
    today, tacit_of = now.astimezone(PARIS).date(), {}
    items = [_item(r, svc, today, tacit_of) for r in rows]
    if status == "due_today":
        items = [i for i in items if i["today"]]
    return {"decider_name": decider_name(account), "central": central, "organisations": organisations,
            "items": items, "waiting": [_item(r, svc, today, tacit_of) for r in waiting],
            "applications": [(a.key, a.label) for a in sorted(m.applications, key=lambda a: a.label.casefold())],
            "statuses": STATUSES, "application": app.key if app else "", "status_filter": status,
            "today_count": sum(1 for i in items if i["today"])}


def _tab(svc: "Services", session: "Session", view: dict, status_code: int = 200, **extra) -> HTMLResponse:
    csrf = desk_auth.csrf_token(svc.signing_key, session)
    response = render("desk.html", status_code, title="Demandes à traiter", tab="requests", csrf=csrf,
                      **view, **({"selected": set(), "comment": "", "error": None, "outcomes": None, "comment_error": False} | extra))
    return desk_auth.respond(svc, session, response)


def _filters(application: str, status: str) -> tuple[str, str]:
    return application[:64], status if status in STATUSES else ""


# --- routes ---------------------------------------------------------------------------------------

@router.get("/desk/open/{token}", response_class=HTMLResponse)
async def open_desk(request: Request, token: str, tab: str = "") -> HTMLResponse:
    svc: Services = request.app.state.syncd
    if svc.signing_key is None:
        return message(404, "Page introuvable", "Le bureau des correspondants n'est pas activé.", kind="error")
    try:
        session = desk_auth.read_link(svc.signing_key, token, svc.now())
        await run_in_threadpool(_check_link, svc, session)
    except desk_auth.Refused as exc:
        return desk_auth.refused_page(exc.code, link=True)
    log.info("desk_opened", decider=session.decider_id)
    # A review campaign's mail opens on the reviews tab; any other value on the requests.
    target = "/desk/reviews" if tab == desk_links.REVIEWS_TAB else "/desk"
    return desk_auth.respond(svc, session, render("desk_open.html", title="Ouverture de votre bureau", target=target))


def _check_link(svc: "Services", session: "Session") -> None:
    with transaction(svc.rt.engine, readonly=True) as conn:
        desk_auth.check(conn, session)
        if repo.account_by_id(conn, session.decider_id) is None:
            raise desk_auth.Refused("invalid")


@router.get("/desk", response_class=HTMLResponse)
async def show(request: Request, application: str = "", status: str = "") -> HTMLResponse:
    svc: Services = request.app.state.syncd
    session = await desk_auth.authenticate(svc, request)
    if not isinstance(session, desk_auth.Session):
        return session
    application, status = _filters(application, status)
    view = await run_in_threadpool(pending_view, svc, session, application, status)
    return _tab(svc, session, view)


@router.post("/desk/decide", response_class=HTMLResponse)
async def decide(request: Request, verdict: Annotated[str, Form(max_length=20)] = "",
                 comment: Annotated[str, Form(max_length=20_000)] = "",
                 csrf: Annotated[str, Form(max_length=1000)] = "",
                 application: Annotated[str, Form(max_length=200)] = "",
                 status: Annotated[str, Form(max_length=40)] = "") -> HTMLResponse:
    svc: Services = request.app.state.syncd
    session = await desk_auth.authenticate_form(svc, request, csrf)
    if not isinstance(session, desk_auth.Session):
        return session
    ids = selected_ids((await request.form()).getlist("request"))
    application, status = _filters(application, status)
    error = None
    if verdict not in ("accept", "refuse"):
        error = "Choisissez « Accepter la sélection » ou « Refuser la sélection »."
    elif not ids:
        error = NOTHING_SELECTED
    elif verdict == "refuse" and not comment.strip():
        error = COMMENT_REQUIRED
    elif len(comment) > MAX_COMMENT:
        error = COMMENT_TOO_LONG
    elif (bad := forbidden_character(comment, multi_line=True)) is not None:
        error = COMMENT_CHARACTER.format(ord(bad))
    if error is not None:   # nothing decided: the page again, the selection and the reason kept
        view = await run_in_threadpool(pending_view, svc, session, application, status)
        return _tab(svc, session, view, 400, error=error, selected=set(ids), comment=comment[:MAX_COMMENT],
                    comment_error=error in (COMMENT_REQUIRED, COMMENT_TOO_LONG) or error.startswith("Le motif"))
    outcomes = await run_in_threadpool(decide_many, svc, session, ids, Verdict(verdict), comment.strip())
    view = await run_in_threadpool(pending_view, svc, session, application, status)
    return _tab(svc, session, view, outcomes=outcomes)


def selected_ids(values: list) -> list[int]:
    """The ticked ids of a desk form, each once, in order; what is not a number is dropped."""
    return list(dict.fromkeys(int(v) for v in values[:MAX_SELECTED]
                              if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) < 19))


def decide_many(svc: "Services", session: "Session", ids: list[int], verdict: Verdict, comment: str) -> list[tuple]:
    """Each request through the decision use-case, one transaction each: (id, outcome code, label)."""
    from syncd.jobs.decisions import decide_request
    outcomes = []
    for request_id in ids:
        try:
            with svc.writing():
                t = decide_request(svc.rt, request_id, session.decider_id, verdict, comment or None, channel="desk")
            code = "refused" if verdict is Verdict.REFUSE else "accepted"
            svc.metrics.decisions.labels(verdict.value, "desk").inc()
            log.info("desk_decision", request_id=request_id, decider=session.decider_id, status=t.to_status.value)
        except DecisionRefused as exc:
            code = exc.code
            svc.metrics.decisions_refused.labels(exc.code, "desk").inc()
        outcomes.append((request_id, code, OUTCOMES_FR.get(code, "Non traitée")))
    return outcomes


@router.post("/desk/logout", response_class=HTMLResponse)
async def logout(request: Request, csrf: Annotated[str, Form(max_length=1000)] = "") -> HTMLResponse:
    svc: Services = request.app.state.syncd
    session = await desk_auth.authenticate_form(svc, request, csrf)
    if not isinstance(session, desk_auth.Session):
        return session
    await run_in_threadpool(_end, svc, session)
    response = message(200, "Vous êtes déconnecté(e)", "Votre session est terminée. Pour revenir à votre bureau, "
                                                       "utilisez le lien du dernier courriel récapitulatif reçu.",
                       kind="success")
    desk_auth.clear_cookie(response, desk_auth.secure(svc.rt.settings))
    log.info("desk_closed", decider=session.decider_id)
    return response


def _end(svc: "Services", session: "Session") -> None:
    """Record the session as ended, so that a copy of its cookie is refused too, in every process."""
    with svc.writing(), transaction(svc.rt.engine) as conn:
        tokens.claim(conn, desk_auth.ended_key(session), svc.now(), session.expires_at)

