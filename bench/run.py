"""The benchmark: seed, measure side by side, print one table, write it into bench/README.md.

For each size (accounts: 10k and 50k by default, 150k on request) and each SQL engine (SQLite, and
PostgreSQL when it answers), a throwaway slapd is bulk-loaded with ``slapadd`` and a database
with the same data set (``bench.data``), then, in this order:

1. raw limits (once per size): plain ldap3 and ``ldapsearch`` reads, ldap3 batched adds;
2. apply: accepted requests → LDAP → marked applied (``syncd.jobs.apply.apply_accepted``);
3. reconcile with no drift (a process of its own: wall time and peak RSS): a first run, which
   records every entry's change stamp, then the steady full run and an incremental run with
   nothing changed, each beside its floor measured here;
4. 1% drift made behind syncd's back (``bench.drift``), reconciled (``--force``: it is above
   the guards);
5. a dry run that must find nothing left (a check, not a figure);
6. the correspondents' desk with 500 pending requests, rendered (``bench.desk``; largest size only);
7. tacit sweep over 1,000,000 past requests of which 10,000 are due (largest size only by
   default: it does not depend on the number of accounts), three times beside its floor, each
   undone, the two taking turns to go first.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog

from bench import sql as bsql
from bench.data import NOW, generate, write_ldif
from bench.desk import measure_desk
from bench.drift import make_drift
from bench.raw import Ldap, apply_shaped_adds, apply_writes, ldapsearch_read, raw_limits

HERE = Path(__file__).resolve().parent
DEFAULT_SIZES = (10_000, 50_000)      # 150,000: --sizes 10000,50000,150000 (about 10 more minutes)
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def say(*parts: Any) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# databases


class Databases:
    def __init__(self, workdir: Path, pg_admin: str | None):
        self.workdir = workdir
        self.pg_admin = pg_admin
        self.created: list[str] = []

    def postgres_available(self) -> str | None:
        if not self.pg_admin:
            return "disabled (--no-postgres)"
        from sqlalchemy import create_engine, text
        try:
            eng = create_engine(self.pg_admin, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
            with eng.connect() as conn:
                conn.execute(text("select 1"))
            eng.dispose()
            return None
        except Exception as exc:  # noqa: BLE001
            return f"unreachable ({type(exc).__name__})"

    def new(self, engine: str, label: str) -> str:
        from syncd.store.migrate import upgrade
        if engine == "sqlite":
            url = f"sqlite:///{self.workdir / f'{label}.db'}"
        else:
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url
            name = f"syncd_bench_{secrets.token_hex(4)}"
            admin = create_engine(self.pg_admin, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            url = make_url(self.pg_admin).set(database=name).render_as_string(hide_password=False)
            self.created.append(url)
        upgrade(url)
        return url

    def drop(self, url: str) -> None:
        if url.startswith("sqlite"):
            for suffix in ("", "-wal", "-shm"):
                Path(url[len("sqlite:///"):] + suffix).unlink(missing_ok=True)
            return
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url
        admin = create_engine(self.pg_admin, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
        admin.dispose()
        self.created.remove(url)


# ---------------------------------------------------------------------------------------------
# measurements


def runtime(db_url: str, slapd: Any, data: Any) -> Any:
    from syncd.runtime import Runtime
    from syncd.settings import Settings
    from syncd.store.db import make_engine
    settings = Settings(database={"url": db_url}, ldap={"urls": [slapd.url], "bind_dn": slapd.root_dn,
                                                       "bind_password": slapd.root_password, "timeout_seconds": 120})
    return Runtime(settings, data.mappings, make_engine(db_url), clock=lambda: NOW, worker_id="bench")


def measure_apply(db_url: str, slapd: Any, data: Any, count: int, profile: str | None = None,
                  rounds: int = 1) -> dict[str, Any]:
    """Apply ``count`` accepted requests, beside its floors measured just before on the same
    slapd: the very modifies apply is about to send, sent raw (``bench.raw.apply_shaped_adds``)
    one after the other on one connection — the floor of issue 16's target — and shared between
    as many connections as apply shares its groups between (``ldap.write_connections``), then
    taken out again. ``rounds`` times, each round with requests of its own (same shape), floors
    and apply alternating, so that a change of the machine's load hits them alike."""
    from sqlalchemy import func, select

    from syncd.jobs.apply import apply_accepted
    from syncd.store.tables import requests

    ldap = Ldap(slapd.url, slapd.root_dn, slapd.root_password)
    every, _ = bsql.accepted_requests(data, count * rounds)
    engine = runtime(db_url, slapd, data)
    connections = engine.settings.ldap.write_connections
    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
    applied = seconds = modifies = 0
    floors = {1: [0, 0.0], connections: [0, 0.0]}      # connections -> [values, seconds]
    per_round = []
    try:
        for n in range(rounds):
            reqs = every[n * count:(n + 1) * count]
            # The round's requests are loaded and written out before the floors: the server's
            # aftermath of the bench's own bulk insert (dirty pages, the WAL, a checkpoint) would
            # otherwise land in apply's time only.
            bsql.load_accepted(engine.engine, data, count, skip=n * count)
            bsql.settle(engine.engine)
            writes = apply_writes(data.mappings, [(r["account_id"], r["role_key"]) for r in reqs])
            by_round = {}
            for k in sorted(floors, reverse=n % 2 == 1):     # which goes first alternates
                by_round[k] = apply_shaped_adds(ldap, writes, connections=k)
                floors[k][0] += by_round[k]["values"]
                floors[k][1] += by_round[k]["seconds"]
            if profiler is not None:
                profiler.enable()
            t = time.perf_counter()
            done = 0
            while True:
                k = apply_accepted(engine)
                if not k:
                    break
                done += k
            took = time.perf_counter() - t
            if profiler is not None:
                profiler.disable()
            if done != by_round[1]["values"]:
                raise RuntimeError(f"apply applied {done} requests, its floor wrote {by_round[1]['values']} values")
            applied, seconds = applied + done, seconds + took
            modifies += by_round[1]["modifies"]
            per_round.append(f"{done / took:.0f}/" + "/".join(
                f"{f['per_s']:.0f} ({100 * f['seconds'] / took:.0f}%)" for _, f in sorted(by_round.items())))
        if profiler is not None:
            profiler.dump_stats(f"{profile}-{bsql_label(db_url)}.prof")
        with engine.engine.connect() as conn:
            left = conn.execute(select(func.count()).select_from(requests).where(
                requests.c.status == "accepted", requests.c.applied_at.is_(None))).scalar_one()
    finally:
        engine.close()
    if left:
        raise RuntimeError(f"apply left {left} accepted requests unapplied")

    def floor(k: int) -> dict[str, Any]:
        values, took = floors[k]
        return {"values": values, "seconds": took, "per_s": values / took, "modifies": modifies, "connections": k}
    return {"requests": applied, "seconds": seconds, "per_s": applied / seconds, "rounds": rounds,
            "connections": connections, "per_round": per_round, "floor": floor(1), "floor_shared": floor(connections)}


def reconcile_in_subprocess(db_url: str, slapd: Any, *, force: bool = False, dry_run: bool = False,
                            since_last: bool = False) -> dict:
    env = dict(os.environ, SYNCD_LDAP__BIND_PASSWORD=slapd.root_password, PYTHONPATH=str(HERE.parent))
    cmd = [sys.executable, "-m", "bench.reconcile_once", db_url, slapd.url, slapd.root_dn]
    cmd += ["--force"] if force else []
    cmd += ["--dry-run"] if dry_run else []
    cmd += ["--since-last"] if since_last else []
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(HERE.parent))
    if done.returncode != 0:
        raise RuntimeError(f"reconcile_once failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_stamped(db_url: str, slapd: Any, data: Any, ldap: Ldap, applied_at: float) -> dict[str, Any]:
    """The steady full run (stamps recorded), its floor (ldapsearch's two reads, measured in
    ``raw_limits``, + the same database reads through the bare driver), and an incremental run
    with nothing changed since, with its floor (ldapsearch of the two ``>=`` searches)."""
    from syncd.directory import names
    from syncd.directory.stamps import CLOCK_MARGIN_SECONDS, WRITE_MARGIN_SECONDS, stamp_profile
    from syncd.store import stamps as stamp_store
    from syncd.store.db import make_engine
    out: dict[str, Any] = {}
    # The cursor stays a margin behind the clock: "no change" means none within it (apply wrote last).
    quiet = CLOCK_MARGIN_SECONDS + WRITE_MARGIN_SECONDS + 1 - (time.time() - applied_at)
    if quiet > 0:
        time.sleep(quiet)
    out["clean"] = reconcile_in_subprocess(db_url, slapd)
    if out["clean"]["state"] != "clean":
        raise RuntimeError(f"the stamped run found drift: {out['clean']['totals']}")
    eng = make_engine(db_url)
    try:
        out["raw_db_s"] = bsql.raw_db_reads(eng, data.mappings.directory.people,
                                            [r.key for a in data.mappings.applications for r in a.roles])
        profile = stamp_profile(data.mappings.directory.kind)
        with eng.connect() as conn:
            cursor = stamp_store.cursor(conn, profile.kind)
    finally:
        eng.dispose()
    say(f"{bsql_label(db_url)}: reconcile, no drift, stamped: {out['clean']['seconds']:.2f} s "
        f"{json.dumps(out['clean']['reads'])} {json.dumps({k: round(v, 2) for k, v in out['clean']['phases'].items()})}; "
        f"raw database reads {out['raw_db_s']:.2f} s")
    out["incremental"] = reconcile_in_subprocess(db_url, slapd, since_last=True)
    if out["incremental"]["scope"] != "incremental" or out["incremental"]["state"] != "clean":
        raise RuntimeError(f"the incremental run was not a clean incremental one: {out['incremental']}")
    since = profile.since_filter(cursor)
    layout = data.mappings.directory
    out["incremental_floor_s"] = (ldapsearch_read(ldap, names.branch_dn(layout, "people"), [profile.attribute], since)
                                  + ldapsearch_read(ldap, names.branch_dn(layout, "groups"), ["member"], since))
    say(f"{bsql_label(db_url)}: reconcile, incremental, no change: {out['incremental']['seconds']:.3f} s "
        f"{json.dumps(out['incremental']['reads'])}; ldapsearch of the same searches {out['incremental_floor_s']:.3f} s")
    return out


def bsql_label(db_url: str) -> str:
    return db_url.rsplit("/", 1)[-1]


def measure_tacit(db_url: str, slapd: Any, data: Any, total: int, due: int, rounds: int = 3) -> dict[str, Any]:
    """The sweep and its floor (the same writes as bare set-based SQL), ``rounds`` times each on
    the same database, each undone afterwards (``bsql.tacit_undone``), which goes first
    alternating: one measure of each moved by a tenth and more from one run to the next with
    whichever found the server's cache warm, and a request's versions left by the other."""
    from syncd.jobs.tacit import sweep
    rt = runtime(db_url, slapd, data)
    floors: list[float] = []
    sweeps: list[float] = []
    try:
        t = time.perf_counter()
        bsql.load_requests(rt.engine, data, total, due)
        load = time.perf_counter() - t

        def swept() -> None:
            if (accepted := sweep(rt)) != due:
                raise RuntimeError(f"the sweep accepted {accepted} requests, {due} were due")

        measures = {"floor": (floors, lambda: bsql.tacit_floor_writes(rt.engine, NOW)), "sweep": (sweeps, swept)}
        for n in range(rounds):
            for which in (("floor", "sweep") if n % 2 == 0 else ("sweep", "floor")):
                # A full garbage collection is due from the data set's generation and the load
                # (the harness's heap: ~100k objects, 60-80 ms a pass here): taken before each
                # measure, not inside whichever happens to allocate first. Each still pays for
                # the collections its own allocations cause.
                gc.collect()
                times, accept = measures[which]
                times.append(bsql.tacit_undone(rt.engine, NOW, accept))
    finally:
        rt.close()
    return {"seconds": statistics.median(sweeps), "floor_s": statistics.median(floors), "accepted": due,
            "requests": total, "load_seconds": load, "rounds": rounds, "sweeps_s": sweeps, "floors_s": floors}


# Apply's rounds. Each round's own ratio to its floor moves by ±20 points with the disk; at 10k,
# where apply's margin over the floor is narrowest, five rounds (a round takes 8–9 s there); above,
# three, since a round at 50k takes ~20 s and `make bench` has ten minutes.
SMALL_SIZE, SMALL_APPLY_ROUNDS, APPLY_ROUNDS = 10_000, 5, 3


def default_apply_rounds(size: int) -> int:
    return SMALL_APPLY_ROUNDS if size <= SMALL_SIZE else APPLY_ROUNDS


def one_size(size: int, engines: list[str], dbs: Databases, workdir: Path, args: Any) -> dict[str, Any]:
    from syncd.devslapd import DevSlapd
    from syncd.reconcile.config import ReconcileConfig
    from syncd.reconcile.service import run_reconcile

    out: dict[str, Any] = {"size": size}
    t = time.perf_counter()
    data = generate(size)
    ldif = write_ldif(data, workdir / f"data-{size}.ldif")
    out["member_values"] = data.active_memberships()
    out["memberships_rows"] = len(data.memberships)
    out["biggest_group"] = max(sum(1 for _, r, rv in data.memberships if r == k and not rv) for k in range(4))
    say(f"{size}: data set and LDIF ready ({time.perf_counter() - t:.1f} s, {out['member_values']} member values)")
    for engine in engines:
        slapd = DevSlapd(workdir / f"slapd-{size}-{engine}")
        t = time.perf_counter()
        slapd.bulk_load(ldif)
        slapd.start()
        out.setdefault("slapadd_s", time.perf_counter() - t)
        db_url = dbs.new(engine, f"bench-{size}-{engine}")
        try:
            from syncd.store.db import make_engine
            eng = make_engine(db_url)
            t = time.perf_counter()
            bsql.load(eng, data)
            eng.dispose()
            say(f"{size}/{engine}: slapd and database loaded (database {time.perf_counter() - t:.1f} s)")
            ldap = Ldap(slapd.url, slapd.root_dn, slapd.root_password)
            if "raw" not in out:
                out["raw"] = raw_limits(ldap, data.mappings, [a["id"] for a in data.accounts], min(size, args.raw_adds))
                say(f"{size}: raw limits {json.dumps({k: round(v, 2) for k, v in out['raw'].items()})}")
            res: dict[str, Any] = {}
            apply_count, rounds = min(size, args.apply), args.apply_rounds or default_apply_rounds(size)
            res["apply"] = measure_apply(db_url, slapd, data, apply_count, args.profile_apply, rounds)
            applied_at = time.time()
            floor = res["apply"]["floor"]
            shared = res["apply"]["floor_shared"]
            say(f"{size}/{engine}: apply {res['apply']['per_s']:.0f} req/s on {shared['connections']} connections; "
                f"its floor, the same {floor['modifies']} modifies sent raw on one connection, "
                f"{floor['per_s']:.0f} values/s, on {shared['connections']}, {shared['per_s']:.0f} values/s; by round "
                f"(req/s / values/s (% of apply's rate) on one / on {shared['connections']}): "
                f"{', '.join(res['apply']['per_round'])}; apply {res['apply']['seconds']:.1f} s, "
                f"floors {floor['seconds']:.1f} / {shared['seconds']:.1f} s")
            if args.apply_only:
                out[engine] = res
                continue
            res["first"] = reconcile_in_subprocess(db_url, slapd)
            if res["first"]["state"] != "clean":
                raise RuntimeError(f"the seeded pair has drift: {res['first']['totals']}")
            say(f"{size}/{engine}: reconcile, no drift, first run (stamps recorded): {res['first']['seconds']:.1f} s, "
                f"{res['first']['peak_rss_mib']:.0f} MiB {json.dumps(res['first']['reads'])}")
            res.update(measure_stamped(db_url, slapd, data, ldap, applied_at))
            eng = make_engine(db_url)
            res["drift_made"] = make_drift(ldap, eng, data, 0.01,
                                           set(bsql.accepted_pairs(data, apply_count * rounds)))
            eng.dispose()
            res["drift"] = reconcile_in_subprocess(db_url, slapd, force=True)
            say(f"{size}/{engine}: reconcile, 1% drift: {res['drift']['seconds']:.1f} s, "
                f"{res['drift']['totals']['changes']} changes, {res['drift']['peak_rss_mib']:.0f} MiB")
            check = run_reconcile(runtime(db_url, slapd, data), ReconcileConfig(), dry_run=True, record=False)
            res["after_repair_clean"] = check.plan.clean
            if not check.plan.clean:
                say(f"{size}/{engine}: NOT CLEAN after repair: {check.plan.totals()}")
            if args.tacit_at == "all" or size == max(args.sizes):
                res["desk"] = measure_desk(db_url, data)
                say(f"{size}/{engine}: desk with {res['desk']['pending']} pending requests "
                    f"{res['desk']['median_ms']:.0f} ms (median), floor {res['desk']['floor_ms']:.1f} ms "
                    f"({res['desk']['x_floor']:.2f}×)")
                res["tacit"] = measure_tacit(db_url, slapd, data, args.requests, args.due)
                tacit = res["tacit"]
                by_round = ", ".join(f"{a:.2f} / {b:.2f}" for a, b in zip(tacit["sweeps_s"], tacit["floors_s"], strict=True))
                say(f"{size}/{engine}: tacit sweep {tacit['seconds']:.2f} s, floor {tacit['floor_s']:.2f} s "
                    f"(medians; by round, sweep / floor: {by_round})")
            out[engine] = res
        finally:
            slapd.stop()
            if not args.keep:
                dbs.drop(db_url)
                shutil.rmtree(slapd.workdir, ignore_errors=True)
    if not args.keep:
        ldif.unlink(missing_ok=True)
    return out


# ---------------------------------------------------------------------------------------------
# the table


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    slapd = subprocess.run(["/usr/sbin/slapd", "-VV"], capture_output=True, text=True).stderr.split("\n")[0] \
        if Path("/usr/sbin/slapd").exists() else "slapd ?"
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{os.cpu_count()} cores, {cpu}, {mem}, {platform.system()} {platform.release()}",
            "software": f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
                        f"{slapd.replace('@(#) $OpenLDAP: ', 'OpenLDAP ').split(' (')[0].strip()}"}


def _f(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def rows(results: list[dict[str, Any]], engines: list[str]) -> list[tuple[str, list[str]]]:
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    out: list[tuple[str, list[str]]] = []
    get = lambda r, *path: _dig(r, path)  # noqa: E731
    out.append(("accounts / member values / biggest group",
                [f"{r['size']:,} / {r['member_values']:,} / {r['biggest_group']:,}" for r in results]))
    out.append(("slapadd bulk load (s)", [_f(r.get("slapadd_s")) for r in results]))
    out.append(("**raw** ldap3 batched member adds, 500 per modify (values/s): people (memberOf kept) / no entry",
                [f"{_f(get(r, 'raw', 'member_adds_per_s'), 0)} / {_f(get(r, 'raw', 'dangling_adds_per_s'), 0)}"
                 for r in results]))
    out.append(("**raw** ldap3 paged read, people × every mapped attribute (s)",
                [_f(get(r, "raw", "ldap3_people_s")) for r in results]))
    out.append(("**raw** ldap3 paged read, all group member lists (s)",
                [_f(get(r, "raw", "ldap3_groups_s")) for r in results]))
    out.append(("**raw** ldapsearch, the same two reads (s)",
                [f"{_f(get(r, 'raw', 'ldapsearch_people_s'))} + {_f(get(r, 'raw', 'ldapsearch_groups_s'), 2)}"
                 for r in results]))
    for e in engines:
        out.append((f"apply, {label[e]}: req/s (requests; modifies; rounds; connections) / floor: the same modifies "
                    "sent raw on one connection (values/s) / % of the floor (target ≥ 90%) / the same modifies raw "
                    "on apply's connections (values/s) / % of it / % of raw batched",
                    [_apply_cell(r, e) for r in results]))
    for e in engines:
        out.append((f"reconcile, no drift, first run (no stamps yet), {label[e]}: s / peak RSS MiB / × ldap3 read / "
                    "× ldapsearch", [_reconcile_cell(r, e, "first") for r in results]))
    for e in engines:
        out.append((f"reconcile, no drift, {label[e]}: full run, s / peak RSS MiB / floor: ldapsearch + raw "
                    "database reads (s) / × ldapsearch / × floor", [_stamped_cell(r, e) for r in results]))
    for e in engines:
        out.append((f"reconcile, incremental, no change, {label[e]}: s / peak RSS MiB / floor: ldapsearch of the "
                    "two searches (s) / × floor", [_incremental_cell(r, e) for r in results]))
    for e in engines:
        out.append((f"reconcile, 1% drift repaired, {label[e]}: s / peak RSS MiB / × ldap3 read / writes",
                    [_reconcile_cell(r, e, "drift") for r in results]))
    for e in engines:
        out.append((f"desk, 500 pending requests rendered, {label[e]}: server ms, median / max of 20 / median CPU "
                    "(target < 200) / floor: its statements through the bare driver + its template (ms) / × floor",
                    [_desk_cell(get(r, e, "desk")) for r in results]))
    swept = next((get(r, e, "tacit") for r in results for e in engines if get(r, e, "tacit")), None)
    scale = f"{swept['requests']:,} requests, {swept['accepted']:,} due" if swept else "not measured"
    rounds = f", medians of {swept['rounds']} rounds" if swept else ""
    for e in engines:
        out.append((f"tacit sweep, {label[e]}: {scale}: s / floor: the same writes as bare set-based SQL in one "
                    f"transaction (s) / × floor{rounds}", [_tacit_cell(get(r, e, "tacit")) for r in results]))
    return out


def _dig(r: dict, path: tuple) -> Any:
    for p in path:
        if not isinstance(r, dict) or p not in r:
            return None
        r = r[p]
    return r


def _pct(a: float | None, b: float | None) -> str:
    return "—" if not a or not b else f"{100 * a / b:.0f}%"


def _apply_cell(r: dict, engine: str) -> str:
    res = _dig(r, (engine, "apply"))
    if not res:
        return "—"
    floor, shared = res.get("floor") or {}, res.get("floor_shared") or {}
    return (f"{res['per_s']:,.0f} ({res['requests']:,}; {floor.get('modifies', 0):,}; {res.get('rounds', 1)}; "
            f"{res.get('connections', 1)}) / {_f(floor.get('per_s'), 0)} / {_pct(res['per_s'], floor.get('per_s'))} / "
            f"{_f(shared.get('per_s'), 0)} / {_pct(res['per_s'], shared.get('per_s'))} / "
            f"{_pct(res['per_s'], _dig(r, ('raw', 'member_adds_per_s')))}")


def _stamped_cell(r: dict, engine: str) -> str:
    res, raw = _dig(r, (engine, "clean")), r.get("raw", {})
    if not res or not raw.get("ldapsearch_read_s"):
        return "—"
    floor = raw["ldapsearch_read_s"] + r[engine]["raw_db_s"]
    return (f"{res['seconds']:.2f} / {res['peak_rss_mib']:.0f} / {raw['ldapsearch_read_s']:.2f} + "
            f"{r[engine]['raw_db_s']:.2f} / {res['seconds'] / raw['ldapsearch_read_s']:.2f} / {res['seconds'] / floor:.2f}")


def _desk_cell(res: dict | None) -> str:
    if not res:
        return "—"
    cell = f"{_f(res['median_ms'], 0)} / {_f(res['max_ms'], 0)} / {_f(res['cpu_ms'], 0)}"
    if "floor_ms" not in res:
        return cell
    return (f"{cell} / {_f(res['floor_sql_ms'])} + {_f(res['floor_render_ms'])} = {_f(res['floor_ms'])} / "
            f"{_f(res['x_floor'], 2)}")


def _tacit_cell(res: dict | None) -> str:
    if not res:
        return "—"
    return f"{res['seconds']:.2f} / {res['floor_s']:.2f} / {res['seconds'] / res['floor_s']:.2f}"


def _incremental_cell(r: dict, engine: str) -> str:
    res = _dig(r, (engine, "incremental"))
    if not res:
        return "—"
    floor = r[engine]["incremental_floor_s"]
    return f"{res['seconds']:.3f} / {res['peak_rss_mib']:.0f} / {floor:.3f} / {res['seconds'] / floor:.1f}"


def _reconcile_cell(r: dict, engine: str, which: str) -> str:
    res = _dig(r, (engine, which))
    if not res:
        return "—"
    raw = r.get("raw", {})
    ratio = res["seconds"] / raw["ldap3_read_s"] if raw.get("ldap3_read_s") else None
    cell = f"{res['seconds']:.1f} / {res['peak_rss_mib']:.0f} / {_f(ratio, 2)}"
    if which == "first":
        cell += f" / {_f(res['seconds'] / raw['ldapsearch_read_s'], 1) if raw.get('ldapsearch_read_s') else '—'}"
    else:
        applied = res.get("applied") or {}
        writes = sum(v for k, v in applied.items() if isinstance(v, int) and k != "skipped")
        cell += f" / {writes:,}"
    return cell


def markdown(results: list[dict[str, Any]], engines: list[str], info: dict[str, str], notes: list[str]) -> str:
    head = "| measure | " + " | ".join(f"{r['size']:,} accounts" for r in results) + " |"
    sep = "|---|" + "---|" * len(results)
    lines = [f"Measured {info['date']} on {info['machine']}; {info['software']}.", "", head, sep]
    for name, cells in rows(results, engines):
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines)


def print_table(results: list[dict[str, Any]], engines: list[str], info: dict[str, str]) -> None:
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"syncd bench — {info['date']} — {info['machine']}", header_style="bold")
    table.add_column("measure")
    for r in results:
        table.add_column(f"{r['size']:,}", justify="right")
    for name, cells in rows(results, engines):
        table.add_row(name.replace("**", ""), *cells)
    Console(width=200).print(table)


RESULTS_START = "<!-- bench:results:start -->"
RESULTS_END = "<!-- bench:results:end -->"


def write_readme(text: str) -> None:
    """Replace the results block of bench/README.md; everything else (``## Web decisions``…) stays."""
    path = HERE / "README.md"
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{RESULTS_START}\n{text}\n{RESULTS_END}"
    if RESULTS_START in current and RESULTS_END in current:
        before, rest = current.split(RESULTS_START, 1)
        _, after = rest.split(RESULTS_END, 1)
        path.write_text(before + block + after, encoding="utf-8")
    else:
        path.write_text((current.rstrip() + "\n\n" if current else "") + "## Results\n\n" + block + "\n",
                        encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                   help="comma-separated account counts (default: %(default)s)")
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    p.add_argument("--requests", type=int, default=1_000_000, help="past requests for the tacit sweep")
    p.add_argument("--due", type=int, default=10_000, help="of which due")
    p.add_argument("--tacit-at", choices=("largest", "all"), default="largest")
    p.add_argument("--apply", type=int, default=2000, help="accepted requests applied per size and engine")
    p.add_argument("--apply-rounds", type=int,
                   help="rounds of apply, each beside its floor, each with requests of its own "
                        f"(default: {SMALL_APPLY_ROUNDS} up to {SMALL_SIZE:,} accounts, {APPLY_ROUNDS} above)")
    p.add_argument("--apply-only", action="store_true",
                   help="raw limits and apply only (no reconcile, drift, desk or tacit sweep)")
    p.add_argument("--profile-apply", metavar="PREFIX",
                   help="cProfile apply, written to PREFIX-<database>.prof")
    p.add_argument("--raw-adds", type=int, default=5000, help="member values added for the raw rate")
    p.add_argument("--workdir", help="scratch folder (default: a new temporary one)")
    p.add_argument("--keep", action="store_true", help="keep slapd folders and databases")
    p.add_argument("--no-readme", action="store_true", help="print the table only")
    p.add_argument("--json", metavar="PATH", help="also write every figure measured to this file")
    args = p.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.apply_rounds is not None and args.apply_rounds < 1:
        p.error("--apply-rounds must be at least 1")
    # SIGTERM (make, CI, a timeout) unwinds like Ctrl-C: slapd stopped, databases dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("alembic").setLevel(logging.WARNING)

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    dbs = Databases(workdir, None if args.no_postgres else os.environ.get("SYNCD_BENCH_POSTGRES_URL", PG_ADMIN_URL))
    notes: list[str] = []
    engines = ["sqlite"]
    problem = dbs.postgres_available()
    if problem is None:
        engines.append("postgresql")
    else:
        notes.append(f"PostgreSQL not measured: {problem}")
        say(f"PostgreSQL not measured: {problem}")
    info = machine()
    started = time.perf_counter()
    results = []
    try:
        for size in args.sizes:
            results.append(one_size(size, engines, dbs, workdir, args))
    finally:
        for url in list(dbs.created):
            if not args.keep:
                dbs.drop(url)
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.perf_counter() - started
    notes.append(f"whole run: {total / 60:.1f} min (`python -m bench --sizes {','.join(map(str, args.sizes))}`)")
    for r in results:
        for e in engines:
            if _dig(r, (e, "after_repair_clean")) is False:
                notes.append(f"{r['size']:,}/{e}: a dry run after the repair still found drift")
    print_table(results, engines, info)
    if not args.no_readme:
        write_readme(markdown(results, engines, info, notes))
        say("bench/README.md updated")
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "results": results}, indent=1, default=str))
    return 0
