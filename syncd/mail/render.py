"""Render an outbox row into a subject, a text body and an HTML alternative.

Templates live in ``templates/<language>/``: ``<name>.subject.txt`` and ``<name>.txt`` for each
mail, optionally ``<name>.html``; without one, the HTML alternative is the text body, escaped, in
paragraphs, inside ``_layout.html``, with the trusted links (context keys ending in ``_url``)
made clickable. French is the default; an unsupported language falls back to it.

Rules, so a mistake is caught by a test rather than seen by a user:

- ``StrictUndefined``: a variable missing from the context is an error, and so is a ``None``
  printed as it is (templates test optional values with ``{% if %}`` before printing them);
- control characters are stripped from every printed value; values of keys other than
  ``comment`` and ``reason`` are single-line (line breaks become spaces);
- the subject is one line: every run of white space, line breaks included, becomes one space,
  so no value can add a header; it is cut at 200 characters;
- the HTML is autoescaped.

Dates (``|datetime``, ``|date``) accept an aware ``datetime`` or an ISO 8601 string (which is
how they come back from the outbox's JSON column); naive values are taken as UTC. They are shown
``dd/mm/YYYY HH:MM`` in Europe/Paris time.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup, escape

from syncd.errors import PermanentError

TEMPLATE_DIR = Path(__file__).parent / "templates"
LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
PARIS = ZoneInfo("Europe/Paris")
MAX_SUBJECT_CHARS = 200

# The names follow what ``syncd.jobs.notify`` puts in every request mail's context.
_REQUEST = frozenset({"requester_name", "kind", "submitted_at", "role_label", "application_label"})
_DECIDER = _REQUEST | {"decider_name", "requester_email", "organisation_name", "deadline_at", "decide_url"}
_ACCOUNT_HOLDER = frozenset({"requester_name", "reset_url", "expires_at"})
_HABILITATION = frozenset({"requester_name", "application_label", "role_label"})

# Context keys each template requires; enqueue() checks them so a missing key fails in the
# caller's transaction, not days later in delivery. ``requester_name`` is the person the request
# or account is about (the addressee, except in the two mails to deciders, which greet
# ``decider_name``). ``role_label`` and ``application_label`` may be empty (account requests).
TEMPLATES: Mapping[str, frozenset[str]] = {
    "request_to_decide": _DECIDER,
    "decision_reminder": _DECIDER | {"days_before"},
    "request_escalated": _DECIDER - {"deadline_at"},    # past its deadline: it has none any more
    "request_accepted": _REQUEST,
    "request_accepted_tacitly": _REQUEST,
    "request_refused": _REQUEST | {"comment"},          # comment may be None or empty
    "request_rejected": _REQUEST | {"reason"},
    "account_created_set_password": _ACCOUNT_HOLDER,
    "password_reset": _ACCOUNT_HOLDER,
    "password_changed": frozenset({"requester_name", "email", "changed_at"}),
    "habilitation_revoked": _HABILITATION | {"revoked_at"},
    "habilitation_expiring": _HABILITATION | {"expires_at"},
    "habilitation_expired": _HABILITATION | {"expired_at"},
    # withdrawn: the labels of the rights the move took away (may be empty)
    "mobility_accepted": frozenset({"requester_name", "submitted_at", "target_organisation_name", "withdrawn"}),
    # a reviewer, when a review campaign opens (syncd.jobs.reviews); unanswered: keep / withdraw
    "review_opened": frozenset({"reviewer_name", "organisation_name", "rights", "closes_at", "unanswered",
                                "review_url"}),
    # the daily digest (syncd.jobs.digest): items are the pending requests listed, count all of
    # them, more those not listed; waiting_count the requests nobody can decide (central administrators)
    "decider_digest": frozenset({"decider_name", "count", "items", "more", "waiting_count", "desk_url",
                                 "expires_at"}),
}

MULTILINE_KEYS = frozenset({"comment", "reason"})


class MailTemplateError(PermanentError):
    """A mail cannot be rendered: unknown template, missing or ``None`` variable, bad date."""


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str | None = None


# ---------------------------------------------------------------------------------------------
# Cleaning values


_LINE_BREAKS = re.compile(r"\r\n|[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def _strip_controls(text: str) -> str:
    text = _LINE_BREAKS.sub("\n", text)
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")


def _one_line(text: str) -> str:
    return " ".join(_strip_controls(text).split())


def _prepare(context: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _one_line(value) if isinstance(value, str) and key not in MULTILINE_KEYS else value
            for key, value in context.items()}


def _finalize(value: Any) -> Any:
    if value is None:
        raise MailTemplateError("a template printed a None value: guard optional values with {% if %}")
    if isinstance(value, str) and not isinstance(value, Markup):
        return _strip_controls(value)
    return value


# ---------------------------------------------------------------------------------------------
# Filters


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise MailTemplateError(f"not an ISO 8601 date and time: {value!r}") from None
    else:
        raise MailTemplateError(f"expected a date and time, got {type(value).__name__}: {value!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(PARIS)


def format_datetime(value: Any) -> str:
    """``dd/mm/YYYY HH:MM`` in Europe/Paris."""
    return _to_datetime(value).strftime("%d/%m/%Y %H:%M")


def format_date(value: Any) -> str:
    """``dd/mm/YYYY``; a datetime is first converted to Europe/Paris."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, str) and len(value) == 10:
        with suppress(ValueError):
            return date.fromisoformat(value).strftime("%d/%m/%Y")
    return _to_datetime(value).strftime("%d/%m/%Y")


def _fail(message: str) -> None:
    raise MailTemplateError(message)


# ---------------------------------------------------------------------------------------------
# Environments (one per language: templates import "_macros.txt" from their own folder)

_environments: dict[str, jinja2.Environment] = {}


def _environment(language: str) -> jinja2.Environment:
    env = _environments.get(language)
    if env is None:
        env = jinja2.Environment(
            # The language's folder first, then what all languages share (the HTML layout).
            loader=jinja2.FileSystemLoader([TEMPLATE_DIR / language, TEMPLATE_DIR]),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
            finalize=_finalize,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        env.filters["datetime"] = format_datetime
        env.filters["date"] = format_date
        env.globals["fail"] = _fail
        env.globals["language"] = language
        _environments[language] = env
    return env


def supported_language(language: str | None) -> str:
    """The language a mail will be written in: ``en-GB`` → ``en``; unsupported → French."""
    primary = (language or "").strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in LANGUAGES else DEFAULT_LANGUAGE


def _trusted_links(context: Mapping[str, Any]) -> list[str]:
    links = {v for k, v in context.items() if k.endswith("_url") and isinstance(v, str) and re.match(r"https?://\S+$", v)}
    return sorted(links, key=len, reverse=True)


def _text_to_html(text: str, links: list[str]) -> list[Markup]:
    """Escape ``text``, make the trusted links clickable, one ``<p>`` per paragraph."""
    escaped = str(escape(text))
    if links:
        pattern = re.compile("|".join(re.escape(str(escape(u))) for u in links))
        escaped = pattern.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)
    paragraphs = [p.strip("\n") for p in re.split(r"\n[ \t]*\n", escaped)]
    return [Markup(p.replace("\n", "<br>\n")) for p in paragraphs if p.strip()]


def _html_alternative(env: jinja2.Environment, subject: str, text: str, links: list[str]) -> str:
    body, delimiter, footer = text.rpartition("\n-- \n")  # the signature delimiter of _footer.txt
    if not delimiter:
        body, footer = text, ""
    return env.get_template("_layout.html").render(subject=subject, paragraphs=_text_to_html(body, links),
                                                   footer=_text_to_html(footer, links))


def render(template: str, language: str, context: Mapping[str, Any]) -> RenderedMail:
    """Render ``template`` in ``language`` (falling back to French) with ``context``.

    Raises ``MailTemplateError`` (a ``PermanentError``) when the template is unknown or the
    context does not fit it.
    """
    if template not in TEMPLATES:
        raise MailTemplateError(f"unknown mail template {template!r}")
    env = _environment(supported_language(language))
    values = _prepare(context)
    try:
        subject = env.get_template(f"{template}.subject.txt").render(values)
        text = env.get_template(f"{template}.txt").render(values)
        try:
            html_template = env.get_template(f"{template}.html")
        except jinja2.TemplateNotFound:
            html = _html_alternative(env, _one_line(subject), text, _trusted_links(values))
        else:
            html = html_template.render(values)
    except MailTemplateError:
        raise
    except jinja2.UndefinedError as exc:
        raise MailTemplateError(f"{template}: {exc}") from exc
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError) as exc:
        raise MailTemplateError(f"{template}: {type(exc).__name__}: {exc}") from exc
    return RenderedMail(subject=_subject_line(subject), text=text, html=html)


def _subject_line(subject: str) -> str:
    subject = _one_line(subject)
    if len(subject) > MAX_SUBJECT_CHARS:
        subject = subject[: MAX_SUBJECT_CHARS - 1].rstrip() + "…"
    return subject
