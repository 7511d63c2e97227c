"""Authenticating API clients (HMAC-SHA256 signed requests), and a per-client rate limit.

A client (the portal, an operator's script) shares a secret with syncd. Each request carries:

    X-Syncd-Client:    the client's name
    X-Syncd-Timestamp: Unix time in seconds, within ``skew_seconds`` (300) of syncd's clock
    X-Syncd-Nonce:     16 to 128 characters of [A-Za-z0-9_-], never sent twice
    X-Syncd-Signature: hex HMAC-SHA256, with the client's secret, of the five lines
                       METHOD \\n PATH \\n TIMESTAMP \\n NONCE \\n hex SHA-256 of the body

PATH is the request target exactly as sent: the percent-encoded path, plus ``?`` and the query
string when there is one. The signature is compared in constant time; the nonce is recorded in
``used_tokens`` so that a captured request cannot be sent again (until it is too old to pass the
timestamp check, after which its nonce may be forgotten).

Secrets come from the environment only, never from the config file: ``SYNCD_WEB__CLIENTS``
holds a JSON object ``{"client": "secret", …}``, or ``SYNCD_WEB__CLIENTS_FILE`` names a file
holding it. Each secret must be at least 32 characters.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from syncd.errors import ConfigError

CLIENTS_ENV = "SYNCD_WEB__CLIENTS"
HEADER_CLIENT = "X-Syncd-Client"
HEADER_TIMESTAMP = "X-Syncd-Timestamp"
HEADER_NONCE = "X-Syncd-Nonce"
HEADER_SIGNATURE = "X-Syncd-Signature"
MIN_SECRET_LENGTH = 32
CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
SIGNATURE = re.compile(r"^[0-9a-fA-F]{64}$")
_DUMMY_SECRET = secrets.token_bytes(32)   # so an unknown client costs the same HMAC as a known one


class AuthError(Exception):
    """The request is not authenticated; ``code`` says why (logged, and sent to the client)."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


# --- clients and their secrets --------------------------------------------------------------------

def parse_clients(text: str, where: str) -> dict[str, bytes]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc.msg}): write {{\"client\": \"secret\"}}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a JSON object {{\"client\": \"secret\"}}")
    clients: dict[str, bytes] = {}
    problems = []
    for name, secret in data.items():
        if not CLIENT_NAME.match(str(name)):
            problems.append(f"{where}: client name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
        elif not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            problems.append(f"{where}: the secret of client {name!r} must be a string of at least "
                            f"{MIN_SECRET_LENGTH} characters")
        else:
            clients[name] = secret.encode("utf-8")
    if problems:
        raise ConfigError(problems)
    return clients


def load_clients(settings) -> dict[str, bytes]:
    """The API clients and their secrets, from ``web.clients`` (``SYNCD_WEB__CLIENTS`` or ``_FILE``)."""
    configured = settings.web.clients
    if configured is None:
        return {}
    return parse_clients(configured.get_secret_value(), CLIENTS_ENV)


# --- signatures ------------------------------------------------------------------------------------

def string_to_sign(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return "\n".join((method.upper(), target, timestamp, nonce, hashlib.sha256(body).hexdigest())).encode("utf-8")


def sign(secret: bytes | str, method: str, target: str, timestamp: str, nonce: str, body: bytes) -> str:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, string_to_sign(method, target, timestamp, nonce, body), hashlib.sha256).hexdigest()


def signed_headers(client: str, secret: bytes | str, method: str, target: str, body: bytes = b"", *,
                   now: datetime | float | None = None, nonce: str | None = None) -> dict[str, str]:
    """The four headers a client sends (for clients written in Python, the tests and the bench)."""
    seconds = now.timestamp() if isinstance(now, datetime) else now
    timestamp = str(int(time.time() if seconds is None else seconds))
    nonce = nonce or secrets.token_urlsafe(18)
    return {HEADER_CLIENT: client, HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce,
            HEADER_SIGNATURE: sign(secret, method, target, timestamp, nonce, body)}


@dataclass(frozen=True)
class Verified:
    client: str
    nonce: str
    timestamp: int


def verify(clients: Mapping[str, bytes], headers: Mapping[str, str], method: str, target: str, body: bytes,
           now: datetime, skew_seconds: float) -> Verified:
    """Check the four headers; return who signed, or raise ``AuthError``. No database access."""
    client = headers.get(HEADER_CLIENT.lower()) or ""
    timestamp = headers.get(HEADER_TIMESTAMP.lower()) or ""
    nonce = headers.get(HEADER_NONCE.lower()) or ""
    signature = headers.get(HEADER_SIGNATURE.lower()) or ""
    missing = [h for h, v in ((HEADER_CLIENT, client), (HEADER_TIMESTAMP, timestamp), (HEADER_NONCE, nonce),
                              (HEADER_SIGNATURE, signature)) if not v]
    if missing:
        raise AuthError("missing_credentials", f"Missing header(s): {', '.join(missing)}.")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise AuthError("bad_timestamp", f"{HEADER_TIMESTAMP} must be Unix time in whole seconds.")
    if abs(int(timestamp) - now.timestamp()) > skew_seconds:
        raise AuthError("stale_timestamp", f"{HEADER_TIMESTAMP} is more than {int(skew_seconds)} s away "
                                           "from the server's clock.")
    if not NONCE.match(nonce):
        raise AuthError("bad_nonce", f"{HEADER_NONCE} must be 16 to 128 characters of A-Z, a-z, 0-9, '_' or '-'.")
    secret = clients.get(client)
    expected = sign(secret or _DUMMY_SECRET, method, target, timestamp, nonce, body)
    given = signature.lower() if SIGNATURE.match(signature) else ""
    if not hmac.compare_digest(expected.encode(), given.encode()) or secret is None:
        raise AuthError("bad_signature", "The signature does not match (or the client is unknown).")
    return Verified(client, nonce, int(timestamp))


# --- rate limit ----------------------------------------------------------------------------------

@dataclass
class TokenBuckets:
    """One token bucket per key, in this process's memory: ``rate`` tokens/s, bursts of ``burst``.

    Keys are API clients (the rate limit), or client addresses (the password page's failed
    attempts): past ``max_entries`` keys, those whose bucket is full again are forgotten.
    With several web processes each has its own buckets (the limit is per process).
    ``rate=None`` disables the limit.
    """

    rate: float | None = 50.0
    burst: float = 100.0
    monotonic: Callable[[], float] = time.monotonic
    max_entries: int = 10_000
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _level(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def peek(self, key: str) -> float:
        """0 if one more would be allowed now, else the seconds to wait; takes nothing."""
        if self.rate is None:
            return 0.0
        with self._lock:
            tokens = self._level(key, self.monotonic())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, key: str) -> float:
        """0 if the request may go on (a token is taken), else the seconds to wait before one more is allowed."""
        if self.rate is None:
            return 0.0
        now = self.monotonic()
        with self._lock:
            tokens = self._level(key, now)
            self._buckets[key] = (tokens - 1 if tokens >= 1 else tokens, now)
            if len(self._buckets) > self.max_entries:
                self._buckets = {k: v for k, v in self._buckets.items() if self._level(k, now) < self.burst}
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate
