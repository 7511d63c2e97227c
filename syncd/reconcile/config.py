"""The reconciliation's settings: ``syncd.settings.ReconcileSettings``, the ``reconcile`` section
(docs/reconcile.md), under the name the reconcile modules know it by."""

from __future__ import annotations

from typing import Any

from syncd.settings import ReconcileSettings as ReconcileConfig

__all__ = ["ReconcileConfig", "config_from"]


def config_from(settings: Any) -> ReconcileConfig:
    """The reconciliation config of ``settings`` (its ``reconcile`` section, if any; a mapping or an
    object holding only some of the values gets the defaults for the others)."""
    section = getattr(settings, "reconcile", None)
    if isinstance(section, ReconcileConfig):
        return section
    if section is None:
        return ReconcileConfig()
    if not isinstance(section, dict):
        section = {name: getattr(section, name) for name in ReconcileConfig.model_fields if hasattr(section, name)}
    return ReconcileConfig(**section)
