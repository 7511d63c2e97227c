"""The web application: FastAPI on an ASGI server (uvicorn), one ``Runtime`` per process.

``create_app(rt)`` (or ``create_app(factory)``, called at start-up) returns the app:

* ``/api/v1/…``         the HMAC-signed JSON API (``syncd.web.api``), described by ``/openapi.json``;
* ``/decide/{token}``   the decision page of the signed links in the deciders' mails (``syncd.web.decision_page``);
* ``/password/reset``   the page behind the « mot de passe oublié » and first-password links
                        (``syncd.web.password_page``); both rendered by ``syncd.web.pages``;
* ``/desk``             the correspondents' desk, opened from the daily digest's link
                        (``syncd.web.desk_page``, ``syncd.web.desk_rights``, ``syncd.web.desk_reviews``,
                        ``syncd.web.desk_auth``);
* ``/healthz``          alive; ``/readyz``: the database and LDAP answer (503 otherwise);
* ``/metrics``          Prometheus (``syncd.web.metrics``).

Endpoints do their database work in the server's thread pool (plain functions, which FastAPI
runs there, or coroutines that hand it over themselves), ``web.database_concurrency`` threads
(at most ``database.pool_size``). The web process writes one thing to
LDAP, a password chosen on ``/password/reset`` (the user is waiting for it to work); everything
else reaches the directory through the daemon, and ``/readyz`` only pings it.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager, nullcontext
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.core.lifecycle import Transition
from syncd.core.model import Verdict
from syncd.errors import ConfigError, DecisionRefused, StoreRejected, TemporaryError
from syncd.jobs.decisions import decide_in, decide_request, settled
from syncd.mail import links
from syncd.runtime import Runtime
from syncd.store import tokens
from syncd.store.db import Connection, ping, transaction
from syncd.web import (api, auth, decision_page, desk_page, desk_reviews, desk_rights, messages, pages, password_page,
                       portal_api)
from syncd.web.group_commit import GroupCommit
from syncd.web.metrics import WebMetrics
from syncd.web.schemas import Health

log = structlog.get_logger(__name__)
T = TypeVar("T")

MAX_BODY_BYTES = 16 * 1024
CLOCK_SKEW_SECONDS = 300
RATE_PER_SECOND = 50.0
RATE_BURST = 100.0
PURGE_EVERY = timedelta(minutes=1)
READY_CACHE_SECONDS = 2.0
# Calls that wait on LDAP (the readiness probe, setting a password) run this many at a time, on
# threads of their own: a hanging directory then holds these, not the database calls' threads.
DIRECTORY_CALLS = 2
API_VERSION = "1.0.0"

DESCRIPTION = """\
The correspondents' web hook of **syncd**: decide access-rights requests, submit them, and read a
person's history, rights and contacts.

### Authentication
Every `/api/v1` request is signed by a registered client with its secret (HMAC-SHA256):

| header | value |
|---|---|
| `X-Syncd-Client` | the client's name |
| `X-Syncd-Timestamp` | Unix time in seconds, within 300 s of the server's clock |
| `X-Syncd-Nonce` | 16-128 characters of `[A-Za-z0-9_-]`, never reused |
| `X-Syncd-Signature` | hex HMAC-SHA256 of `METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nhex(SHA-256(body))` |

`PATH` is the request target as sent (percent-encoded path, plus `?query` when there is one).
A reused nonce is refused (401 `replayed_nonce`). POST requests may carry an `Idempotency-Key`:
a retry (signed anew) with the same key and body gets the first answer again; with another body,
409 `idempotency_key_reused`. A `portal_ref` submitted again with any field changed is 409
`portal_ref_conflict`. Bodies are limited to 16 KiB (413); GET, HEAD and OPTIONS carry none (400
`body_not_allowed`, refused unread). Every GET also answers HEAD (signed as HEAD): the same
headers, no body, nothing changed. Each client is rate-limited (429, `Retry-After`).

No field may hold a control character (C0, DEL, C1) or a bidirectional override; a comment may
hold line breaks and tabs: 400 `invalid_request`, naming the field.

### Errors
Every error is `{"error": code, "message": text}`; `invalid_request` adds `fields`. `error` is
stable (the codes are listed in the `Error` schema); `message` is French, or English with
`Accept-Language: en`.
"""


READ_METHODS = ("GET", "HEAD", "OPTIONS")


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, and any body on GET, HEAD or OPTIONS
    with 400, before the application reads them.

    A body is read here (it is small by definition) and handed on whole, so a client that
    announces no length or lies about it is refused as well. A read carries no body: one that
    announces a length is refused unread; a chunked one is refused on its first chunk (the server
    buffers at most 64 KiB before it stops reading the socket). Refusals close the connection,
    so the rest is never read: three 100 MB GETs leave the process's memory as it was.
    """

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if scope["method"] in READ_METHODS:
            await self._read_only(scope, receive, send, headers)
            return
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replaying(whole, receive), send)

    async def _read_only(self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]) -> None:
        declared = headers.get(b"content-length")
        if b"transfer-encoding" not in headers:
            if declared is None or declared.strip() == b"0":
                await self.app(scope, receive, send)
            else:
                await self._refuse(scope, send, 400)
            return
        first = await receive()
        if first["type"] != "http.request" or first.get("body") or first.get("more_body"):
            if first["type"] == "http.request":
                await self._refuse(scope, send, 400)
            return
        await self.app(scope, _replaying(first, receive), send)

    async def _refuse(self, scope: Scope, send: Send, status: int = 413) -> None:
        code = "body_too_large" if status == 413 else "body_not_allowed"
        log.info("web_body_refused", method=scope["method"], code=code)   # not the path: it may hold a token
        close = {"Connection": "close"}   # the rest of the body is not read
        if scope.get("path", "").startswith("/api/"):
            lang = messages.language(dict(scope.get("headers") or []).get(b"accept-language", b"").decode("latin-1"))
            english = (f"The body is limited to {self.limit} bytes." if status == 413
                       else "A GET, HEAD or OPTIONS request carries no body.")
            response: Response = JSONResponse(
                {"error": code, "message": messages.message(code, lang, english)}, status, headers=close)
        else:
            text = "Requête trop volumineuse." if status == 413 else "Cette requête ne doit pas porter de corps."
            response = PlainTextResponse(text, status, headers=close)
        await response(scope, _drain, send)


class HeadWithoutBody:
    """``HEAD`` answers as ``GET`` without the body (the headers, Content-Length included, stay).

    Every GET route answers HEAD so, and like GET it changes nothing (FastAPI's routes would say
    405). The application sees a GET, in a copy of the scope that says ``syncd.head`` (an API call
    is still signed as HEAD, ``syncd.web.api``); the server keeps its own scope, so it knows the
    answer has no body. Outside ``Observe``: the metrics count a HEAD as a GET of its route.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET", "syncd.head": True}, receive, headers_only)


class DecisionLane:
    """An ASGI layer inside ``Observe`` that hands the decision route's usual call — one that
    ``lean_parse`` accepts, a POST to ``/api/v1/requests/<digits>/decision`` — to its route's
    ``SignedRoute`` handler directly (its ``lean`` answers it), past FastAPI's exception and exit-stack layers and its
    routing, which cost about as much as the rest of the event loop's work for a decision. The
    scope gets what the router would give this route (``route``, ``endpoint``, ``path_params``,
    ``router``), the handler is the one FastAPI's route calls, and an exception it raises goes to
    the application's handler of its class, as FastAPI's ``ExceptionMiddleware`` would send it
    (any other goes on up to the server-error layer). Every other call, and every call when
    FastAPI's telemetry is on or the app sits under a root path, goes through FastAPI unchanged.
    """

    PATH = re.compile(r"/api/v1/requests/([0-9]{1,19})/decision")

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI):
        self.app, self.fastapi_app = app, fastapi_app
        self.route = next(r for r in api.router.routes if isinstance(r, api.DecisionRoute))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = None
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path") and \
                scope.get("fastapi.telemetry") is None:
            found = self.PATH.fullmatch(scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        first = await receive()   # the whole body: BodyLimit, outside, read it already
        receive = _replaying(first, receive)
        if first["type"] != "http.request" or first.get("more_body"):
            await self.app(scope, receive, send)
            return
        raw_id = found.group(1)
        parsed = api.lean_parse(raw_id, api.call_headers(Request(scope)), first.get("body", b""))
        route = self.route
        if parsed is None or route.lean is None:
            await self.app(scope, receive, send)
            return
        scope.setdefault("router", self.fastapi_app.router)
        scope.update(route=route, endpoint=route.endpoint, path_params={"request_id": raw_id})
        scope["syncd.decision"] = parsed
        request = Request(scope, receive, send)
        try:
            response = await route.signed_handler(request)
        except Exception as exc:
            handle = self._handler_of(exc)
            if handle is None:
                raise
            response = await handle(request, exc) if asyncio.iscoroutinefunction(handle) \
                else await run_in_threadpool(handle, request, exc)
        await response(scope, receive, send)

    def _handler_of(self, exc: Exception) -> Callable[..., Any] | None:
        handlers = self.fastapi_app.exception_handlers
        if isinstance(exc, StarletteHTTPException) and exc.status_code in handlers and exc.status_code != 500:
            return handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None   # the server-error layer's
            if cls in handlers:
                return handlers[cls]
        return None


def _replaying(first: Message, receive: Receive) -> Receive:
    """A ``receive`` that hands over ``first`` (a message already read), then reads on."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replay


async def _drain() -> Message:
    return {"type": "http.disconnect"}


class Services:
    """What the routes share: the runtime, the clients' secrets, the signing key, metrics, limits."""

    def __init__(self, rt_or_factory: Runtime | Callable[[], Runtime], *, clients: dict[str, bytes] | None,
                 rate_per_second: float | None, burst: float, skew_seconds: float,
                 monotonic: Callable[[], float], own_runtime: bool):
        self._rt = rt_or_factory if isinstance(rt_or_factory, Runtime) else None
        self._factory = None if isinstance(rt_or_factory, Runtime) else rt_or_factory
        self._own = own_runtime or self._rt is None
        self._lock = threading.Lock()
        self._clients = clients
        self.skew_seconds = skew_seconds
        self.buckets = auth.TokenBuckets(rate_per_second, burst, monotonic)
        self.metrics = WebMetrics(lambda: self.rt.engine, lambda: self.now())
        self._next_purge: datetime | None = None
        self._ready: tuple[float, int, dict[str, str]] | None = None
        self._write_lock = threading.RLock()
        self._directory_lane: CapacityLimiter | None = None   # made on first use, in the event loop
        self._group_commit: GroupCommit | None = None        # SQLite's decision writer, made on first use

    def writing(self):
        """Held around each write transaction on SQLite: this process's threads queue here, in order.

        SQLite has one writer at a time; without this, concurrent requests wait in SQLite's busy
        handler, which sleeps in growing steps (up to 100 ms) and makes a long latency tail.
        PostgreSQL needs no such thing.
        """
        return self._write_lock if self.rt.engine.dialect.name == "sqlite" else nullcontext()

    @property
    def rt(self) -> Runtime:
        if self._rt is None:
            with self._lock:
                if self._rt is None:
                    assert self._factory is not None
                    self._rt = self._factory()
        return self._rt

    @property
    def clients(self) -> dict[str, bytes]:
        if self._clients is None:
            self._clients = auth.load_clients(self.rt.settings)
        return self._clients

    @property
    def signing_key(self) -> str | None:
        return links.signing_key(self.rt.settings.web)

    def now(self) -> datetime:
        return self.rt.clock()

    def start(self) -> None:
        rt = self.rt
        key = self.signing_key
        if key is not None and len(key) < links.MIN_KEY_LENGTH:
            raise ConfigError(f"web.signing_key must be at least {links.MIN_KEY_LENGTH} characters")
        if key is None:
            log.warning("web_links_disabled", reason="web.signing_key is not set: decision links are not served")
        if not self.clients:
            log.warning("web_api_no_client", reason="no API client is configured (SYNCD_WEB__CLIENTS): "
                                                    "every /api/v1 request will be refused")
        log.info("web_started", clients=sorted(self.clients), links=key is not None, base_url=rt.settings.web.base_url)

    def close(self) -> None:
        if self._group_commit is not None:
            self._group_commit.close()
        if self._own and self._rt is not None:
            self._rt.close()

    # --- used by the API -------------------------------------------------------------------------

    def record_nonce(self, conn: Connection, who: auth.Verified, now: datetime) -> bool:
        """Record the request's nonce in ``conn``'s transaction (False if seen before); now and
        then, forget expired markers."""
        expires = datetime.fromtimestamp(who.timestamp, tz=now.tzinfo) + timedelta(seconds=2 * self.skew_seconds)
        fresh = tokens.claim(conn, f"nonce:{who.client}:{who.nonce}", now, max(expires, now))
        if fresh and (self._next_purge is None or now >= self._next_purge):
            self._next_purge = now + PURGE_EVERY
            purged = tokens.purge(conn, now)
            if purged:
                log.debug("used_tokens_purged", count=purged)
        return fresh

    def claim_nonce(self, who: auth.Verified, now: datetime) -> bool:
        """``record_nonce`` in a write transaction of its own."""
        with self.writing(), transaction(self.rt.engine) as conn:
            return self.record_nonce(conn, who, now)

    async def decide(self, request_id: int, decider: str, verdict: Verdict, comment: str | None, channel: str,
                     single_use: Callable[[Connection, DecisionRefused | None], None]) -> Transition:
        """``decide_request`` off the event loop: on SQLite in the decision writer's next
        transaction (``group_commit``), on PostgreSQL in a thread of the pool."""
        rt = self.rt
        if rt.engine.dialect.name == "sqlite":
            if self._group_commit is None:
                self._group_commit = GroupCommit(rt.engine, self.writing)
            return await self._group_commit.run(
                lambda conn: decide_in(conn, rt, request_id, decider, verdict, comment, channel, single_use=single_use),
                lambda outcome: settled(outcome, request_id, channel))
        return await run_in_threadpool(lambda: decide_request(rt, request_id, decider, verdict, comment, channel,
                                                              single_use=single_use))

    # --- calls that wait on LDAP, and readiness -----------------------------------------------------

    async def call_directory(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)``, which waits on LDAP, in a thread of the directory lane."""
        if self._directory_lane is None:
            self._directory_lane = CapacityLimiter(DIRECTORY_CALLS)
        return await to_thread.run_sync(fn, *args, limiter=self._directory_lane)

    def readiness(self) -> tuple[int, dict[str, str]]:
        cached = self._ready
        if cached is not None and time.monotonic() - cached[0] < READY_CACHE_SECONDS:
            return cached[1], cached[2]
        checks: dict[str, str] = {}
        try:
            with transaction(self.rt.engine, readonly=True) as conn:
                ping(conn)
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - report, do not crash the probe
            checks["database"] = f"unavailable: {type(exc).__name__}"
        try:
            self.rt.directory.ping()
            checks["ldap"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["ldap"] = f"unavailable: {type(exc).__name__}"
        status = 200 if all(v == "ok" for v in checks.values()) else 503
        self._ready = (time.monotonic(), status, checks)
        return status, checks


def create_app(rt_or_factory: Runtime | Callable[[], Runtime], *, clients: dict[str, bytes] | None = None,
               rate_per_second: float | None = RATE_PER_SECOND, burst: float = RATE_BURST,
               skew_seconds: float = CLOCK_SKEW_SECONDS, max_body_bytes: int = MAX_BODY_BYTES,
               monotonic: Callable[[], float] = time.monotonic, own_runtime: bool = False) -> FastAPI:
    """The web app around one runtime (or a factory called once, at start-up or first use).

    ``clients`` (name -> secret) defaults to ``SYNCD_WEB__CLIENTS`` / ``SYNCD_WEB__CLIENTS_FILE``.
    ``rate_per_second=None`` turns the per-client rate limit off. ``own_runtime``: close the
    runtime when the app shuts down (always so for one made by a factory).
    """
    svc = Services(rt_or_factory, clients=clients, rate_per_second=rate_per_second, burst=burst,
                   skew_seconds=skew_seconds, monotonic=monotonic, own_runtime=own_runtime)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await run_in_threadpool(svc.start)
        # Every database call of this process runs in the thread pool: web.database_concurrency at
        # a time, never more than the pooled connections; the others wait here in turn (calls
        # that wait on LDAP have a lane of their own, Services.call_directory). More
        # threads than connections would open overflow connections (a new PostgreSQL backend
        # each, closed again after use); more threads at all contend for the GIL (CPU per
        # decision on PostgreSQL: 1.5 ms with 3, 1.8-2.0 with 5, 2.0-2.1 with 8) and run more
        # transactions than there are cores. p99 at 16 calls in flight fell from ~100 ms to ~40 ms (bench/web_decisions.py).
        settings = svc.rt.settings
        to_thread.current_default_thread_limiter().total_tokens = min(settings.web.database_concurrency,
                                                                      settings.database.pool_size)
        try:
            yield
        finally:
            await run_in_threadpool(svc.close)

    # People, not programs, use these pages: their errors are French pages, not JSON.
    HTML_PREFIXES = ("/decide/", "/password/", "/desk")
    app = FastAPI(title="syncd web hook", version=API_VERSION, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.syncd = svc
    app.include_router(api.router)
    app.include_router(portal_api.router)   # the portal's screens (docs/web.md)
    app.include_router(decision_page.router)
    app.include_router(password_page.router)
    app.include_router(desk_page.router)
    app.include_router(desk_rights.router)
    app.include_router(desk_reviews.router)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        if request.url.path.startswith(HTML_PREFIXES):
            return pages.message(400, "Requête invalide", "Le formulaire envoyé est incomplet.", kind="error")
        return api.validation_error(exc).response(api.lang_of(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if request.url.path.startswith(HTML_PREFIXES):
            return pages.message(exc.status_code, "Page introuvable" if exc.status_code == 404 else "Requête refusée",
                                 "Cette adresse ne correspond à aucune page.", kind="error")
        return api.http_error(exc).response(api.lang_of(request))

    @app.exception_handler(TemporaryError)
    async def _temporary(request: Request, exc: TemporaryError):
        if request.url.path.startswith(HTML_PREFIXES):
            return pages.message(503, "Service momentanément indisponible", "Réessayez dans quelques minutes : ce "
                                 "qui a déjà été enregistré ne le sera pas deux fois.", kind="error", alert=True,
                                 retry_after=30)
        return api.unavailable(exc).response(api.lang_of(request))

    @app.exception_handler(StoreRejected)
    async def _rejected(request: Request, exc: StoreRejected):
        # A value the database refuses, past every check: the sender's to change, not a 500.
        if request.url.path.startswith(HTML_PREFIXES):
            log.warning("web_store_rejected", path_template=getattr(request.scope.get("route"), "path", None),
                        error=str(exc))
            return pages.message(400, "Requête invalide", "Une valeur envoyée n'a pas pu être enregistrée.",
                                 kind="error", alert=True)
        return api.store_rejected(exc).response(api.lang_of(request))

    @app.get("/healthz", response_model=Health, tags=["health"], operation_id="healthz",
             summary="The process is alive")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["health"], operation_id="readyz",
             summary="The database and LDAP answer", responses={503: {"model": Health,
                                                                      "description": "Not ready"}})
    async def readyz() -> Any:
        status, checks = await svc.call_directory(svc.readiness)
        body = Health(status="ok" if status == 200 else "unavailable", checks=checks)
        return JSONResponse(body.model_dump(), status_code=status)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        data = await run_in_threadpool(generate_latest, svc.metrics.registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(DecisionLane, fastapi_app=app)   # added first: inside Observe
    app.add_middleware(Observe, metrics=svc.metrics)
    app.add_middleware(HeadWithoutBody)
    app.add_middleware(BodyLimit, limit=max_body_bytes)   # added last: the outermost layer
    return app


class Observe:
    """Count each answer and time it, labelled by route template (never by the path: it holds tokens)."""

    def __init__(self, app: ASGIApp, metrics: WebMetrics):
        self.app, self.metrics = app, metrics
        # The labelled children, looked up once per (method, route, status): ``labels()`` checks
        # and converts its values and takes a lock on each call. Prometheus keeps each child for
        # the life of the metric, so holding them here keeps nothing more.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            key = (scope["method"], template, status)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (self.metrics.http_requests.labels(scope["method"], template,
                                                                                    str(status)),
                                                  self.metrics.http_duration.labels(template))
            children[0].inc()
            children[1].observe(time.perf_counter() - started)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with our error shape instead of its 422, and the HMAC scheme."""
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["syncdHmac"] = {
        "type": "apiKey", "in": "header", "name": auth.HEADER_SIGNATURE,
        "description": "HMAC-SHA256 request signature, with X-Syncd-Client, X-Syncd-Timestamp and X-Syncd-Nonce "
                       "(see the description above).",
    }
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "HTTPValidationError" in json.dumps(responses.get("422", {})):
                responses.pop("422")   # validation errors are 400 here, in the Error shape
            if path.startswith("/api/"):
                operation["security"] = [{"syncdHmac": []}]
    schemas = components.get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return schema
