"""One reconciliation in a process of its own, so its peak RSS is its own (``VmHWM``).

    python -m bench.reconcile_once DATABASE_URL LDAP_URL BIND_DN [--force] [--dry-run] [--since-last]

The bind password comes from ``SYNCD_LDAP__BIND_PASSWORD``. Prints one JSON object: wall
seconds of the run (interpreter start and imports excluded), the plan's phases, totals, what
was written, what was read (suspects, entries read in full), and the process's peak resident
memory.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

import structlog


def peak_rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("database_url")
    p.add_argument("ldap_url")
    p.add_argument("bind_dn")
    p.add_argument("--force", action="store_true")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--since-last", action="store_true")
    args = p.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    from bench.data import NOW, bench_mappings
    from syncd.runtime import Runtime
    from syncd.reconcile.config import ReconcileConfig
    from syncd.reconcile.service import run_reconcile
    from syncd.settings import Settings
    from syncd.store.db import make_engine

    settings = Settings(database={"url": args.database_url},
                        ldap={"urls": [args.ldap_url], "bind_dn": args.bind_dn,
                              "bind_password": os.environ["SYNCD_LDAP__BIND_PASSWORD"], "timeout_seconds": 120})
    rt = Runtime(settings, bench_mappings(), make_engine(args.database_url), clock=lambda: NOW, worker_id="bench")
    before = peak_rss_mib()
    t = time.perf_counter()
    outcome = run_reconcile(rt, ReconcileConfig(), dry_run=args.dry_run, force=args.force, since_last=args.since_last,
                            record=True)
    seconds = time.perf_counter() - t
    rt.close()
    print(json.dumps({"seconds": seconds, "phases": outcome.plan.seconds, "totals": outcome.plan.totals(),
                      "state": outcome.state, "guard": outcome.verdict.reason, "scope": outcome.plan.scope,
                      "reads": outcome.reads,
                      "applied": outcome.applied.to_json() if outcome.applied else None,
                      "rss_before_mib": before, "peak_rss_mib": peak_rss_mib()}))


if __name__ == "__main__":
    main()
