"""Reconciliation settings, read from ``settings.reconcile`` when it exists, with defaults.

The ``reconcile`` section of the settings is proposed in ``docs/reconcile.md``; until it is
part of ``syncd.settings.Settings`` every value below falls back to its default, so the
command and the daemon job work either way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

Mode = Literal["off", "report", "repair"]


@dataclass(frozen=True)
class ReconcileConfig:
    mode: Mode = "report"                   # the daemon job: report drift only, or repair it
    interval_seconds: float = 3600.0        # how often the daemon runs it
    incremental_interval_seconds: float = 300.0  # ... and the incremental run (--since-last)
    max_changes: int | None = 1000          # a plan larger than this is not applied without --force
    max_percent: float | None = 5.0         # ... nor one above this share of the directory's values
    min_group_for_emptying_guard: int = 10  # emptying a group that holds this many members trips the guard
    disable_extra_accounts: bool = False    # people entries unknown to the database: report, or disable
    page_size: int | None = None            # None: ldap.page_size

    def with_overrides(self, **values: Any) -> "ReconcileConfig":
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def config_from(settings: Any) -> ReconcileConfig:
    """The reconciliation config of ``settings`` (its ``reconcile`` section, if any)."""
    section = getattr(settings, "reconcile", None)
    if section is None:
        return ReconcileConfig()
    if isinstance(section, dict):
        get = section.get
    else:
        def get(name: str, default: Any = None) -> Any:
            return getattr(section, name, default)
    defaults = ReconcileConfig()
    values = {name: get(name, getattr(defaults, name)) for name in ReconcileConfig.__dataclass_fields__}
    return ReconcileConfig(**values)
