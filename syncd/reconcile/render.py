"""Showing a plan to a person: rich tables on a terminal (plain text elsewhere), a progress bar."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from syncd.reconcile.service import Outcome

SHOWN = 50       # rows per table; --json has them all


class RichProgress:
    """``planning.Progress`` on a rich progress bar: one bar per phase."""

    def __init__(self, console: Console):
        self._progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=console, transient=True)
        self._task: Any = None

    def __enter__(self) -> "RichProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def phase(self, name: str, total: int | None = None) -> None:
        if self._task is not None:
            task = self._progress.tasks[-1]
            self._progress.update(self._task, completed=task.total or task.completed)
        self._task = self._progress.add_task(name, total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None and n:
            self._progress.advance(self._task, n)


def _values(values: list[str]) -> str:
    if not values:
        return "∅"
    text = ", ".join(values)
    return text if len(text) <= 60 else text[:57] + "..."


def print_outcome(outcome: Outcome, console: Console) -> None:
    plan = outcome.plan
    t = plan.totals()
    title = {"clean": "no drift", "dry_run": "dry run: nothing written", "applied": "applied",
             "reported": "drift reported, nothing to write",
             "refused": "REFUSED by the guards: nothing written"}[outcome.state]
    console.print(f"[bold]reconciliation ({plan.scope}): {title}[/bold]")
    summary = Table(show_header=True, header_style="bold")
    summary.add_column("")
    summary.add_column("LDAP / database", justify="right")
    summary.add_column("drift", justify="right")
    summary.add_row("people entries / accounts expected", f"{t['people_in_ldap']} / {t['accounts_expected']}", "")
    summary.add_row("accounts missing in LDAP (create)", "", str(t["accounts_missing"]))
    summary.add_row("accounts renamed (update)", "", str(t["accounts_renamed"]))
    summary.add_row("accounts with other changes (update)", "", str(t["accounts_changed"]))
    summary.add_row("accounts to disable", "", str(t["accounts_to_disable"]))
    summary.add_row("entries unknown to the database", "", str(t["accounts_extra"]))
    summary.add_row("groups checked / missing", str(t["groups_checked"]), str(t["groups_missing"]))
    summary.add_row("member values / desired", f"{t['member_values']} / {t['desired_memberships']}", "")
    summary.add_row("members to add", "", str(t["member_adds"]))
    summary.add_row("members to remove", "", str(t["member_removes"]))
    summary.add_row("[bold]directory writes[/bold]", "", f"[bold]{t['changes']}[/bold]")
    console.print(summary)

    if plan.accounts:
        table = Table(title="Accounts", header_style="bold")
        for col in ("kind", "action", "account", "e-mail", "attributes: LDAP → wanted"):
            table.add_column(col, overflow="fold")
        for a in plan.accounts[:SHOWN]:
            attrs = "\n".join(f"{name}: {_values(have)} → {_values(want)}" for name, (have, want) in a.attributes.items())
            table.add_row(a.kind, a.action, a.account_id, a.email or "", attrs or (a.note or ""))
        console.print(table)
        if len(plan.accounts) > SHOWN:
            console.print(f"… and {len(plan.accounts) - SHOWN} more accounts (--json lists them all)")

    if plan.groups:
        table = Table(title="Groups", header_style="bold")
        for col in ("group", "role", "ownership", "members", "wanted", "add", "remove", "kept (not ours)"):
            table.add_column(col, justify="right" if col in ("members", "wanted", "add", "remove",
                                                             "kept (not ours)") else "left")
        for g in plan.groups[:SHOWN]:
            table.add_row(g.group + (" [red](missing)[/red]" if g.missing else ""), g.role_key, g.ownership,
                          str(g.current), str(g.desired), f"+{len(g.add)}", f"-{len(g.remove)}",
                          str(g.kept_foreign) if g.ownership == "shared" else "")
        console.print(table)
        if len(plan.groups) > SHOWN:
            console.print(f"… and {len(plan.groups) - SHOWN} more groups (--json lists them all)")

    if not outcome.verdict.ok:
        style = "bold red" if outcome.refused or not outcome.verdict.forceable else "yellow"
        hint = "" if not outcome.verdict.forceable else (
            " (applied: --force)" if outcome.applied else " — run again with --force to apply it")
        console.print(f"[{style}]guard: {outcome.verdict.reason}{hint}[/{style}]")
    if outcome.applied:
        r = outcome.applied
        console.print(f"written: {r.groups_created} groups created, {r.accounts_created} accounts created, "
                      f"{r.accounts_updated} updated, {r.accounts_disabled} disabled, +{r.members_added} / "
                      f"-{r.members_removed} members; {r.skipped} skipped (the database changed meanwhile)")
        for e in r.errors[:SHOWN]:
            console.print(f"[red]error: {e}[/red]")
    seconds = sum(plan.seconds.values())
    console.print(f"took {seconds:.1f} s" + (f" (run {outcome.run_id})" if outcome.run_id else ""))
