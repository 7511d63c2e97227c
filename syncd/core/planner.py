"""The "desired vs actual" planner: which member values to add to and remove from each group.

DNs are compared in their normalised form (see ``syncd.directory.names``); the planner only
compares strings. For a ``shared`` group syncd removes only members it granted itself and
never touches the others (other tools own them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Ownership = Literal["exclusive", "shared"]


@dataclass(frozen=True)
class GroupChange:
    group: str
    add: tuple[str, ...]
    remove: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.add) + len(self.remove)


@dataclass(frozen=True)
class Guard:
    max_changes: int | None = None      # absolute ceiling per run
    max_percent: float | None = None    # of the values currently in the directory


def plan_group(
    group: str,
    desired: Iterable[str],
    actual: Iterable[str],
    ownership: Ownership = "exclusive",
    granted_by_syncd: Iterable[str] = (),
) -> GroupChange:
    desired_set, actual_set = set(desired), set(actual)
    add = desired_set - actual_set
    extra = actual_set - desired_set
    if ownership == "shared":
        extra &= set(granted_by_syncd)
    return GroupChange(group, tuple(sorted(add)), tuple(sorted(extra)))


def exceeds_guard(changes: Iterable[GroupChange], current_values: int, guard: Guard) -> str | None:
    """Why a plan is too large to apply without ``--force``, or None when it is within bounds.

    An empty desired state against a populated directory always trips the guard: an unreachable
    or emptied database must never empty the directory.
    """
    total = sum(c.size for c in changes)
    removes = sum(len(c.remove) for c in changes)
    if current_values and removes >= current_values:
        return f"the plan removes every one of the {current_values} member values"
    if guard.max_changes is not None and total > guard.max_changes:
        return f"{total} changes exceed the limit of {guard.max_changes}"
    if guard.max_percent is not None and current_values and 100.0 * total / current_values > guard.max_percent:
        return f"{total} changes are {100.0 * total / current_values:.1f}% of {current_values}, above {guard.max_percent}%"
    return None
