"""What the pages people reach from the links in their mails share (French, no JavaScript).

Two pages: the decision page, for correspondents (``syncd.web.decision_page``), and the page to
choose a new password, for everyone (``syncd.web.password_page``). Both render their Jinja2
templates (``templates/``) here: ``render`` a template, ``message`` a page that only says
something - also the web app's French error pages for these paths (``syncd.web.app``). Every such
page carries ``HTML_HEADERS``: a Content-Security-Policy that allows the one inline style sheet
(``CSS``, by its hash) and nothing else, and headers that keep a link's token from leaking and the
page from being cached or indexed.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from fastapi.responses import HTMLResponse

PARIS = ZoneInfo("Europe/Paris")
TEMPLATES = Path(__file__).parent / "templates"

CSS = """
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;line-height:1.5}
body{margin:0;color:#161616;background:#f6f6f6}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem}
header{background:#000091;color:#fff;padding:.75rem 1.5rem}.brand{margin:0;font-weight:700}
main{max-width:46rem;margin:1.5rem auto;background:#fff;padding:1.5rem 2rem;border-radius:4px}
footer{max-width:46rem;margin:0 auto 2rem;color:#3a3a3a;font-size:.875rem;padding:0 2rem}
h1{font-size:1.6rem;margin-top:0}h2{font-size:1.2rem}
dl.request{display:grid;gap:.25rem;margin:1rem 0 1.5rem}dl.request div{display:grid;grid-template-columns:13rem 1fr}
dt{font-weight:700}dd{margin:0}
section{border-top:1px solid #ddd;padding-top:.5rem;margin-bottom:1rem}
label{display:block;font-weight:700}.hint{margin:.25rem 0;color:#3a3a3a;font-size:.9rem}
textarea,input[type=password]{display:block;width:100%;box-sizing:border-box;font:inherit;padding:.5rem;border:1px solid #3a3a3a;margin:.25rem 0 1rem}
textarea[aria-invalid=true],input[aria-invalid=true]{border:2px solid #ce0500}
button{font:inherit;font-weight:700;padding:.6rem 1.2rem;border:0;border-radius:4px;cursor:pointer;color:#fff}
button.accept{background:#18753c}button.refuse{background:#ce0500}button.primary{background:#000091}
button:focus-visible,textarea:focus-visible,input:focus-visible,a:focus-visible{outline:3px solid #0a76f6;outline-offset:2px}
.error,.field-error{color:#ce0500}.error{border-left:4px solid #ce0500;padding:.25rem 1rem;margin-bottom:1rem}
.success{border-left:4px solid #18753c;padding:.25rem 1rem}.info{border-left:4px solid #000091;padding:.25rem 1rem}
main.wide{max-width:76rem}nav.tabs{display:flex;gap:1rem;align-items:center;flex-wrap:wrap;border-bottom:1px solid #ddd;margin-bottom:1rem}
nav.tabs a{padding:.5rem 0;color:#000091}nav.tabs a[aria-current=page]{font-weight:700;border-bottom:3px solid #000091}
nav.tabs form{margin-left:auto}button.link{background:none;color:#000091;text-decoration:underline;padding:.25rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}th,td{text-align:left;padding:.4rem;border-bottom:1px solid #ddd;vertical-align:top}
tr.today{background:#fff4d6}.today-label{font-weight:700;color:#8a4b00}
fieldset{border:1px solid #ddd;margin:0 0 1rem;padding:.5rem 1rem}.filters{display:flex;gap:1rem;flex-wrap:wrap;align-items:end}
select{font:inherit;padding:.3rem}.actions{display:flex;gap:1rem;flex-wrap:wrap}
input[type=checkbox]{width:1.2rem;height:1.2rem}
@media (max-width:40rem){dl.request div{grid-template-columns:1fr}main{padding:1rem}}
""".strip()
CSS_HASH = "sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CSP = (f"default-src 'none'; style-src '{CSS_HASH}'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
HTML_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",       # the link's token must not leak to another site
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}


def fr_datetime(value: datetime | None) -> str:
    return value.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M") if value else "—"


def make_environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fr_datetime"] = fr_datetime
    env.globals["css"] = jinja2.utils.markupsafe.Markup(CSS)
    return env


ENV = make_environment()


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("r", None)
    html = ENV.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=HTML_HEADERS)


def message(status: int, title: str, *paragraphs: str, r=None, kind: str = "info", alert: bool = False,
            retry_after: int | None = None):
    """A page that only says something; ``retry_after``: seconds, sent as ``Retry-After``."""
    response = render("message.html", status, title=title, paragraphs=paragraphs, r=r, kind=kind, alert=alert)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response
