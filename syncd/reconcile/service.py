"""One reconciliation run: plan, check the guards, apply (or not), record it in ``reconcile_runs``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from syncd.jobs.runtime import Runtime
from syncd.reconcile import guards
from syncd.reconcile.applying import ApplyResult, apply_plan
from syncd.reconcile.config import ReconcileConfig
from syncd.reconcile.model import Plan
from syncd.reconcile.incremental import SCOPE, plan_since
from syncd.reconcile.planning import Planner, Progress
from syncd.store import health
from syncd.store import stamps as stamp_store
from syncd.store.db import transaction

log = structlog.get_logger(__name__)

SAMPLE = 20     # drift items kept in the run's summary (the rest: --json at the time, or logs)


@dataclass
class Outcome:
    plan: Plan
    verdict: guards.Verdict
    dry_run: bool
    forced: bool
    applied: ApplyResult | None
    run_id: int | None = None
    reads: dict[str, int] = field(default_factory=dict)   # what the run read (Planner.reads), for the bench

    @property
    def refused(self) -> bool:
        """Drift was found, writing was asked for, and a guard stopped it."""
        return not self.dry_run and self.applied is None and self.plan.changes > 0 and not self.verdict.ok

    @property
    def state(self) -> str:
        if self.plan.clean:
            return "clean"
        if self.dry_run:
            return "dry_run"
        if self.plan.changes == 0:
            return "reported"           # drift syncd does not write (e.g. entries it does not know)
        if self.refused:
            return "refused"
        return "applied"

    def to_json(self, *, sample: int | None = None) -> dict[str, Any]:
        plan = self.plan.to_json()
        if sample is not None:
            plan["accounts"] = plan["accounts"][:sample]
            plan["groups"] = [dict(g, add=g["add"][:sample], remove=g["remove"][:sample])
                              for g in plan["groups"][:sample]]
        return {
            "run_id": self.run_id,
            "state": self.state,
            "dry_run": self.dry_run,
            "guard": {"ok": self.verdict.ok, "reason": self.verdict.reason, "forceable": self.verdict.forceable,
                      "forced": self.forced and not self.verdict.ok},
            "applied": self.applied.to_json() if self.applied else None,
            **plan,
        }


def run_reconcile(rt: Runtime, config: ReconcileConfig, *, dry_run: bool = False, force: bool = False,
                  account: str | None = None, group: str | None = None, since_last: bool = False,
                  progress: Progress | None = None, record: bool = True) -> Outcome:
    """Plan (full, incremental, one account or one group), check the guards, apply unless told not to.

    ``since_last``: only what changed in the directory since the last run that left nothing to
    write (``syncd.reconcile.incremental``); a full run when there was none. Full and incremental
    runs that leave nothing to write move that cursor.
    """
    started = rt.clock()
    run_id = _start(rt, "dry_run" if dry_run else "apply", started) if record else None
    try:
        planner = Planner(rt, config, progress)
        if account:
            plan = planner.plan_account(account)
        elif group:
            plan = planner.plan_group(group)
        else:
            cursor = _cursor(rt, planner) if since_last else None
            plan = plan_since(planner, cursor) if cursor else planner.plan_full()
        verdict = guards.check(plan, config)
        applied = None
        if not dry_run and plan.changes and (verdict.ok or (force and verdict.forceable)):
            applied = apply_plan(rt, plan, progress)
        outcome = Outcome(plan, verdict, dry_run, force, applied, run_id, dict(planner.reads))
    except BaseException as exc:
        if run_id is not None:
            _finish(rt, run_id, None, f"{type(exc).__name__}: {exc}")
        raise
    if plan.scope in ("full", SCOPE):
        log.info("reconcile_entries_read", scope=plan.scope, **planner.reads)
        if planner.next_cursor and (outcome.state in ("clean", "reported") or (
                outcome.state == "applied" and outcome.applied is not None and not outcome.applied.errors)):
            _save_cursor(rt, planner, planner.next_cursor)
    log_event = {"clean": "reconcile_clean", "dry_run": "reconcile_drift_found", "reported": "reconcile_drift_found",
                 "refused": "reconcile_refused", "applied": "reconcile_applied"}[outcome.state]
    (log.warning if outcome.state == "refused" else log.info)(
        log_event, scope=plan.scope, reason=verdict.reason, **plan.totals(),
        seconds=round(sum(plan.seconds.values()), 2))
    if run_id is not None:
        error = verdict.reason if outcome.refused else (
            "; ".join(applied.errors[:5]) if applied and applied.errors else None)
        _finish(rt, run_id, outcome.to_json(sample=SAMPLE), error)
    return outcome


def _cursor(rt: Runtime, planner: Planner) -> str | None:
    with transaction(rt.engine, readonly=True) as conn:
        return stamp_store.cursor(conn, planner.stamps.kind)


def _save_cursor(rt: Runtime, planner: Planner, value: str) -> None:
    with transaction(rt.engine) as conn:
        stamp_store.set_cursor(conn, planner.stamps.kind, value, rt.clock())


def _start(rt: Runtime, mode: str, now: Any) -> int:
    with transaction(rt.engine) as conn:
        return health.start_reconcile_run(conn, mode, now)


def _finish(rt: Runtime, run_id: int, summary: dict | None, error: str | None) -> None:
    try:
        with transaction(rt.engine) as conn:
            health.finish_reconcile_run(conn, run_id, rt.clock(), summary, error[:4000] if error else None)
    except Exception as exc:  # noqa: BLE001 - the database may be what failed; the run's outcome stands
        log.warning("reconcile_run_not_recorded", run_id=run_id, error=str(exc))
