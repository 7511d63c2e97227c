"""The correspondents' desk with 500 pending requests: server time to render ``GET /desk``.

One correspondent has ``pending`` requests routed to them (deadlines spread over the next days,
some today), on the bench's database beside everything else it holds. The web app runs
in-process behind Starlette's test client, with a session cookie signed as the digest's link
would start it; ``GET /desk`` is rendered ``renders`` times after two warm-ups (each checked: 200
and every request on the page): wall time, and the process's CPU time (which a machine busy with
other work inflates less). The target is under 200 ms (issue #15): one read of the
requests, no query per row, one template.
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

    from syncd.jobs.runtime import Runtime
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
    finally:
        rt.close()
    return {"pending": pending, "renders": renders, "median_ms": 1000 * statistics.median(seconds),
            "max_ms": 1000 * max(seconds), "cpu_ms": 1000 * statistics.median(cpu), "bytes": len(page.content)}
