"""The correspondents' desk with 500 pending requests: server time to render ``GET /desk``.

One correspondent has ``pending`` requests routed to them (deadlines spread over the next days,
some today), on the bench's database beside everything else it holds. The web app runs
in-process behind Starlette's test client, with a session cookie signed as the digest's link
would start it; ``GET /desk`` is rendered ``renders`` times after two warm-ups (each checked: 200
and every request on the page): wall time, and the process's CPU time (which a machine busy with
other work inflates less). The target is under 200 ms (issue #15): one read of the
requests, no query per row, one template.

Its floor, measured in the same run on the same database: what any server of this page must
do at the least — the desk's own statements (captured from one render: the session check and
the requests' reads) executed again through the bare driver with their parameters, rows
fetched, plus the same template (``desk.html``) rendered with the same context (captured from
the same render). Left out, and so above the floor: HTTP (Starlette, FastAPI, the test
client), the cookie's signature, the hop to the thread pool, SQLAlchemy's compilation and
row handling, turning rows into the page's items.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from typing import Any

from bench.data import NOW, DataSet
from bench.sql import REQUEST_COLUMNS, bulk_insert

SIGNING_KEY = "bench-desk-signing-key-" + "0123456789abcdef" * 2


def _pending(data: DataSet, decider: dict, count: int):
    roles = data.roles
    for k in range(count):
        account = data.accounts[k % (len(data.accounts) - 1)]
        submitted = NOW - timedelta(days=9, minutes=k)
        yield {"kind": "habilitation", "submitted_at": submitted, "email": account["email"],
               "role_key": roles[k % len(roles)].key, "account_id": account["id"], "attempts": 0,
               "updated_at": submitted, "organisation_code": decider["primary_organisation"], "status": "pending",
               "deadline_at": NOW + timedelta(minutes=30 + 7 * k), "first_routed_at": submitted}


def measure_desk(db_url: str, data: DataSet, pending: int = 500, renders: int = 20) -> dict[str, Any]:
    from sqlalchemy import insert, select
    from starlette.testclient import TestClient

    from syncd.runtime import Runtime
    from syncd.settings import Settings
    from syncd.store.db import make_engine
    from syncd.store.tables import deciders, request_deciders, requests
    from syncd.web import create_app, desk_auth

    decider = data.accounts[-1]     # not accounts[0]: the tacit sweep's load routes its requests to that one
    settings = Settings(database={"url": db_url}, web={"base_url": "http://bench.invalid", "signing_key": SIGNING_KEY})
    rt = Runtime(settings, data.mappings, make_engine(db_url), clock=lambda: NOW, worker_id="bench-desk")
    try:
        with rt.engine.begin() as conn:
            first = conn.execute(select(requests.c.id).order_by(requests.c.id.desc()).limit(1)).scalar() or 0
        bulk_insert(rt.engine, "requests", REQUEST_COLUMNS, _pending(data, decider, pending))
        with rt.engine.begin() as conn:
            ids = conn.execute(select(requests.c.id).where(requests.c.id > first)).scalars().all()
            conn.execute(insert(request_deciders), [{"request_id": i, "account_id": decider["id"]} for i in ids])
            conn.execute(insert(deciders).values(account_id=decider["id"], scope="correspondent",
                                                 organisation_code=decider["primary_organisation"], created_at=NOW))
        session = desk_auth.Session(decider["id"], NOW - timedelta(minutes=1), NOW + timedelta(days=7), "bench", NOW)
        app = create_app(rt, clients={}, rate_per_second=None)
        seconds, cpu = [], []
        with TestClient(app, base_url="http://bench.invalid") as client:
            client.cookies.set(desk_auth.SESSION_COOKIE, desk_auth.session_cookie(SIGNING_KEY, session))
            for n in range(renders + 2):
                t, c = time.perf_counter(), time.process_time()
                page = client.get("/desk")
                elapsed, used = time.perf_counter() - t, time.process_time() - c
                if page.status_code != 200 or f"votre décision ({pending})" not in page.text:
                    raise RuntimeError(f"the desk did not show the {pending} requests: {page.status_code}")
                if n >= 2:
                    seconds.append(elapsed)
                    cpu.append(used)
            statements, rendered = _captured(rt.engine, lambda: client.get("/desk"))
        floor = _floor(rt.engine, statements, rendered, renders)
    finally:
        rt.close()
    median = 1000 * statistics.median(seconds)
    return {"pending": pending, "renders": renders, "median_ms": median,
            "max_ms": 1000 * max(seconds), "cpu_ms": 1000 * statistics.median(cpu), "bytes": len(page.content),
            "statements": len(statements), **floor, "x_floor": median / floor["floor_ms"]}


def _captured(engine: Any, render_once: Any) -> tuple[list[tuple[str, Any]], tuple[str, dict]]:
    """The statements one render of the desk sends to the driver (BEGIN, COMMIT and ROLLBACK
    left out), and the template and context it renders."""
    from sqlalchemy import event

    from syncd.web import desk_page

    statements: list[tuple[str, Any]] = []
    rendered: list[tuple[str, dict]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            statements.append((statement, parameters))

    def render(template: str, status: int = 200, **context: Any) -> Any:
        rendered.append((template, context))
        return original(template, status, **context)

    original = desk_page.render
    desk_page.render = render
    event.listen(engine, "before_cursor_execute", record)
    try:
        render_once()
    finally:
        event.remove(engine, "before_cursor_execute", record)
        desk_page.render = original
    if len(rendered) != 1:
        raise RuntimeError(f"the desk rendered {len(rendered)} templates, expected one")
    return statements, rendered[0]


def _floor(engine: Any, statements: list[tuple[str, Any]], rendered: tuple[str, dict], renders: int) -> dict:
    """Median ms of the desk's statements through the bare driver (in one transaction, rows
    fetched), of its template rendered with its context, and of the two one after the other,
    after two warm-ups."""
    from syncd.web import pages

    template, context = rendered
    context = dict(context)
    context.setdefault("r", None)        # as pages.render does
    conn = engine.raw_connection()
    sql, html, total = [], [], []
    try:
        for n in range(renders + 2):
            t = time.perf_counter()
            cur = conn.cursor()
            for statement, parameters in statements:
                cur.execute(statement, parameters)
                if cur.description is not None:
                    cur.fetchall()
            cur.close()
            conn.rollback()
            between = time.perf_counter()
            pages.ENV.get_template(template).render(**context)
            done = time.perf_counter()
            if n >= 2:
                sql.append(between - t)
                html.append(done - between)
                total.append(done - t)
    finally:
        conn.close()
    return {"floor_sql_ms": 1000 * statistics.median(sql), "floor_render_ms": 1000 * statistics.median(html),
            "floor_ms": 1000 * statistics.median(total)}
