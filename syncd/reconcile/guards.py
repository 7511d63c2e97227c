"""Guards: when a plan is too large to apply without ``--force``, and when not even then.

* **Never** (not even with ``--force``): a full run whose database side is empty — no
  account expected in LDAP and no desired membership — while the directory holds people or
  member values. That is what an emptied, truncated or wrongly configured database looks
  like, and applying it would disable or empty everything. (An *unreachable* database never
  gets this far: the read fails, nothing is planned, nothing is written.)
* **Without ``--force``** (``syncd.core.planner.exceeds_guard``):
  - a plan that removes every value it read (full and group runs: emptying one group asks
    for ``--force`` too);
  - more changes than ``max_changes`` (accounts created, updated or disabled, member values
    added or removed);
  - full runs only: changes above ``max_percent`` of what the directory holds (people +
    member values). One-object runs are small by nature and their percentage says nothing;
  - a group that would lose all of its members while it holds at least
    ``min_group_for_emptying_guard`` of them (a role emptied by a database accident).
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.core.planner import GroupChange, Guard, exceeds_guard
from syncd.reconcile.config import ReconcileConfig
from syncd.reconcile.model import Plan


@dataclass(frozen=True)
class Verdict:
    reason: str | None          # None: within bounds
    forceable: bool = True

    @property
    def ok(self) -> bool:
        return self.reason is None


def check(plan: Plan, config: ReconcileConfig) -> Verdict:
    current = plan.people_in_ldap + plan.member_values
    if plan.scope == "full" and plan.accounts_in_db == 0 and plan.desired_memberships == 0 and current:
        return Verdict(f"the database holds no account and no membership while the directory holds "
                       f"{plan.people_in_ldap} people and {plan.member_values} member values: refusing to "
                       "apply a plan that would empty the directory (check the database, even --force "
                       "does not apply this)", forceable=False)
    if plan.changes == 0:
        return Verdict(None)
    changes = [GroupChange(g.group, tuple(g.add), tuple(g.remove)) for g in plan.groups]
    account_adds = tuple(a.account_id for a in plan.accounts if a.action in ("create", "update"))
    account_removes = tuple(a.account_id for a in plan.accounts if a.action == "disable")
    if account_adds or account_removes:
        changes.append(GroupChange("(accounts)", account_adds, account_removes))
    guard = Guard(max_changes=config.max_changes,
                  max_percent=config.max_percent if plan.scope == "full" else None)
    # One account is a handful of values: "removes every value" and percentages mean nothing there.
    reason = exceeds_guard(changes, 0 if plan.scope.startswith("account:") else current, guard)
    if reason is None:
        for g in plan.groups:
            if g.current >= config.min_group_for_emptying_guard and len(g.remove) >= g.current:
                reason = f"group {g.group} would lose all of its {g.current} members"
                break
    return Verdict(reason)
