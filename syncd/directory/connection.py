"""ldap3 connections, and the boundary where ldap3's errors become syncd's.

Connections:
  * a ``ServerPool`` over ``settings.urls``, strategy FIRST: the first URL that answers is
    used, the others are fail-overs. ``active=1``: each server is tried once, then the
    attempt fails with ``DirectoryUnavailable`` and the caller's backoff decides when to try
    again (``active=True`` would loop, and sleep, forever inside a job). ``exhaust=True``: a
    server that did not answer is not tried again by that pool. A *new pool is built for
    every connection opened*: ldap3 keeps the offline marks in the pool, and a pool shared
    for the life of the process would go on refusing a server that came back (measured:
    with a shared pool and ``exhaust=10``, the first 10 s after a restart still failed).
  * ``get_info=NONE`` (no schema read at bind: it is slow), ``client_strategy=SAFE_SYNC``
    (the adapter keeps one connection per thread anyway), ``raise_exceptions=False`` (result
    codes are checked here), ``check_names=False`` (DNs and filters are built and escaped by
    ``syncd.directory.names``; ldap3's own DN "fixing" mangles some hostile values).
  * TLS: ``ldaps`` (or any ``ldaps://`` URL) wraps the socket, ``starttls`` upgrades it
    before the bind. Certificates are verified (``CERT_REQUIRED``) unless ``tls.verify`` is
    false; ``tls.ca_file`` names the CA bundle; ``tls.server_name`` is a name the certificate
    may carry besides the URL's host (a DC reached by address: its certificate names its host).

Errors (every ldap3 exception and every non-success result code is translated here):
  * ``DirectoryUnavailable`` — retrying later may help: the socket could not be opened or
    broke, a response timed out, the server pool found nobody, or the server answered
    busy (51), unavailable (52), timeLimitExceeded (3) or other (80, OpenLDAP's "internal
    error", e.g. a full database map: fixed by an operator, then a retry succeeds).
  * ``DirectoryRejected`` — everything else, including unwillingToPerform (53): OpenLDAP
    and 389-DS answer it for restricted operations, read-only databases and replicas, which
    a retry does not change; it needs an operator.
  * ``NoSuchEntry`` (a ``DirectoryRejected``) for noSuchObject (32).

Every translated error carries ``result_code`` (an int, or None for socket-level errors),
``operation`` and ``dn``. Passwords never appear in messages.
"""

from __future__ import annotations

import math
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import structlog
from ldap3 import FIRST, NONE, SAFE_SYNC, SIMPLE, Connection, Server, ServerPool, Tls
from ldap3.core import exceptions as lx
from ldap3.core.results import RESULT_CODES
from ldap3.utils.config import get_config_parameter, set_config_parameter

from syncd.errors import DirectoryRejected, DirectoryUnavailable, SyncdError
from syncd.settings import LdapSettings

log = structlog.get_logger(__name__)

# Result codes after which a retry may succeed.
TEMPORARY_RESULT_CODES = frozenset({3, 51, 52, 80})
BUSY, UNAVAILABLE, UNWILLING_TO_PERFORM, OTHER, TIME_LIMIT_EXCEEDED = 51, 52, 53, 80, 3
NO_SUCH_ATTRIBUTE = 16
ATTRIBUTE_OR_VALUE_EXISTS = 20
NO_SUCH_OBJECT = 32
INVALID_CREDENTIALS = 49
OBJECT_CLASS_VIOLATION = 65
ENTRY_ALREADY_EXISTS = 68

_TEMPORARY_EXCEPTIONS = (
    lx.LDAPCommunicationError,       # socket open/send/receive/close, session terminated
    lx.LDAPResponseTimeoutError,
    lx.LDAPServerPoolExhaustedError,
    lx.LDAPMaximumRetriesError,
    socket.error,                    # OSError, incl. timeouts and refused connections
)


class NoSuchEntry(DirectoryRejected):
    """The entry named does not exist (noSuchObject, 32)."""


def _error(cls: type[SyncdError], message: str, *, code: int | None, operation: str,
           dn: str | None) -> SyncdError:
    err = cls(message)
    err.result_code = code        # type: ignore[attr-defined]
    err.operation = operation     # type: ignore[attr-defined]
    err.dn = dn                   # type: ignore[attr-defined]
    return err


def is_temporary_result(code: int) -> bool:
    """Whether a non-success LDAP result code is worth retrying later."""
    return code in TEMPORARY_RESULT_CODES


def error_for_result(result: Mapping[str, Any] | None, *, operation: str,
                     dn: str | None = None) -> SyncdError:
    """The syncd error for a (non-success) ldap3 result dict."""
    if not result:
        return _error(DirectoryUnavailable, f"ldap {operation} got no response"
                      + (f" (dn {dn!r})" if dn else ""), code=None, operation=operation, dn=dn)
    code = int(result.get("result", OTHER))
    name = result.get("description") or RESULT_CODES.get(code, "unknown")
    message = (result.get("message") or "").strip()
    text = f"ldap {operation}" + (f" of {dn!r}" if dn else "") + f" failed: {name} ({code})"
    if message:
        text += f": {message}"
    if code == NO_SUCH_OBJECT:
        cls: type[SyncdError] = NoSuchEntry
    elif is_temporary_result(code):
        cls = DirectoryUnavailable
    else:
        cls = DirectoryRejected
    return _error(cls, text, code=code, operation=operation, dn=dn)


def raise_for_result(result: Mapping[str, Any] | None, *, operation: str, dn: str | None = None,
                     ok: frozenset[int] | set[int] = frozenset({0})) -> None:
    """Raise the translated error unless the result code is in ``ok``."""
    if result is not None and int(result.get("result", -1)) in ok:
        return
    raise error_for_result(result, operation=operation, dn=dn)


# How ldap3 words a refused certificate when it wraps the socket for LDAPS (it raises the same
# LDAPSocketOpenError as for a closed port, so the message is all there is to go on).
_CERTIFICATE_REFUSALS = ("certificate verify failed", "doesn't match any name", "hostname mismatch")


def error_for_exception(exc: BaseException, *, operation: str, dn: str | None = None) -> SyncdError:
    """The syncd error for an exception raised by ldap3 (or the socket under it)."""
    if isinstance(exc, SyncdError):
        return exc
    where = f"ldap {operation}" + (f" of {dn!r}" if dn else "")
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, lx.LDAPOperationResult):
        return error_for_result({"result": exc.result, "description": exc.description,
                                 "message": exc.message}, operation=operation, dn=dn)
    if isinstance(exc, lx.LDAPStartTLSError) or any(m in detail.lower() for m in _CERTIFICATE_REFUSALS):
        # A certificate the client does not trust, or one for another host: waiting will not fix it.
        return _error(DirectoryRejected, f"{where} failed: TLS negotiation refused: {detail}",
                      code=None, operation=operation, dn=dn)
    if isinstance(exc, _TEMPORARY_EXCEPTIONS):
        return _error(DirectoryUnavailable, f"{where} failed: server unreachable: {detail}",
                      code=None, operation=operation, dn=dn)
    return _error(DirectoryRejected, f"{where} failed: {type(exc).__name__}: {detail}",
                  code=None, operation=operation, dn=dn)


@contextmanager
def translated(operation: str, dn: str | None = None) -> Iterator[None]:
    """Turn any ldap3/socket exception raised in the block into a syncd error."""
    try:
        yield
    except SyncdError:
        raise
    except (lx.LDAPException, OSError) as exc:
        raise error_for_exception(exc, operation=operation, dn=dn) from exc


# ---------------------------------------------------------------------------------------------
# Servers and connections


def tls_config(settings: LdapSettings) -> Tls | None:
    """The ldap3 ``Tls`` for the settings, or None when no URL and no mode asks for TLS."""
    wants_tls = settings.tls.mode != "none" or any(u.lower().startswith("ldaps://") for u in settings.urls)
    if not wants_tls:
        return None
    validate = ssl.CERT_REQUIRED if settings.tls.verify else ssl.CERT_NONE
    with translated("tls configuration"):
        return Tls(validate=validate, ca_certs_file=settings.tls.ca_file or None,
                   valid_names=[settings.tls.server_name] if settings.tls.server_name else None)


def server_pool(settings: LdapSettings) -> ServerPool:
    """A FIRST-strategy pool over ``settings.urls`` (see the module docstring)."""
    if get_config_parameter("POOLING_LOOP_TIMEOUT") != 0:
        # ldap3 sleeps this long (10 s by default) after a failed cycle even when it is
        # about to give up; we never loop, so the sleep is pure delay.
        set_config_parameter("POOLING_LOOP_TIMEOUT", 0)
    tls = tls_config(settings)
    servers = []
    for url in settings.urls:
        url = url.strip().rstrip("/")   # ldap3 takes no path part, not even an empty one
        if settings.tls.mode == "starttls" and url.lower().startswith("ldaps://"):
            raise _error(DirectoryRejected, f"ldap url {url!r} is ldaps:// but tls.mode is starttls",
                         code=None, operation="configure", dn=None)
        use_ssl = settings.tls.mode == "ldaps" or url.lower().startswith("ldaps://")
        with translated("configure"):
            servers.append(Server(url, use_ssl=use_ssl, tls=tls, get_info=NONE,
                                  connect_timeout=settings.timeout_seconds))
    if not servers:
        raise _error(DirectoryRejected, "no ldap url configured", code=None, operation="configure", dn=None)
    return ServerPool(servers, FIRST, active=1, exhaust=True)


def open_connection(settings: LdapSettings, *, pool: ServerPool | None = None,
                    user: str | None = None, password: str | None = None) -> Connection:
    """Open, (StartTLS,) and simple-bind a connection; as the settings' bind DN by default.

    ``pool`` is for tests; by default a fresh pool is built (see the module docstring).

    Raises ``DirectoryUnavailable`` / ``DirectoryRejected`` (invalid credentials are 49,
    a rejection).
    """
    if user is None:
        user = settings.bind_dn
        password = settings.bind_password.get_secret_value() if settings.bind_password else None
    pool = pool or server_pool(settings)
    conn = Connection(
        pool,
        user=user or None,
        password=password or None,
        authentication=SIMPLE if user else None,
        client_strategy=SAFE_SYNC,
        raise_exceptions=False,
        check_names=False,
        receive_timeout=max(1, math.ceil(settings.timeout_seconds)),  # ldap3 packs it as an int
        auto_referrals=False,
        # syncd follows ranges itself (syncd.directory.ranges): ldap3's own follow-up of
        # "member;range=…" crashes on an answer that ends the range with no value.
        auto_range=False,
        read_only=False,
        return_empty_attributes=True,
    )
    try:
        with translated("connect"):
            conn.open()
        if settings.tls.mode == "starttls":
            with translated("starttls"):
                if not conn.start_tls():
                    raise error_for_result(conn.result, operation="starttls")
        if user:
            with translated("bind", user):
                bound, result, _, _ = conn.bind()
            if not bound:
                raise error_for_result(result, operation="bind", dn=user)
    except BaseException:
        safe_close(conn)
        raise
    log.debug("ldap_connected", server=str(conn.server.name) if conn.server else None, bind_dn=user)
    return conn


def safe_close(conn: Connection | None) -> None:
    """Unbind and close, ignoring every error (the connection may already be dead)."""
    if conn is not None:
        with suppress(Exception):    # closing a broken connection must not raise
            conn.unbind()
