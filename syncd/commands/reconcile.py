"""``syncd reconcile``, ``syncd replay``, ``syncd adopt`` (``syncd.reconcile``).

    syncd reconcile [--dry-run] [--json] [--force] [--account ID_OR_EMAIL | --group ROLE_KEY | --since-last]
    syncd replay REQUEST_ID [--json]
    syncd adopt [--dry-run] [--json]

Exit codes (as ``syncd.cli``): 0 done (or nothing to do, or a dry run); 1 a guard refused the
plan, a write failed for good, or the request cannot be replayed; 3 a server is down.
"""

import json
import sys
from contextlib import nullcontext
from typing import Any

from syncd.commands import EXIT_PROBLEM


def add_commands(sub: Any) -> None:
    rc = sub.add_parser("reconcile", help="compare LDAP with the database and repair the drift (docs/reconcile.md)")
    rc.add_argument("--dry-run", action="store_true", help="show the plan, write nothing")
    rc.add_argument("--json", action="store_true", help="the whole plan as JSON on stdout")
    rc.add_argument("--force", action="store_true", help="apply a plan larger than the guards allow")
    target = rc.add_mutually_exclusive_group()
    target.add_argument("--account", metavar="ID_OR_EMAIL", help="this account only (its entry and groups)")
    target.add_argument("--group", metavar="ROLE_KEY", help="this role's group only")
    target.add_argument("--since-last", action="store_true",
                        help="only what changed in the directory since the last run (a full run if none)")
    rc.set_defaults(handler=_reconcile)

    rp = sub.add_parser("replay", help="write one accepted request to LDAP again (idempotent)")
    rp.add_argument("request_id", type=int)
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(handler=_replay)

    ad = sub.add_parser("adopt", help="record the accounts, memberships and correspondents LDAP already holds "
                                      "as desired state; removes nothing")
    ad.add_argument("--dry-run", action="store_true", help="report what would be recorded, record nothing")
    ad.add_argument("--json", action="store_true")
    ad.set_defaults(handler=_adopt)


def _console() -> Any:
    from rich.console import Console
    console = Console(highlight=False)
    if not console.is_terminal:         # a pipe or a file: wide enough for the tables, no colours
        console = Console(highlight=False, width=140, no_color=True)
    return console


def _progress(console: Any, args: Any) -> Any:
    """Rich's progress bars on a terminal (none with --json, or on a pipe): a context manager."""
    from syncd.reconcile.render import RichProgress
    return RichProgress(console) if console.is_terminal and not args.json else nullcontext()


def _reconcile(args: Any, rt: Any) -> int:
    from syncd.reconcile.config import config_from
    from syncd.reconcile.render import print_outcome
    from syncd.reconcile.service import run_reconcile

    config = config_from(rt.settings)
    console = _console()
    with _progress(console, args) as progress:
        outcome = run_reconcile(rt, config, dry_run=args.dry_run, force=args.force, account=args.account,
                                group=args.group, since_last=args.since_last, progress=progress)
    if args.json:
        print(json.dumps(outcome.to_json(), indent=2, ensure_ascii=False, default=str))
    else:
        print_outcome(outcome, console)
    if outcome.refused or (outcome.applied and outcome.applied.errors):
        return EXIT_PROBLEM
    return 0


def _replay(args: Any, rt: Any) -> int:
    from syncd.reconcile.replay import replay

    result = replay(rt, args.request_id)
    print(json.dumps(result.to_json(), indent=2) if args.json else result.describe())
    return 0


def _adopt(args: Any, rt: Any) -> int:
    from rich.table import Table

    from syncd.reconcile.adopt import adopt

    console = _console()
    with _progress(console, args) as progress:
        report = adopt(rt, dry_run=args.dry_run, progress=progress)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        return 0
    verb = "would be recorded" if report.dry_run else "recorded"
    table = Table(title=f"Adopting the directory ({'dry run: nothing recorded' if report.dry_run else 'done'})",
                  header_style="bold")
    table.add_column("")
    table.add_column(verb, justify="right")
    table.add_column("already known", justify="right")
    table.add_row("accounts", str(report.accounts_adopted), str(report.accounts_known))
    table.add_row("memberships (exclusive groups)", str(report.memberships_adopted), str(report.memberships_known))
    table.add_row("correspondents", str(report.correspondents_adopted), str(report.correspondents_known))
    table.add_row("members of shared groups, left to their owners", str(report.shared_members_left), "")
    console.print(table)
    if report.skipped_by_reason:
        skipped = Table(title="Left alone (did not match the mappings)", header_style="bold")
        skipped.add_column("why")
        skipped.add_column("how many", justify="right")
        for reason, count in report.skipped_by_reason.most_common():
            skipped.add_row(reason, str(count))
        console.print(skipped)
        for item in report.skipped[:20]:
            console.print(f"  {item['what']} {item['name']}: {item['reason']}")
        if len(report.skipped) > 20:
            console.print(f"  … (--json lists up to {len(report.skipped)})")
    for label, items in (("organisations in LDAP, not in the mappings", report.organisations_unknown),
                         ("groups in LDAP, not in the mappings", report.groups_unknown),
                         ("role groups missing in LDAP (provisioning creates them)", report.groups_missing)):
        if items:
            console.print(f"{label}: {', '.join(items[:20])}" + (" …" if len(items) > 20 else ""))
    console.print("nothing was removed, in LDAP or in the database")
    sys.stdout.flush()
    return 0
