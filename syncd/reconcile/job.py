"""The daemon's periodic reconciliations (``docs/reconcile.md``): full, and incremental.

``reconcile.mode`` (settings): ``report`` (default) plans and logs the drift and records the
run, writing nothing; ``repair`` applies the plan when it is within the guards; ``off`` does
nothing. A plan refused by a guard raises ``ReconcileRefused`` (a ``PermanentError``): the
daemon then shows the job as failing in ``syncd status`` until an operator looks
(``syncd reconcile --dry-run``, then ``--force`` if the plan is right).
"""

from __future__ import annotations

from syncd.errors import PermanentError
from syncd.reconcile.config import config_from
from syncd.reconcile.service import run_reconcile
from syncd.runtime import Runtime


class ReconcileRefused(PermanentError):
    """A guard refused to apply the reconciliation plan."""


def reconcile(rt: Runtime, *, since_last: bool = False) -> int:
    """One full reconciliation; returns the writes made (repair) or the drift found (report)."""
    config = config_from(rt.settings)
    if config.mode == "off":
        return 0
    outcome = run_reconcile(rt, config, dry_run=config.mode != "repair", since_last=since_last)
    if outcome.refused:
        raise ReconcileRefused(f"reconciliation not applied: {outcome.verdict.reason}")
    return outcome.applied.writes if outcome.applied else outcome.plan.changes


def reconcile_incremental(rt: Runtime) -> int:
    """What changed in the directory since the last run (``reconcile.incremental_interval_seconds``);
    a full run when no run has left a cursor yet. Same mode, guards and outcome as ``reconcile``."""
    return reconcile(rt, since_last=True)

