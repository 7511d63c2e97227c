"""Benchmark: decisions through the web API, and how soon a decision is group membership in LDAP.

    .venv/bin/python bench/web_decisions.py                  # SQLite and PostgreSQL, then LDAP
    .venv/bin/python bench/web_decisions.py --engines sqlite --decisions 2000 --concurrency 8,32

1. **Sustained decisions/s.** ``syncd.web`` served by uvicorn (its own process or processes) on a
   loopback port, over a database seeded with N pending habilitation requests routed to one
   correspondent. A closed-loop client (asyncio + httpx, ``C`` requests in flight, in another
   process) signs each call (HMAC) and accepts one request per call; the latency of each call is
   measured at the client. The first 5 % are warm-up and left out. Rate limit off. The server
   processes' CPU time (user + system, from ``/proc``) is shown per decision.
2. **With the daemon.** The same load while the daemon (in a thread, with a real slapd,
   ``DevSlapd``, and a mail sink) applies every decision to LDAP and mails the requester, all on
   this machine; then how long LDAP takes to catch up once the last decision is answered.
3. **Decision -> LDAP.** The same set-up (the daemon is woken by the decision's commit, its
   probe polling every ``jobs.wake_poll_seconds`` as the fallback): a decision is posted, then
   the group's ``member`` is compared every 5 ms until it holds the requester. One decision at
   a time, then bursts of 50 posted back to back, while a thread reads the groups' members every
   5 ms: each decision counts from its own answer to its member showing.

PostgreSQL: ``postgresql+psycopg://postgres@127.0.0.1:5432/test`` (override with
``SYNCD_BENCH_POSTGRES_URL``); a throwaway database is created and dropped. Every request goes to
loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CLIENT, SECRET = "bench", "bench-secret-" + "0123456789abcdef" * 2
SIGNING_KEY = "bench-signing-key-" + "0123456789abcdef" * 2
ORG = "CARSAT-RA"
ROLES = ("accords-locaux-acces-organisme", "egap-guide-paie-lecteur", "opim-organisme-local")
CORRESPONDENT = "c.martin@lassuranceretraite.fr"
PG_ADMIN = os.environ.get("SYNCD_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
T0 = datetime.now(timezone.utc).replace(microsecond=0)
MAX_SECONDS = 120          # no phase runs longer than this


# --- the app the server processes run (uvicorn --factory) --------------------------------------------

def make_app():
    """Built in each uvicorn worker from the environment the bench sets."""
    from syncd.runtime import Runtime
    from syncd.logs import configure_logging
    from syncd.mappings import load_mappings
    from syncd.settings import Settings
    from syncd.store.db import make_engine
    from syncd.web import create_app
    url = os.environ["BENCH_DB_URL"]
    settings = Settings(database={"url": url, "pool_size": int(os.environ["BENCH_POOL_SIZE"])},
                        web={"base_url": os.environ["BENCH_BASE_URL"], "signing_key": SIGNING_KEY,
                             **({"database_concurrency": int(os.environ["BENCH_DB_CONCURRENCY"])}
                                if os.environ.get("BENCH_DB_CONCURRENCY") else {})})
    # As `syncd web` does: JSON lines at the configured level (one `request_decided` line a call at
    # info, the default), to a file here, where the CLI writes to stderr.
    configure_logging(settings.log.level, "json", stream=open(os.environ["BENCH_LOG"], "a", buffering=1))
    rt = Runtime(settings, load_mappings(REPO / "mappings"), make_engine(url, pool_size=settings.database.pool_size),
                 worker_id=f"bench-web-{os.getpid()}")
    return create_app(rt, clients={CLIENT: SECRET.encode()}, rate_per_second=None, own_runtime=True)


class Server:
    """uvicorn serving ``make_app`` in its own process(es), on a free loopback port."""

    def __init__(self, db_url: str, workers: int, pool_size: int = 5, db_concurrency: int | None = None):
        from syncd.devslapd import free_port
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix="syncd-bench-web-", suffix=".log")[1])
        env = dict(os.environ, BENCH_DB_URL=db_url, BENCH_BASE_URL=self.base, PYTHONPATH=str(REPO),
                   BENCH_LOG=str(self.log), BENCH_POOL_SIZE=str(pool_size),
                   BENCH_DB_CONCURRENCY=str(db_concurrency or ""), SYNCD_LOG__LEVEL="info")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "bench.web_decisions:make_app", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
            cwd=str(REPO), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def __enter__(self) -> "Server":
        import httpx
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("uvicorn exited: " + (self.proc.stderr.read().decode() if self.proc.stderr else ""))
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("uvicorn did not start in 30 s")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server's processes have used so far; NaN off Linux.

        Less sensitive than decisions/s to other work on a shared machine."""
        def own_and_children(pid: int) -> float:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                used = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except (OSError, ValueError, IndexError):
                return float("nan")
            return used + sum(own_and_children(int(c)) for c in children)
        return own_and_children(self.proc.pid)

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.unlink(missing_ok=True)


# --- databases -----------------------------------------------------------------------------------

class Database:
    def __init__(self, engine_name: str, folder: Path):
        from syncd.store.migrate import upgrade
        self.engine_name = engine_name
        self._admin = None
        if engine_name == "sqlite":
            self.url = f"sqlite:///{folder / 'bench.db'}"
        else:
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url
            from sqlalchemy.pool import NullPool
            self._admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                                        connect_args={"connect_timeout": 3})
            self.name = f"syncd_bench_{secrets.token_hex(4)}"
            with self._admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
            self.url = make_url(PG_ADMIN).set(database=self.name).render_as_string(hide_password=False)
        upgrade(self.url)

    def drop(self) -> None:
        if self._admin is not None:
            from sqlalchemy import text
            with self._admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self._admin.dispose()


def seed(url: str, n_requests: int, n_requesters: int = 500) -> tuple[list[int], str]:
    """Requesters and one correspondent of ORG, and ``n_requests`` pending requests routed to them."""
    from sqlalchemy import insert, select

    from syncd.mappings import load_mappings
    from syncd.store import repo
    from syncd.store.db import make_engine, transaction
    from syncd.store.tables import accounts, deciders, request_deciders, requests
    engine = make_engine(url)
    m = load_mappings(REPO / "mappings")
    correspondent = repo.new_account_id()
    with transaction(engine) as conn:
        repo.upsert_organisations(conn, m.organisations, T0)
        rows = [dict(id=repo.new_account_id(), email=f"agent{i:05d}@lassuranceretraite.fr", given_name="Agent",
                     family_name=f"N{i:05d}", primary_organisation=ORG, internal=True, status="active",
                     created_at=T0, updated_at=T0) for i in range(n_requesters)]
        rows.append(dict(id=correspondent, email=CORRESPONDENT, given_name="Claire", family_name="Martin",
                         primary_organisation=ORG, internal=True, status="active", created_at=T0, updated_at=T0))
        conn.execute(insert(accounts), rows)
        conn.execute(insert(deciders).values(account_id=correspondent, scope="correspondent", organisation_code=ORG,
                                             created_at=T0))
        requesters = [r["id"] for r in rows[:-1]]
        conn.execute(insert(requests), [
            dict(kind="habilitation", submitted_at=T0, email=f"agent{i % n_requesters:05d}@lassuranceretraite.fr",
                 account_id=requesters[i % n_requesters], organisation_code=ORG,
                 role_key=ROLES[(i // n_requesters) % len(ROLES)], status="pending",
                 deadline_at=T0 + timedelta(days=10)) for i in range(n_requests)])
        ids = [r[0] for r in conn.execute(select(requests.c.id).where(requests.c.status == "pending")
                                          .order_by(requests.c.id))]
        conn.execute(insert(request_deciders), [{"request_id": i, "account_id": correspondent} for i in ids])
    engine.dispose()
    return ids, correspondent


# --- the load generator (its own process) ------------------------------------------------------------

def _load(base: str, ids: list[int], concurrency: int, queue) -> None:
    queue.put(asyncio.run(_drive(base, ids, concurrency)))


def _requests(base: str, ids: list[int]) -> list[bytes]:
    """Every call signed in advance (a nonce each), so the client spends almost nothing per call."""
    from urllib.parse import urlsplit

    from syncd.web.auth import signed_headers
    host = urlsplit(base).netloc
    body = json.dumps({"verdict": "accept", "decider": CORRESPONDENT}).encode()
    out = []
    for request_id in ids:
        target = f"/api/v1/requests/{request_id}/decision"
        headers = signed_headers(CLIENT, SECRET, "POST", target, body)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        out.append(f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n{head}\r\n".encode() + body)
    return out


async def _drive(base: str, ids: list[int], concurrency: int) -> dict:
    """A closed loop over keep-alive HTTP/1.1 connections, written with asyncio streams: httpx
    costs the client ~1 ms a call, which on two cores would be measured instead of the server."""
    from urllib.parse import urlsplit
    parts = urlsplit(base)
    todo = iter(_requests(base, ids))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = time.monotonic() + MAX_SECONDS

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for raw in todo:
                if time.monotonic() > stop_at:
                    return
                started = time.perf_counter()
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"latencies": latencies, "statuses": statuses, "elapsed": time.perf_counter() - began}


def measure_throughput(engine_name: str, workers: int, concurrency: int, n: int, pool_size: int,
                       db_concurrency: int | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as folder:
        db = Database(engine_name, Path(folder))
        try:
            ids, _ = seed(db.url, n)
            with Server(db.url, workers, pool_size, db_concurrency) as server:
                ctx = multiprocessing.get_context("spawn")
                queue = ctx.Queue()
                proc = ctx.Process(target=_load, args=(server.base, ids, concurrency, queue))
                cpu_before = server.cpu_seconds()
                proc.start()
                result = queue.get(timeout=MAX_SECONDS + 60)
                cpu = server.cpu_seconds() - cpu_before
                proc.join(timeout=30)
        finally:
            db.drop()
    lat = result["latencies"]
    return {"engine": engine_name, "workers": workers, "concurrency": concurrency, "decisions": len(lat),
            **steady_state(lat, concurrency), "overall_rate": len(lat) / result["elapsed"],
            "ok": result["statuses"].get(200, 0), "statuses": result["statuses"],
            "cpu_ms": cpu * 1000 / len(lat) if lat else float("nan")}


def steady_state(latencies: list[float], concurrency: int) -> dict:
    """Decisions/s, p50 and p99 (ms) once the first 5 % of the calls (warm-up) are left out."""
    warm = max(1, len(latencies) // 20)
    steady = sorted(latencies[warm:])
    # decisions/s over the steady part: its calls took this much wall time, C at a time
    steady_time = sum(steady) / concurrency
    return {"rate": len(steady) / steady_time if steady_time else 0.0,
            "p50": percentile(steady, 50) * 1000, "p99": percentile(steady, 99) * 1000}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


# --- decision -> LDAP ---------------------------------------------------------------------------------

class DaemonWorld:
    """A private slapd, a database, a mail sink, ``n`` pending requests routed to the
    correspondent, and the daemon running in a thread (as `syncd run` would), until ``close``.

    Requester ``i`` asks for role ``ROLES[i // n_requesters]``: every request is for a distinct
    (person, role), so each acceptance is a new member of a group.
    """

    def __init__(self, engine_name: str, n: int):
        from sqlalchemy import insert

        from syncd import operator
        from syncd.daemon import Daemon
        from syncd.devslapd import DevSlapd
        from syncd.runtime import Runtime
        from syncd.mappings import load_mappings
        from syncd.settings import Settings
        from syncd.store.db import make_engine, transaction
        from syncd.store.tables import request_deciders, requests

        self._folder = tempfile.TemporaryDirectory(prefix="syncd-bench-ldap-")
        folder = Path(self._folder.name)
        self.slapd = DevSlapd(folder / "slapd").start()
        self.db = Database(engine_name, folder)
        self.sink = _MailSink()
        settings = Settings(database={"url": self.db.url}, ldap=self.slapd.ldap_settings().model_dump(),
                            smtp={"host": "127.0.0.1", "port": self.sink.port},
                            web={"base_url": "http://127.0.0.1", "signing_key": SIGNING_KEY})
        self.rt = Runtime(settings, load_mappings(REPO / "mappings"), make_engine(self.db.url),
                          worker_id="bench-daemon")
        self.daemon = Daemon(self.rt)
        self.daemon.run_job("provision")
        n_requesters = -(-n // len(ROLES))
        people = [operator.add_account(self.rt, f"agent{i:05d}@lassuranceretraite.fr", "Agent", f"N{i:05d}", ORG)
                  for i in range(n_requesters)]
        correspondent = operator.add_account(self.rt, CORRESPONDENT, "Claire", "Martin", ORG)
        operator.add_decider(self.rt, CORRESPONDENT, ORG)
        #: (request id, requester's account id, role key), in the order decisions are posted
        self.requests: list[tuple[int, str, str]] = []
        with transaction(self.rt.engine) as conn:
            for i in range(n):
                account_id, role_key = people[i % n_requesters], ROLES[i // n_requesters]
                rid = conn.execute(insert(requests).values(
                    kind="habilitation", submitted_at=T0, email="x@lassuranceretraite.fr", account_id=account_id,
                    organisation_code=ORG, role_key=role_key, status="pending",
                    deadline_at=T0 + timedelta(days=10))).inserted_primary_key[0]
                self.requests.append((rid, account_id, role_key))
            conn.execute(insert(request_deciders), [{"request_id": rid, "account_id": correspondent}
                                                     for rid, _, _ in self.requests])
        self.daemon.run_once()
        self._thread = threading.Thread(target=self.daemon.run_forever, name="daemon", daemon=True)
        self._thread.start()

    def close(self) -> None:
        try:
            self.daemon.stop()
            self._thread.join(timeout=30)
            self.rt.close()
        finally:
            self.sink.stop()
            self.db.drop()
            self.slapd.stop()
            self._folder.cleanup()


def measure_ldap(engine_name: str, samples: int, bursts: int, burst_size: int) -> dict:
    import httpx

    from syncd.directory import names
    from syncd.directory.connection import open_connection, safe_close
    from syncd.web.auth import signed_headers

    world = DaemonWorld(engine_name, samples + bursts * burst_size)
    try:
        rt = world.rt
        ldap = open_connection(world.slapd.ldap_settings())

        def visible(account_id: str, role_key: str) -> bool:
            group = names.group_dn(rt.mappings.directory, rt.mappings.role(role_key).group)
            person = names.person_dn(rt.mappings.directory, account_id)
            _, result, _, _ = ldap.compare(group, "member", person)
            return result["result"] == 6   # compareTrue

        body = json.dumps({"verdict": "accept", "decider": CORRESPONDENT}).encode()
        single, burst = [], []
        with Server(world.db.url, 1) as server, httpx.Client(base_url=server.base, timeout=30) as client:
            def decide(rid: int) -> float:
                target = f"/api/v1/requests/{rid}/decision"
                r = client.post(target, content=body, headers=signed_headers(CLIENT, SECRET, "POST", target, body)
                                | {"Content-Type": "application/json"})
                assert r.status_code == 200, r.text
                return time.perf_counter()

            def wait_for(account_id: str, role_key: str, since: float) -> float:
                deadline = since + 30
                while not visible(account_id, role_key):
                    if time.perf_counter() > deadline:
                        return float("inf")
                    time.sleep(0.005)
                return time.perf_counter() - since

            for rid, account_id, role_key in world.requests[:samples]:
                time.sleep(0.05 + secrets.randbelow(500) / 1000)   # land anywhere in the probe's period
                single.append(wait_for(account_id, role_key, decide(rid)))
            rest = world.requests[samples:]
            for b in range(bursts):
                chunk = rest[b * burst_size:(b + 1) * burst_size]
                # Watched while they are posted: a member that lands before the last call of the
                # burst is answered counts from its own call to its landing, not to the burst's end.
                with _Watcher(world, {(account_id, role_key) for _, account_id, role_key in chunk}) as watcher:
                    decided = [(account_id, role_key, decide(rid)) for rid, account_id, role_key in chunk]
                    watcher.wait(30)
                for account_id, role_key, at in decided:
                    burst.append(watcher.seen.get((account_id, role_key), float("inf")) - at)
                time.sleep(0.3)
        safe_close(ldap)
    finally:
        world.close()
    return {"engine": engine_name, "single": single, "burst": burst, "burst_size": burst_size}


class _Watcher:
    """Reads the member lists of the groups of ``wanted`` (account id, role key) every 5 ms, in a
    thread with a connection of its own, and notes when each first shows there (``seen``)."""

    def __init__(self, world: "DaemonWorld", wanted: set[tuple[str, str]]):
        from syncd.directory import names
        layout = world.rt.mappings.directory
        self.groups = {role_key: names.group_dn(layout, world.rt.mappings.role(role_key).group)
                       for _, role_key in wanted}
        self.dn_of = {(a, r): names.person_dn(layout, a).lower() for a, r in wanted}
        self.world, self.seen = world, {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "_Watcher":
        self._thread.start()
        return self

    def _run(self) -> None:
        from syncd.directory.connection import open_connection, safe_close
        ldap = open_connection(self.world.slapd.ldap_settings())
        try:
            while not self._done.is_set():
                members = {}
                for role_key, group in self.groups.items():
                    _, _, response, _ = ldap.search(group, "(objectClass=*)", search_scope="BASE",
                                                    attributes=["member"])
                    members[role_key] = {str(v).lower() for e in response for v in e["attributes"].get("member", [])}
                now = time.perf_counter()
                for key, dn in self.dn_of.items():
                    if key not in self.seen and dn in members[key[1]]:
                        self.seen[key] = now
                if len(self.seen) == len(self.dn_of):
                    return
                time.sleep(0.005)
        finally:
            safe_close(ldap)

    def wait(self, seconds: float) -> None:
        self._thread.join(timeout=seconds)

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(timeout=5)


def measure_with_daemon(engine_name: str, concurrency: int, n: int) -> dict:
    """Sustained decisions (one web process) while the daemon applies each of them to slapd and
    mails the requester, all on the same machine; then how long LDAP took to catch up."""
    world = DaemonWorld(engine_name, n)
    try:
        with Server(world.db.url, 1) as server:
            result = asyncio.run(_drive(server.base, [rid for rid, _, _ in world.requests], concurrency))
        decided_at = time.monotonic()
        from sqlalchemy import func, select

        from syncd.store.db import transaction
        from syncd.store.tables import requests
        unapplied = select(func.count()).select_from(requests).where(requests.c.applied_at.is_(None))
        while time.monotonic() - decided_at < MAX_SECONDS:
            with transaction(world.rt.engine, readonly=True) as conn:
                if conn.execute(unapplied).scalar_one() == 0:
                    break
            time.sleep(0.05)
        caught_up = time.monotonic() - decided_at
    finally:
        world.close()
    lat = result["latencies"]
    return {"engine": engine_name, "concurrency": concurrency, "decisions": len(lat),
            **steady_state(lat, concurrency), "statuses": result["statuses"], "caught_up": caught_up}


class _MailSink:
    """Accept and drop every mail (the daemon's delivery job runs as it would in production)."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        from syncd.devslapd import free_port

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


# --- main -------------------------------------------------------------------------------------------

def _pg_available() -> str | None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool
    try:
        engine = create_engine(PG_ADMIN, poolclass=NullPool, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engines", default="sqlite,postgresql")
    p.add_argument("--workers", default="1,2", help="uvicorn worker processes to try")
    p.add_argument("--concurrency", default="16", help="requests in flight, comma-separated")
    p.add_argument("--decisions", type=int, default=4000)
    p.add_argument("--pool-size", type=int, default=5,
                   help="database.pool_size of each server process")
    p.add_argument("--database-concurrency", type=int, default=None,
                   help="web.database_concurrency of each server process (default: the setting's default)")
    p.add_argument("--ldap-samples", type=int, default=60)
    p.add_argument("--bursts", type=int, default=3)
    p.add_argument("--burst-size", type=int, default=50)
    p.add_argument("--no-ldap", action="store_true")
    p.add_argument("--only-ldap", action="store_true",
                   help="only the decision -> member in LDAP latency (no throughput, no daemon run)")
    args = p.parse_args(argv)

    from syncd.logs import configure_logging
    configure_logging("warning")
    engines = [e for e in args.engines.split(",") if e]
    if "postgresql" in engines and (problem := _pg_available()):
        print(f"PostgreSQL not reachable ({problem}): its rows are left out")
        engines.remove("postgresql")
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, database.pool_size {args.pool_size}, web.database_concurrency "
          f"{args.database_concurrency or 'default'}")
    if args.only_ldap:
        return measure_ldap_rows(engines, args)
    print("\n| engine | uvicorn workers | in flight | decisions | decisions/s | p50 ms | p99 ms | server CPU ms "
          "per decision | non-200 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for engine in engines:
        for workers in (int(w) for w in args.workers.split(",")):
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                r = measure_throughput(engine, workers, concurrency, args.decisions, args.pool_size,
                                       args.database_concurrency)
                bad = {k: v for k, v in r["statuses"].items() if k != 200}
                print(f"| {engine} | {workers} | {concurrency} | {r['decisions']} | {r['rate']:.0f} | "
                      f"{r['p50']:.1f} | {r['p99']:.1f} | {r['cpu_ms']:.1f} | {bad or 0} |", flush=True)
    if args.no_ldap:
        return 0
    print("\n| engine | while the daemon applies them | in flight | decisions | decisions/s | p50 ms | p99 ms | "
          "LDAP caught up s later | non-200 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for engine in engines:
        concurrency = max(int(c) for c in args.concurrency.split(","))
        r = measure_with_daemon(engine, concurrency, args.decisions)
        bad = {k: v for k, v in r["statuses"].items() if k != 200}
        print(f"| {engine} | one web process, the daemon, slapd | {concurrency} | {r['decisions']} | {r['rate']:.0f} | "
              f"{r['p50']:.1f} | {r['p99']:.1f} | {r['caught_up']:.1f} | {bad or 0} |", flush=True)
    return measure_ldap_rows(engines, args)


def measure_ldap_rows(engines: list[str], args) -> int:
    print("\n| engine | decision -> member in LDAP | samples | p50 s | p95 s | max s |")
    print("|---|---|---|---|---|---|")
    for engine in engines:
        r = measure_ldap(engine, args.ldap_samples, args.bursts, args.burst_size)
        for label, values in (("one at a time", r["single"]), (f"bursts of {r['burst_size']}", r["burst"])):
            print(f"| {engine} | {label} | {len(values)} | {percentile(values, 50):.3f} | "
                  f"{percentile(values, 95):.3f} | {max(values):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
