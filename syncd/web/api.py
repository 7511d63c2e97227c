"""The HMAC-authenticated JSON API under ``/api/v1``: decisions, submissions, and the portal's reads.

Every route goes through ``SignedRoute``, which, before the body is parsed:

1. checks the signature headers (``syncd.web.auth``): 401 when missing, stale or wrong;
2. applies the client's rate limit: 429 with ``Retry-After``;
3. records the nonce in ``used_tokens``: a replayed request is 401 ``replayed_nonce``. A decision
   records it later, in the decision's own transaction (``records_nonce``), so that a decision is
   one write; when such a call stops before that write (a body that is not valid, an error), its
   nonce is recorded on its own afterwards;
4. honours ``Idempotency-Key`` on POST: the first answer (2xx or 4xx) is stored and returned again,
   with ``Idempotent-Replayed: true``, to a retry with the same key and the same body; the same key
   with another body is 409 ``idempotency_key_reused``; while the first call runs, 409.

Errors carry a stable ``error`` code and a ``message`` in French, or English on
``Accept-Language: en`` (``syncd.web.messages``).

Nothing here writes to LDAP: decisions are written to the database, whose commit wakes the
daemon (NOTIFY, or SQLite's datagram: ``syncd.store.wakeup``); its probe (every
``jobs.wake_poll_seconds``) is the fallback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from syncd.store import queries
from syncd.core import intake
from syncd.core.model import Verdict
from syncd.errors import DecisionRefused, StoreRejected, TemporaryError
from syncd.store import repo
from syncd.store import tokens
from syncd.store.db import transaction
from syncd.web import messages
from syncd.web.auth import AuthError, Verified, verify
from syncd.web.schemas import (MAX_ID, REF, AccountRequestIn, ContactsOut, DecisionIn, DecisionOut,
                               Error, HabilitationRequestIn, HistoryOut, PendingOut, RequestOut, RightsOut, SubmitIn,
                               SubmittedOut)

if TYPE_CHECKING:
    from syncd.web.app import Services

log = structlog.get_logger(__name__)

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
IDEMPOTENCY_DAYS = 1

# DecisionRefused codes -> HTTP status: who you are (403), whether the request can still be decided
# (409), what you sent (400), what you named (404).
DECISION_STATUS = {
    "own_request": 403, "not_authorised": 403,
    "already_decided": 409, "already_tacitly_accepted": 409, "rejected": 409, "not_routed": 409,
    "deadline_passed": 409,
    "comment_required": 400, "comment_too_long": 400,
    "not_found": 404,
}


class ApiError(Exception):
    """An error answer: a stable ``code``, and a message for people (``syncd.web.messages``).

    ``message`` is the English text (it may say more than the code's own); ``fields`` are
    ``{"field", "message"}`` in English, with ``fr`` (French) or pydantic's ``type`` and ``input``.
    """

    def __init__(self, status: int, code: str, message: str, fields: list[dict] | None = None,
                 headers: dict[str, str] | None = None):
        self.status, self.code, self.message, self.fields, self.headers = status, code, message, fields, headers
        super().__init__(message)

    def response(self, lang: messages.Language = "fr") -> JSONResponse:
        content: dict[str, Any] = {"error": self.code, "message": messages.message(self.code, lang, self.message)}
        if self.fields is not None:
            content["fields"] = [{"field": f["field"], "message": _field_text(f, lang)} for f in self.fields]
        return JSONResponse(content, status_code=self.status, headers=self.headers)


def _field_text(f: dict, lang: messages.Language) -> str:
    if "type" in f:
        return messages.field_message(f["type"], f.get("input"), lang, f["message"])
    return f.get("fr", f["message"]) if lang == "fr" else f["message"]


def invalid(field: str, english: str, french: str) -> ApiError:
    """400 ``invalid_request`` for one field."""
    return ApiError(400, "invalid_request", "The request is not valid: see fields.",
                    fields=[{"field": field, "message": english, "fr": french}])


def lang_of(request: Request) -> messages.Language:
    return messages.language(call_headers(request).get("accept-language"))


def call_headers(request: Request) -> dict[str, str]:
    """The call's headers, decoded once and kept in its scope (Starlette's ``Headers`` scans the
    list on each lookup, and a signed call looks up about eight): the lower-case names the server
    gives, the first of a repeated header, as ``request.headers.get`` answers."""
    scope = request.scope
    found = scope.get("syncd.headers")
    if found is None:
        found = scope["syncd.headers"] = {k.decode("latin-1"): v.decode("latin-1")
                                          for k, v in reversed(scope["headers"])}
    return found


def validation_error(exc: RequestValidationError) -> ApiError:
    """400 with one message per field (FastAPI's default is a 422 in its own shape)."""
    fields = []
    for e in exc.errors():
        loc = [str(x) for x in e.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        # A discriminated union adds the variant's name ("account", "habilitation") to the path.
        if len(loc) > 1 and loc[0] in ("account", "habilitation"):
            loc = loc[1:]
        if e.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            loc = [*loc, str((e.get("ctx") or {}).get("discriminator", "kind")).strip("'")]
        fields.append({"field": ".".join(loc) or "body", "message": e.get("msg", "invalid"),
                       "type": e.get("type", ""), "input": e.get("input")})
    return ApiError(400, "invalid_request", "The request is not valid: see fields.", fields=fields)


def request_target(scope: dict) -> str:
    """The request target as the client sent it (what the signature covers)."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope.get("path", "")
    path = path.split("?", 1)[0]
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


class NonceReplayed(Exception):
    """Raised in the transaction that found the call's nonce recorded already: it writes nothing."""


class CallNonce:
    """The nonce of one signed call, recorded by the first write transaction the call makes."""

    def __init__(self, svc: "Services", who: Verified, now):
        self.svc, self.who, self.now = svc, who, now
        self.recorded = False     # set by the caller once the transaction that recorded it committed
        self.replayed = False

    def record_in(self, conn, _refusal=None) -> None:
        """Record it in ``conn``'s transaction, or raise ``NonceReplayed`` (the shape of
        ``decide_request``'s ``single_use``)."""
        try:
            self.check_in(conn)
        except NonceReplayed:
            self.replayed = True
            raise

    def check_in(self, conn, _refusal=None) -> None:
        """``record_in`` leaving the flags alone, for a transaction that may be rolled back and
        written again: the caller sets them from the outcome of the one that committed."""
        if not self.recorded and not self.svc.record_nonce(conn, self.who, self.now):
            raise NonceReplayed()

    def record_alone(self) -> bool:
        """Record it in a transaction of its own; False if it was recorded before."""
        fresh = self.svc.claim_nonce(self.who, self.now)
        self.recorded, self.replayed = fresh, not fresh
        return fresh


def records_nonce(endpoint):
    """Mark an endpoint that records the call's nonce in its own write transaction
    (``request.state.nonce.record_in``) instead of in one of the nonce's own before it runs."""
    endpoint.records_nonce = True
    return endpoint


def replayed(svc: "Services", who: Verified, request: Request) -> Response:
    svc.metrics.auth_failures.labels("replayed_nonce").inc()
    log.warning("api_replay_refused", client=who.client, path=request.url.path)
    return ApiError(401, "replayed_nonce", "This nonce was used already: sign each request anew.",
                    headers={"WWW-Authenticate": "Syncd-HMAC"}).response(lang_of(request))


class SignedRoute(APIRoute):
    """A route that authenticates, rate-limits, de-duplicates and converts errors before the endpoint runs.

    ``lean``: a coroutine tried before FastAPI's own handler, once the call is signed: it answers
    the calls it knows how to (returning the response) and leaves the others to FastAPI
    (returning None), which then parses, validates and answers as it always does.
    """

    lean: Callable[[Request], Awaitable[Response | None]] | None = None

    def get_route_handler(self):
        endpoint = super().get_route_handler()
        nonce_inside = getattr(self.endpoint, "records_nonce", False)

        async def handler(request: Request) -> Response:
            svc: Services = request.app.state.syncd
            lang = lang_of(request)
            body = await request.body()
            now = svc.now()
            target = request_target(request.scope)
            method = "HEAD" if request.scope.get("syncd.head") else request.method   # as the client signed it
            try:
                who = verify(svc.clients, call_headers(request), method, target, body, now, svc.skew_seconds)
            except AuthError as exc:
                svc.metrics.auth_failures.labels(exc.code).inc()
                log.info("api_auth_refused", code=exc.code, path=request.url.path)
                return ApiError(401, exc.code, str(exc), headers={"WWW-Authenticate": "Syncd-HMAC"}).response(lang)
            wait = svc.buckets.take(who.client)
            if wait:
                svc.metrics.rate_limited.labels(who.client).inc()
                return ApiError(429, "rate_limited", "Too many requests: slow down.",
                                headers={"Retry-After": str(max(1, math.ceil(wait)))}).response(lang)
            nonce = CallNonce(svc, who, now)
            if not nonce_inside:
                try:
                    if not await run_in_threadpool(nonce.record_alone):
                        return replayed(svc, who, request)
                except TemporaryError as exc:
                    return unavailable(exc).response(lang)
            request.state.client = who.client
            request.state.nonce = nonce
            try:
                idem = call_headers(request).get("idempotency-key")
                if idem is None or request.method != "POST":
                    response = await self._run(endpoint, request)
                else:
                    response = await self._idempotent(endpoint, request, svc, who, idem, body, now)
            except Exception:
                if not nonce.recorded and not nonce.replayed:
                    with contextlib.suppress(Exception):
                        await run_in_threadpool(nonce.record_alone)
                raise
            if nonce.replayed:
                return replayed(svc, who, request)
            if not nonce.recorded:
                # The endpoint did not get as far as its write (a body that is not valid, an
                # error): the nonce is used up all the same, and a replay is refused as such.
                try:
                    if not await run_in_threadpool(nonce.record_alone):
                        return replayed(svc, who, request)
                except TemporaryError as exc:
                    return unavailable(exc).response(lang)
            return response

        self.signed_handler = handler   # what ``app.DecisionLane`` calls, past FastAPI's routing
        return handler

    async def _run(self, endpoint, request: Request) -> Response:
        lang = lang_of(request)
        try:
            if self.lean is not None:
                response = await self.lean(request)
                if response is not None:
                    return response
            return await endpoint(request)
        except NonceReplayed:
            return Response(status_code=401)   # replaced by the handler, which knows who replayed
        except ApiError as exc:
            return exc.response(lang)
        except RequestValidationError as exc:
            return validation_error(exc).response(lang)
        except HTTPException as exc:   # FastAPI's own, e.g. a body that is not UTF-8
            return http_error(exc).response(lang)
        except TemporaryError as exc:
            return unavailable(exc).response(lang)
        except StoreRejected as exc:   # the database refused a value that passed validation
            return store_rejected(exc).response(lang)

    async def _idempotent(self, endpoint, request: Request, svc: "Services", who: Verified, idem: str, body: bytes,
                          now) -> Response:
        lang = lang_of(request)
        if not IDEMPOTENCY_KEY.match(idem):
            return invalid("Idempotency-Key", "1 to 200 visible ASCII characters",
                           "1 à 200 caractères ASCII visibles.").response(lang)
        scope = hashlib.sha256(f"{request.method} {request.url.path}\n{idem}".encode()).hexdigest()
        key = f"idem:{who.client}:{scope}"
        fingerprint = hashlib.sha256(body).hexdigest()
        expires = now + timedelta(days=IDEMPOTENCY_DAYS)

        nonce: CallNonce = request.state.nonce

        def first_or_stored():
            with svc.writing(), transaction(svc.rt.engine) as conn:
                nonce.record_in(conn)
                if tokens.claim(conn, key, now, expires, {"fingerprint": fingerprint}):
                    stored = None
                else:
                    stored = tokens.result_of(conn, key)[1] or {}
            nonce.recorded = True
            return stored

        try:
            stored = await run_in_threadpool(first_or_stored)
        except NonceReplayed:
            return Response(status_code=401)   # replaced by the handler
        except TemporaryError as exc:
            return unavailable(exc).response(lang)
        if stored is not None:
            if stored.get("fingerprint") != fingerprint:
                return ApiError(409, "idempotency_key_reused",
                                "This Idempotency-Key was used with another request body.").response(lang)
            if "status" not in stored:
                return ApiError(409, "idempotency_key_in_use",
                                "A request with this Idempotency-Key is still being processed.").response(lang)
            return JSONResponse(stored["body"], status_code=stored["status"], headers={"Idempotent-Replayed": "true"})
        response = await self._run(endpoint, request)

        def remember():
            with svc.writing(), transaction(svc.rt.engine) as conn:
                if response.status_code >= 500 or response.status_code in (401, 429):
                    tokens.release(conn, key)      # not an answer worth replaying: let the retry run
                else:
                    tokens.store_result(conn, key, {"fingerprint": fingerprint, "status": response.status_code,
                                                    "body": json.loads(bytes(response.body) or b"null")})

        try:
            await run_in_threadpool(remember)
        except TemporaryError as exc:
            log.warning("idempotency_result_not_stored", error=str(exc))
        return response


HTTP_CODES = {400: "invalid_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type"}


def http_error(exc: HTTPException) -> ApiError:
    """A framework-raised HTTP error, in our error shape."""
    code = HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "The request cannot be served."
    return ApiError(exc.status_code, code, message, headers=dict(exc.headers or {}) or None)


def store_rejected(exc: Exception) -> ApiError:
    """The database refused a value that passed validation: the client's to change, never a 500."""
    log.warning("api_store_rejected", error=str(exc))
    return ApiError(400, "invalid_request", "The database refused a value of this request.",
                    fields=[{"field": "body", "message": "a value the database refuses",
                             "fr": "Une valeur est refusée par la base de données."}])


def unavailable(exc: Exception) -> ApiError:
    log.warning("api_store_unavailable", error=str(exc))
    return ApiError(503, "unavailable", "The database is unavailable: try again shortly.",
                    headers={"Retry-After": "5"})


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "The request is not valid (`invalid_request`, with `fields`: a control character is refused in every "
             "field), a refusal without a comment, or a body on a GET (`body_not_allowed`).",
        401: "Missing, stale or wrong signature, or a replayed nonce.",
        403: "The decider may not decide this request (`not_authorised`, `own_request`).",
        404: "No such request, account or decider.",
        409: "The request can no longer be decided (`already_decided`, `already_tacitly_accepted`, `rejected`, "
             "`not_routed`, `deadline_passed`); or a replay that differs from the first call: the Idempotency-Key "
             "with another body (`idempotency_key_reused`), the portal_ref with another field, the role included "
             "(`portal_ref_conflict`); or the Idempotency-Key is in use.",
        413: "The body is larger than the limit (16 KiB).",
        429: "Rate limit exceeded: see Retry-After.",
        503: "The database is unavailable: retry later.",
    }
    return {code: {"model": Error, "description": described[code]} for code in codes}


READ_ERRORS = _errors(400, 401, 404, 429, 503)
POST_ERRORS = _errors(400, 401, 409, 413, 429, 503)

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                              description="Retry-safe key: the first answer is returned again.")]

RefPath = Annotated[str, Path(min_length=1, max_length=254, pattern=REF,
                              description="An account id, or the account's professional e-mail.")]

router = APIRouter(prefix="/api/v1", route_class=SignedRoute, tags=["api"])


def _svc(request: Request) -> "Services":
    return request.app.state.syncd


def _account(conn, ref: str):
    account = repo.find_account(conn, ref)
    if account is None:
        raise ApiError(404, "not_found", "There is no such account.")
    return account


# --- decisions ----------------------------------------------------------------------------------------

@records_nonce
async def decide(request: Request, decision: DecisionIn, request_id: Annotated[int, Path(ge=1, le=MAX_ID)],
                 idempotency_key: IdempotencyKey = None) -> DecisionOut:
    return await _decide(request, request_id, decision)


_JSON = "application/json"


async def lean_decision(request: Request) -> Response | None:
    """``decide`` for a call whose id is plain digits in range and whose body is a JSON object
    that ``DecisionIn`` accepts, sent as ``application/json``: parsed as FastAPI would
    (``json.loads``, then the model in Python mode), answered with the bytes FastAPI would send.
    Anything else (None) goes to FastAPI, which refuses it with its own errors, unchanged. The
    ``Idempotency-Key`` was checked by ``SignedRoute`` already."""
    parsed = request.scope.get("syncd.decision")   # by DecisionLane, from the same call
    if parsed is None:
        parsed = lean_parse(request.path_params.get("request_id", ""), call_headers(request), await request.body())
        if parsed is None:
            return None
    out = await _decide(request, *parsed)
    return Response(_DECISION_OUT(out), media_type=_JSON)


def lean_parse(raw_id: str, headers: dict[str, str], body: bytes) -> tuple[int, DecisionIn] | None:
    """The id and the decision of a call ``lean_decision`` answers, or None for FastAPI to."""
    if not (raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 19) or \
            headers.get("content-type", "").partition(";")[0].strip().lower() != _JSON:
        return None
    request_id = int(raw_id)
    if not 1 <= request_id <= MAX_ID:
        return None
    try:
        data = json.loads(body)
        if type(data) is not dict:
            return None
        return request_id, DecisionIn.model_validate(data)
    except (ValueError, RecursionError):   # not JSON, not UTF-8, nested too deep, refused by the model
        return None


_DECISION_OUT = DecisionOut.__pydantic_serializer__.to_json   # what FastAPI's ``response_model`` sends


async def _decide(request: Request, request_id: int, decision: DecisionIn) -> DecisionOut:
    # A coroutine that hands the database work over itself: FastAPI runs a plain function in
    # the thread pool, and then the validation of its answer as well, a second trip per call.
    svc = _svc(request)
    nonce: CallNonce = request.state.nonce
    verdict = Verdict(decision.verdict)
    try:
        t = await svc.decide(request_id, decision.decider, verdict, decision.comment, f"api:{request.state.client}",
                             single_use=nonce.check_in)
    except NonceReplayed:
        nonce.replayed = True
        raise
    except DecisionRefused as exc:
        nonce.recorded = True   # with the refused attempt
        svc.metrics.decisions_refused.labels(exc.code, "api").inc()
        raise ApiError(DECISION_STATUS.get(exc.code, 409), exc.code, str(exc)) from None
    nonce.recorded = True
    svc.metrics.decisions.labels(verdict.value, "api").inc()
    # `decisions.settled` logged it (`request_decided`, channel "api:<client>"): one line per decision.
    return DecisionOut(request_id=request_id, status=t.to_status.value, status_label=queries.status_label(
        t.to_status.value), decided_at=t.at, decided_by=t.decided_by or "", comment=t.comment)


class DecisionRoute(SignedRoute):
    """The decision endpoint: its usual call skips FastAPI's parameter solving and answer
    validation (``lean_decision``), the rest goes through FastAPI as any route."""

    lean = staticmethod(lean_decision)


router.add_api_route("/requests/{request_id}/decision", decide, methods=["POST"], response_model=DecisionOut,
                     operation_id="decide", summary="Accept or refuse a pending request on behalf of a decider",
                     responses=_errors(400, 401, 403, 404, 409, 413, 429, 503), route_class_override=DecisionRoute)


# --- one request, and submitting one --------------------------------------------------------------------

@router.get("/requests/{request_id}", response_model=RequestOut, operation_id="get_request",
            summary="One request as the decision page shows it", responses=READ_ERRORS)
def get_request(request: Request, request_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> RequestOut:
    svc = _svc(request)
    with transaction(svc.rt.engine, readonly=True) as conn:
        detail = queries.request_detail(conn, request_id, svc.rt.mappings)
    if detail is None:
        raise ApiError(404, "not_found", f"There is no request {request_id}.")
    return RequestOut(**{k: getattr(detail, k) for k in RequestOut.model_fields})


@router.post("/requests", response_model=SubmittedOut, status_code=201, operation_id="submit_request",
             summary="Submit an account, habilitation or mobility request (the queue table's contract, docs/queue.md)",
             responses={200: {"model": SubmittedOut, "description": "A request with this portal_ref existed: "
                                                                     "it is returned, nothing is added."},
                        **POST_ERRORS})
def submit_request(request: Request, submitted: Annotated[SubmitIn, Body()],
                   idempotency_key: IdempotencyKey = None) -> Any:
    svc = _svc(request)
    rt = svc.rt
    now = svc.now()
    when = submitted.submitted_at or now
    if when > now + timedelta(seconds=svc.skew_seconds):
        raise invalid("submitted_at", "must not be in the future", "Ne peut pas être dans le futur.")
    values: dict[str, Any] = {"kind": submitted.kind, "submitted_at": when, "email": submitted.email,
                              "portal_ref": submitted.portal_ref}
    if isinstance(submitted, HabilitationRequestIn):
        if rt.mappings.role(submitted.role_key) is None:
            raise invalid("role_key", "unknown role", "Rôle inconnu.")
        values.update(role_key=submitted.role_key)
    elif rt.mappings.organisation(submitted.organisation_code) is None:
        raise invalid("organisation_code", "unknown organisation", "Organisme inconnu.")
    elif isinstance(submitted, AccountRequestIn):
        values.update(civility=submitted.civility, given_name=submitted.given_name,
                      family_name=submitted.family_name, internal=submitted.internal,
                      organisation_code=submitted.organisation_code, terms_accepted=submitted.terms_accepted,
                      terms_version=submitted.terms_version)
        refused = intake.account_door_refusals(values, rt.mappings)   # what LDAP would refuse, as intake does
        if refused:
            raise ApiError(400, "invalid_request", "The request is not valid: see fields.",
                           fields=[{"field": f, "message": m} for f, m in refused.items()])
    else:   # a mobility
        values.update(organisation_code=submitted.organisation_code)
    try:
        with svc.writing(), transaction(rt.engine) as conn:
            request_id, existing = repo.submit_request(conn, values)
    except StoreRejected as exc:
        raise ApiError(409, "conflict", "The request could not be stored.") from exc
    if existing is not None:
        differs = _replay_differs(existing, values, with_submitted_at=submitted.submitted_at is not None)
        if differs:
            log.info("api_portal_ref_conflict", request_id=existing["id"], field=differs, client=request.state.client)
            raise ApiError(409, "portal_ref_conflict", f"This portal_ref names another request ({differs} differs).",
                           fields=[{"field": differs, "message": "differs from the request recorded with this "
                                    "portal_ref", "fr": "Diffère de la demande enregistrée sous ce portal_ref."}])
        out = SubmittedOut(request_id=existing["id"], status=existing["status"],
                           status_label=queries.status_label(existing["status"]), portal_ref=submitted.portal_ref,
                           created=False)
        return JSONResponse(out.model_dump(mode="json"), status_code=200)
    log.info("api_request_submitted", request_id=request_id, kind=submitted.kind, client=request.state.client)
    return SubmittedOut(request_id=request_id, status="new", status_label=queries.status_label("new"),
                        portal_ref=submitted.portal_ref, created=True)


def _replay_differs(existing, values: dict[str, Any], *, with_submitted_at: bool) -> str | None:
    """The first field in which a replayed submission differs from the stored request, or None.

    The stored row may have been normalised by intake since (e-mail case, spaces in names): both
    sides are compared in that normal form. ``submitted_at`` counts only when the replay gives it.
    """
    def norm(field: str, value: Any) -> Any:
        if field == "email" and isinstance(value, str):
            return intake.normalise_email(value) or value.strip().lower()
        if field in ("given_name", "family_name") and isinstance(value, str):
            return intake.clean_name(value) or value
        if field in ("terms_version", "civility") and isinstance(value, str):
            return value.strip().lower()
        if field == "submitted_at" and value is not None:
            return repo.aware(value)
        return value

    for field, value in values.items():
        if field == "submitted_at" and not with_submitted_at:
            continue
        if norm(field, value) != norm(field, existing[field]):
            return field
    return None


# --- the portal's reads ------------------------------------------------------------------------------------

@router.get("/accounts/{account}/history", response_model=HistoryOut, operation_id="history",
            summary="« Historique de vos demandes »: every request of one person, newest first",
            responses=READ_ERRORS)
def history(request: Request, account: RefPath) -> HistoryOut:
    svc = _svc(request)
    with transaction(svc.rt.engine, readonly=True) as conn:
        found = repo.find_account(conn, account)
        if found is not None:
            items = queries.request_history(conn, found.id, svc.rt.mappings, now=svc.now())
            return HistoryOut(account_id=found.id, items=[vars(i) for i in items])
        if "@" in account:
            items = queries.request_history(conn, None, svc.rt.mappings, email=account, now=svc.now())
            if items:
                return HistoryOut(account_id=None, items=[vars(i) for i in items])
    raise ApiError(404, "not_found", "There is no such account, and no request from this e-mail.")


@router.get("/accounts/{account}/rights", response_model=RightsOut, operation_id="rights",
            summary="« Liste de vos habilitations »: the roles held now, grouped by application",
            responses=READ_ERRORS)
def rights(request: Request, account: RefPath) -> RightsOut:
    svc = _svc(request)
    with transaction(svc.rt.engine, readonly=True) as conn:
        found = _account(conn, account)
        apps = queries.rights_synthesis(conn, found.id, svc.rt.mappings, now=svc.now())
        ended = queries.ended_rights(conn, found.id, svc.rt.mappings, now=svc.now())
    return RightsOut(account_id=found.id, applications=[
        {"application_key": a.application_key, "application_label": a.application_label,
         "roles": [vars(r) for r in a.roles]} for a in apps], ended=[vars(e) for e in ended])


@router.get("/accounts/{account}/contacts", response_model=ContactsOut, operation_id="contacts",
            summary="« Mes contacts »: the local correspondents of the person's organisation",
            responses=READ_ERRORS)
def contacts(request: Request, account: RefPath) -> ContactsOut:
    svc = _svc(request)
    with transaction(svc.rt.engine, readonly=True) as conn:
        found = _account(conn, account)
        c = queries.contacts(conn, found.id)
    return ContactsOut(account_id=found.id, organisation_code=c.organisation_code,
                       organisation_name=c.organisation_name, central=c.central,
                       contacts=[vars(x) for x in c.contacts])


@router.get("/deciders/{decider}/pending", response_model=PendingOut, operation_id="pending",
            summary="The pending requests routed to one decider", responses=READ_ERRORS)
def pending(request: Request,
            decider: RefPath,
            sort: Annotated[queries.SortKey, Query()] = "deadline",
            page: Annotated[int, Query(ge=1, le=100_000)] = 1,
            page_size: Annotated[int, Query(ge=1, le=queries.MAX_PAGE_SIZE)] = 20,
            organisation: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = None,
            role: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")] = None,
            kind: Annotated[Literal["account", "habilitation", "renewal", "mobility"] | None, Query()] = None
            ) -> PendingOut:
    svc = _svc(request)
    with transaction(svc.rt.engine, readonly=True) as conn:
        found = _account(conn, decider)
        result = queries.pending_for_decider(conn, found.id, mappings=svc.rt.mappings, sort=sort,
                                             organisation=organisation, role=role, kind=kind, page=page,
                                             page_size=page_size)
    return PendingOut(decider_id=found.id, items=[vars(i) for i in result.items], total=result.total,
                      page=result.page, page_size=result.page_size)


