"""The desk's second tab: the rights held now in the decider's organisation, and their withdrawal.

* ``GET /desk/rights`` (``?application=``): a correspondent sees the rights held by the people of
  their organisation(s), a central administrator those of the centrally managed roles, grouped by
  application as in the guide's « synthèse des habilitations ». Only the rights the decider may
  withdraw have a checkbox (a correspondent: the locally managed roles). At most ``MAX_ROWS``
  lines, said on the page. Changes nothing.
* ``POST /desk/withdraw``: ``right`` (repeated, ``<account id>:<role key>``), ``reason``
  (required), ``csrf``. Each through ``syncd.jobs.habilitations.revoke`` - the withdrawal
  use-case of the portal's API: authorisation, audit row, history event, the holder's mail. A
  right already withdrawn is reported, not withdrawn again.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from syncd.core.model import Management
from syncd.errors import DecisionRefused
from syncd.store import desk as desk_store
from syncd.store import repo
from syncd.store.db import transaction
from syncd.web import desk_auth
from syncd.web.desk_page import MAX_COMMENT, csrf_refused, decider_name
from syncd.web.pages import render
from syncd.web.schemas import forbidden_character

if TYPE_CHECKING:
    from syncd.web.app import Services
    from syncd.web.desk_auth import Session

log = structlog.get_logger(__name__)
router = APIRouter(include_in_schema=False)

MAX_ROWS = 1000
RIGHT = re.compile(r"[A-Za-z0-9._@+-]{1,64}:[A-Za-z0-9._-]{1,64}")   # <account id>:<role key>, as the page writes it
REASON_REQUIRED = "Merci d'indiquer le motif du retrait : il est communiqué à la personne concernée."
REASON_INVALID = "Le motif du retrait ne peut dépasser 2 000 caractères ni contenir de caractère de contrôle."
NOTHING_SELECTED = "Sélectionnez au moins une habilitation (case à cocher de sa ligne)."
OUTCOMES_FR = {"withdrawn": "Habilitation retirée", "not_found": "Déjà retirée ou expirée",
               "not_authorised": "Vous ne pouvez pas retirer cette habilitation",
               "own_request": "Vous ne pouvez pas retirer votre propre habilitation"}


def rights_view(svc: "Services", session: "Session", application: str) -> dict:
    m, now = svc.rt.mappings, svc.now()
    app = next((a for a in m.applications if a.key == application), None)
    central_keys = [r.key for a in m.applications for r in a.roles if m.management_of(r.key) is Management.CENTRAL]
    with transaction(svc.rt.engine, readonly=True) as conn:
        account = repo.account_by_id(conn, session.decider_id)
        central, organisations = desk_store.scopes_of(conn, session.decider_id)
        rows = desk_store.rights_held(conn, now, organisations=organisations, role_keys=central_keys if central else (),
                                      within=[r.key for r in app.roles] if app else None, limit=MAX_ROWS + 1)
    groups: dict[str, dict] = {}
    for r in rows[:MAX_ROWS]:
        role, role_app = m.role(r["role_key"]), m.application_of(r["role_key"])
        local = m.management_of(r["role_key"]) is Management.LOCAL if role else False
        mine = central or (local and r["primary_organisation"] in organisations)
        group = groups.setdefault(role_app.key if role_app else "", {
            "label": role_app.label if role_app else "Autres habilitations", "rights": []})
        org = m.organisation(r["primary_organisation"]) if r["primary_organisation"] else None
        group["rights"].append({
            "value": f"{r['account_id']}:{r['role_key']}", "role": role.label if role else r["role_key"],
            "holder": f"{r['given_name']} {r['family_name']}", "email": r["email"],
            "organisation": org.name if org else (r["primary_organisation"] or "—"),
            "granted_at": repo.aware(r["granted_at"]), "expires_at": repo.aware(r["expires_at"]),
            "applied": r["applied_at"] is not None, "withdrawable": mine and r["account_id"] != session.decider_id})
    return {"decider_name": decider_name(account), "central": central, "organisations": organisations,
            "groups": sorted(groups.values(), key=lambda g: g["label"].casefold()), "truncated": len(rows) > MAX_ROWS,
            "applications": [(a.key, a.label) for a in sorted(m.applications, key=lambda a: a.label.casefold())],
            "application": app.key if app else "", "max_rows": MAX_ROWS}


def _tab(svc: "Services", session: "Session", view: dict, status_code: int = 200, **extra) -> HTMLResponse:
    csrf = desk_auth.csrf_token(svc.signing_key, session)
    response = render("desk_rights.html", status_code, title="Habilitations de l'organisme", tab="rights", csrf=csrf,
                      **view, **({"selected": set(), "reason": "", "error": None, "outcomes": None, "reason_error": False} | extra))
    return desk_auth.respond(svc, session, response)


@router.get("/desk/rights", response_class=HTMLResponse)
async def show(request: Request, application: str = "") -> HTMLResponse:
    svc: Services = request.app.state.syncd
    session = await desk_auth.authenticate(svc, request)
    if not isinstance(session, desk_auth.Session):
        return session
    view = await run_in_threadpool(rights_view, svc, session, application[:64])
    return _tab(svc, session, view)


@router.post("/desk/withdraw", response_class=HTMLResponse)
async def withdraw(request: Request, reason: Annotated[str, Form(max_length=20_000)] = "",
                   csrf: Annotated[str, Form(max_length=1000)] = "",
                   application: Annotated[str, Form(max_length=200)] = "") -> HTMLResponse:
    svc: Services = request.app.state.syncd
    session = await desk_auth.authenticate(svc, request)
    if not isinstance(session, desk_auth.Session):
        return session
    if not desk_auth.csrf_ok(svc.signing_key, session, csrf):
        return csrf_refused()
    rights = list(dict.fromkeys(v for v in (await request.form()).getlist("right")[:MAX_ROWS]
                                if isinstance(v, str) and RIGHT.fullmatch(v)))
    error = None
    if not rights:
        error = NOTHING_SELECTED
    elif not reason.strip():
        error = REASON_REQUIRED
    elif len(reason) > MAX_COMMENT or forbidden_character(reason, multi_line=True) is not None:
        error = REASON_INVALID
    if error is not None:
        view = await run_in_threadpool(rights_view, svc, session, application[:64])
        return _tab(svc, session, view, 400, error=error, selected=set(rights), reason=reason[:MAX_COMMENT],
                    reason_error=error != NOTHING_SELECTED)
    outcomes = await run_in_threadpool(withdraw_many, svc, session, rights, reason.strip())
    view = await run_in_threadpool(rights_view, svc, session, application[:64])
    return _tab(svc, session, view, outcomes=outcomes)


def withdraw_many(svc: "Services", session: "Session", rights: list[str], reason: str) -> list[tuple]:
    """Each right through the withdrawal use-case, one transaction each: (holder, role, code, label)."""
    from syncd.jobs.habilitations import revoke
    m = svc.rt.mappings
    pairs = [tuple(v.split(":")) for v in rights]
    with transaction(svc.rt.engine, readonly=True) as conn:
        holders = {a: decider_name(repo.account_by_id(conn, a)) for a in {a for a, _ in pairs}}
    outcomes = []
    for account_id, role_key in pairs:
        try:
            with svc.writing():
                revoke(svc.rt, account_id, role_key, by=session.decider_id, reason=reason)
            code = "withdrawn"
            log.info("desk_withdrawal", account_id=account_id, role=role_key, decider=session.decider_id)
        except DecisionRefused as exc:
            code = exc.code
        role = m.role(role_key)
        outcomes.append((holders.get(account_id) or account_id, role.label if role else role_key, code,
                         OUTCOMES_FR.get(code, "Non traitée")))
    return outcomes
