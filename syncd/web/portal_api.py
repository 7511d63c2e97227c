"""The portal's screens in the API (docs/web.md, "The portal's screens"): « Mes coordonnées », the
forgotten password, withdrawing a right, an account's state, the catalogue with its padlocks,
the organisations of the sign-up list and the e-mail check.

The routes are ``syncd.web.api``'s ``SignedRoute``: the same signature, rate limit, nonce,
idempotency (POST) and error shape as every ``/api/v1`` endpoint. The work itself is the
use-cases the command line runs (``syncd.jobs.habilitations``, ``syncd.jobs.passwords``) and the
core's rules (``syncd.core.profile``, ``syncd.core.intake``): nothing is decided twice.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from typing import Annotated, Any

import anyio
import structlog
from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from syncd.core import profile as profile_rules
from syncd.errors import DecisionRefused, PermanentError
from syncd.store.db import transaction
from syncd.web.api import READ_ERRORS, ApiError, RefPath, SignedRoute, _account, _errors, _svc
from syncd.web import shared_limits
from syncd.web.portal_schemas import (AcceptedOut, AccountStateIn, AccountStateOut, CatalogueOut, EmailCheckIn,
                                      EmailCheckOut, ForgottenPasswordIn, OrganisationsOut, PersonCatalogueOut,
                                      ProfileChangesIn, ProfileFieldOut, ProfileOut, WithdrawalIn, WithdrawalOut)
from syncd.web.schemas import KEY
from syncd.web.schemas import Error

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/v1", route_class=SignedRoute, tags=["portal"])


def _described(extra: dict[int, str], *codes: int) -> dict[int | str, dict[str, Any]]:
    """``api._errors`` for the codes it knows, with this module's own descriptions added."""
    return _errors(*codes) | {code: {"model": Error, "description": text} for code, text in extra.items()}


# --- « Mes coordonnées » -------------------------------------------------------------------------------------

LABELS = {"civility": "Civilité", "given_name": "Prénom", "family_name": "Nom", "birth_name": "Nom de naissance",
          "email": "Email", "contact_email": "Email de contact", "phone": "Téléphone",
          "primary_organisation": "Organisme", "secondary_organisation": "Organisme secondaire"}
ETAG = re.compile(r'^(?:W/)?"(\d{1,18})"$')


def _etag(version: int) -> str:
    return f'"{version}"'


def _profile(account, mappings) -> ProfileOut:
    fields = []
    for name in profile_rules.FIELDS:
        value = getattr(account, name)
        org = mappings.organisation(value) if name.endswith("_organisation") and value else None
        reason = profile_rules.not_editable_reason(name, vars(account), mappings)
        fields.append(ProfileFieldOut(field=name, label=LABELS[name], value=value, display=org.name if org else None,
                                      editable=reason is None, reason=reason))
    return ProfileOut(account_id=account.id, version=account.version, status=account.status,
                      internal=account.internal, director=account.director, fields=fields)


@router.get("/accounts/{account}/profile", response_model=ProfileOut, operation_id="get_profile",
            summary="« Mes coordonnées »: every field, its value, and whether the person may change it here",
            responses=READ_ERRORS)
def get_profile(request: Request, response: Response, account: RefPath) -> ProfileOut:
    svc = _svc(request)
    with transaction(svc.rt.engine, readonly=True) as conn:
        found = _account(conn, account)
    response.headers["ETag"] = _etag(found.version)
    return _profile(found, svc.rt.mappings)


@router.patch("/accounts/{account}/profile", response_model=ProfileOut, operation_id="change_profile",
              summary="« Enregistrer les modifications »: change profile fields (If-Match: the ETag read)",
              responses=_described({
                  400: "A value is not valid (`invalid_request`, with `fields`).",
                  403: "A field the person may not change here (`not_editable`, with `fields` saying why: "
                       "for a director, the referential that owns it).",
                  412: "The account changed since it was read (`stale_version`): read it again.",
                  428: "If-Match is missing (`if_match_required`): send the ETag of the profile read."},
                  401, 404, 413, 429, 503))
def change_profile(request: Request, response: Response, account: RefPath, changes: ProfileChangesIn,
                   if_match: Annotated[str | None, Header(alias="If-Match", max_length=40,
                                                          description="The ETag of the profile read.")] = None
                   ) -> ProfileOut:
    from syncd.jobs.habilitations import update_profile
    svc = _svc(request)
    matched = ETAG.match(if_match.strip()) if if_match else None
    if matched is None:
        raise ApiError(428, "if_match_required", "Send If-Match with the ETag of the profile you read.")
    sent = changes.model_dump(exclude_unset=True)
    try:
        with svc.writing():
            update_profile(svc.rt, account, sent, expected_version=int(matched.group(1)),
                           channel=f"api:{request.state.client}")
    except profile_rules.ProfileStale:
        raise ApiError(412, "stale_version", "The profile changed since it was read: read it again.") from None
    except profile_rules.ProfileRefused as exc:
        fields = [{"field": f, "message": m} for f, m in exc.problems.items()]
        if exc.not_editable:
            raise ApiError(403, "not_editable", "A field cannot be changed here: see fields.", fields=fields) from None
        raise ApiError(400, "invalid_request", "The request is not valid: see fields.", fields=fields) from None
    except PermanentError:
        raise ApiError(404, "not_found", "There is no such account.") from None
    with transaction(svc.rt.engine, readonly=True) as conn:
        found = _account(conn, account)
    log.info("api_profile_changed", account_id=found.id, fields=sorted(sent), client=request.state.client)
    response.headers["ETag"] = _etag(found.version)
    return _profile(found, svc.rt.mappings)


# --- « Vous avez oublié votre mot de passe ? » -----------------------------------------------------------------

# Mails one address may be sent, and calls one person (their IP address as the portal sees it, or
# else the API client) may make, per hour: counted in the database, so they hold across processes.
FORGOTTEN_PER_ADDRESS = 3
FORGOTTEN_PER_CLIENT = 20
FORGOTTEN_WINDOW_SECONDS = 3600
FORGOTTEN_MIN_SECONDS = 0.1     # no answer sooner, whatever the address (see forgotten_password)
FORGOTTEN_MESSAGE = ("Si un compte actif correspond à cette adresse, un e-mail vient de lui être envoyé avec un "
                     "lien pour choisir un nouveau mot de passe.")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@router.post("/password/forgotten", response_model=AcceptedOut, status_code=202, operation_id="forgotten_password",
             summary="« Vous avez oublié votre mot de passe ? »: e-mail a reset link if an active account has "
                     "this address; the answer is the same whatever the address",
             responses=_described({429: "Too many calls for this address or this person (`rate_limited`, "
                                        "`Retry-After`): the same for every address."}, 400, 401, 409, 413, 503))
async def forgotten_password(request: Request, body: ForgottenPasswordIn) -> AcceptedOut:
    from syncd.jobs.passwords import request_reset_in
    svc = _svc(request)
    started = time.monotonic()
    now = svc.now()
    client = request.state.client

    def queued() -> float:
        # Every call does the same work in one transaction (two limit slots, one account lookup):
        # only an active account's adds a reset row and an outbox row; the mail leaves with the daemon.
        with svc.writing(), transaction(svc.rt.engine) as conn:
            who = f"{client} {body.client_address or '-'}"
            wait = shared_limits.take(conn, f"forgot:c:{_digest(who)}", FORGOTTEN_PER_CLIENT,
                                      FORGOTTEN_WINDOW_SECONDS, now)
            if not wait:
                wait = shared_limits.take(conn, f"forgot:a:{_digest(body.email.strip().lower())}",
                                          FORGOTTEN_PER_ADDRESS, FORGOTTEN_WINDOW_SECONDS, now)
            if not wait:
                request_reset_in(conn, svc.rt, body.email, now)
            return wait

    wait = await run_in_threadpool(queued)
    # The few milliseconds an active account's two inserts cost are hidden under a floor (the
    # answer never comes sooner), waited here without holding a thread.
    await anyio.sleep(max(0.0, FORGOTTEN_MIN_SECONDS - (time.monotonic() - started)))
    if wait:
        svc.metrics.rate_limited.labels(client).inc()
        raise ApiError(429, "rate_limited", "Too many password reset requests: try again later.",
                       headers={"Retry-After": str(math.ceil(wait))})
    return AcceptedOut(status="accepted", message=FORGOTTEN_MESSAGE)


# --- withdrawing a right, an account's state ----------------------------------------------------------------------

REFUSED_STATUS = {"not_found": 404, "not_authorised": 403, "own_request": 403}
ACTOR_ERRORS = {403: "The actor may not do this (`not_authorised`, `own_request`).",
                404: "No such account, or it does not hold this role (`not_found`)."}


def _refused(exc: DecisionRefused) -> ApiError:
    return ApiError(REFUSED_STATUS.get(exc.code, 409), exc.code, str(exc))


@router.post("/accounts/{account}/rights/{role_key}/withdrawal", response_model=WithdrawalOut,
             operation_id="withdraw_right",
             summary="Withdraw one right, with a reason e-mailed to the holder (a correspondent for their "
                     "organisation's locally managed roles, a central administrator for any)",
             responses=_described(ACTOR_ERRORS, 400, 401, 409, 413, 429, 503))
def withdraw_right(request: Request, account: RefPath, body: WithdrawalIn,
                   role_key: Annotated[str, Path(pattern=KEY, max_length=64)]) -> WithdrawalOut:
    from syncd.jobs.habilitations import revoke
    svc = _svc(request)
    try:
        with svc.writing():
            done = revoke(svc.rt, account, role_key, body.actor, body.reason)
    except DecisionRefused as exc:
        raise _refused(exc) from None
    log.info("api_right_withdrawn", account_id=done["account_id"], role=role_key, client=request.state.client)
    return WithdrawalOut(**done)


@router.post("/accounts/{account}/status", response_model=AccountStateOut, operation_id="set_account_status",
             summary="Disable or re-enable an account (a central administrator): disabled, it loses every right "
                     "and cannot log in; re-enabled, its rights are not restored",
             responses=_described(ACTOR_ERRORS, 400, 401, 409, 413, 429, 503))
def set_account_status(request: Request, account: RefPath, body: AccountStateIn) -> AccountStateOut:
    from syncd.jobs import habilitations
    svc = _svc(request)
    try:
        with svc.writing():
            account_id, changed = habilitations.set_account_status(svc.rt, account, body.status, actor=body.actor,
                                                                   reason=body.reason)
    except DecisionRefused as exc:
        raise _refused(exc) from None
    return AccountStateOut(account_id=account_id, status=body.status, changed=changed)


# --- the catalogue, the organisations, the e-mail check ----------------------------------------------------------

def _role(role, app) -> dict[str, Any]:
    return {"role_key": role.key, "label": role.label, "management": (role.management or app.management).value,
            "restriction": role.restriction, "validity_months": role.validity_months}


@router.get("/applications", response_model=CatalogueOut, operation_id="catalogue",
            summary="Every application with its roles, labels, management and restrictions",
            responses=_errors(401, 429, 503))
def catalogue(request: Request) -> CatalogueOut:
    mappings = _svc(request).rt.mappings
    return CatalogueOut(applications=[
        {"application_key": app.key, "application_label": app.label, "management": app.management.value,
         "roles": [_role(r, app) for r in app.roles]} for app in mappings.applications])


@router.get("/accounts/{account}/catalogue", response_model=PersonCatalogueOut, operation_id="person_catalogue",
            summary="The catalogue for one person: each role held, requested (pending, awaiting a decider, "
                    "parked), open to a request (padlock) or not available to an external account",
            responses=READ_ERRORS)
def person_catalogue(request: Request, account: RefPath) -> PersonCatalogueOut:
    from syncd.store import catalogue as padlocks
    from syncd.store.queries import status_label
    svc = _svc(request)
    mappings = svc.rt.mappings
    with transaction(svc.rt.engine, readonly=True) as conn:
        found = _account(conn, account)
        states = padlocks.role_states(conn, found, mappings, svc.now())
    apps = []
    for app in mappings.applications:
        roles = []
        for role in app.roles:
            st = states[role.key]
            r = st.request
            roles.append(_role(role, app) | {
                "state": st.state, "state_label": status_label(r["status"]) if r else padlocks.STATE_LABELS[st.state],
                "request_id": r["id"] if r else None, "request_status": r["status"] if r else None,
                "request_status_label": status_label(r["status"]) if r else None,
                "parked": bool(r and r["parked_at"] is not None), "expires_at": st.expires_at})
        apps.append({"application_key": app.key, "application_label": app.label, "management": app.management.value,
                     "held": any(r["state"] == "held" for r in roles), "roles": roles})
    return PersonCatalogueOut(account_id=found.id, internal=found.internal, applications=apps)


@router.get("/organisations", response_model=OrganisationsOut, operation_id="organisations",
            summary="The organisations of the sign-up form's list (code, name, branch), by name",
            responses=_errors(401, 429, 503))
def organisations(request: Request) -> OrganisationsOut:
    orgs = sorted(_svc(request).rt.mappings.organisations, key=lambda o: o.name.casefold())
    return OrganisationsOut(organisations=[{"code": o.code, "name": o.name, "branch": o.branch} for o in orgs])


@router.post("/email-check", response_model=EmailCheckOut, operation_id="email_check",
             summary="« Vérification de l'email pro. »: whether intake will accept this address for an internal "
                     "or an external account (it says nothing of existing accounts)",
             responses=_errors(400, 401, 409, 413, 429, 503))
def email_check(request: Request, body: EmailCheckIn) -> EmailCheckOut:
    from syncd.core.intake import email_rejection
    email, rejection = email_rejection(body.email, body.internal, _svc(request).rt.mappings)
    problems = [] if rejection is None else [{"code": rejection.code, "message": rejection.reason}]
    return EmailCheckOut(acceptable=rejection is None, email=email, problems=problems)
