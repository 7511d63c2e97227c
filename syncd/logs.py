"""structlog set-up: JSON lines when not on a terminal, readable lines on one.

Event names are stable snake_case (``request_applied``, ``ldap_unavailable``); context is bound
(``request_id``, ``dn``, ``attempt``). Secrets never go into a log line: keys that look like
secrets are masked by ``_redact`` as a last line of defence.
"""

from __future__ import annotations

import functools
import logging
import sys

import structlog

_SECRET_MARKERS = ("password", "token", "secret", "signing_key", "authorization")


def _redact(_logger, _name, event_dict):
    for key in [k for k in event_dict if _is_secret(k)]:
        event_dict[key] = "***"
    return event_dict


@functools.lru_cache(maxsize=1024)
def _is_secret(key: str) -> bool:
    # Log lines reuse a few keys: each is looked at once, not on every line.
    return any(m in key.lower() for m in _SECRET_MARKERS)


def configure_logging(level: str = "info", fmt: str = "auto", stream=None) -> None:
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
