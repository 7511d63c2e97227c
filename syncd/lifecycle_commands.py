"""Command-line actions on accounts and habilitations over time (see ``syncd.jobs.habilitations``)."""

from __future__ import annotations

import json


def add_commands(sub) -> None:
    revoke = sub.add_parser("revoke", help="withdraw one habilitation, as a correspondent or administrator")
    revoke.add_argument("account", help="account e-mail or id")
    revoke.add_argument("role_key")
    revoke.add_argument("--as", dest="actor", required=True, help="decider's e-mail or account id")
    revoke.add_argument("--reason")
    for name, text in (("disable", "disable an account: every membership is removed, history kept"),
                       ("enable", "re-enable a disabled account (its habilitations are not restored)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("account", help="account e-mail or id")
    profile = sub.add_parser("profile", help="change profile fields (mes coordonnées)")
    profile.add_argument("account", help="account e-mail or id")
    profile.add_argument("--set", dest="changes", action="append", default=[], metavar="FIELD=VALUE", required=True)
    reset = sub.add_parser("password-reset", help="e-mail a single-use link to set a new password")
    reset.add_argument("email")
    trail = sub.add_parser("audit", help="the audit trail: export it as JSON lines, or verify its hash chain")
    trail.add_argument("action", choices=("export", "verify"))
    trail.add_argument("--since", type=int, default=0, metavar="SEQ",
                       help="export the sealed rows after this chain position (the last exported row's seq)")
    trail.add_argument("--no-seal", action="store_true",
                       help="do not seal waiting rows first (for a read-only database role)")


def dispatch(args, runtime_factory) -> int | None:
    if args.command not in ("revoke", "disable", "enable", "profile", "password-reset", "audit"):
        return None
    from syncd.jobs import habilitations, passwords
    rt = runtime_factory()
    try:
        if args.command == "audit":
            return _audit(rt, args)
        if args.command == "revoke":
            habilitations.revoke(rt, args.account, args.role_key, args.actor, args.reason)
        elif args.command in ("disable", "enable"):
            habilitations.set_account_status(rt, args.account, "disabled" if args.command == "disable" else "active")
        elif args.command == "profile":
            changes = dict(change.split("=", 1) for change in args.changes if "=" in change)
            print(json.dumps(habilitations.update_profile(rt, args.account, changes), ensure_ascii=False))
            return 0
        else:
            passwords.request_reset(rt, args.email)
        print("done")
        return 0
    finally:
        rt.close()


def _audit(rt, args) -> int:
    import sys

    from syncd.jobs.audit_seal import seal_audit
    from syncd.store import audit
    from syncd.store.db import transaction
    if not args.no_seal:
        seal_audit(rt)      # so that what was committed a moment ago is in the export and checked
    with transaction(rt.engine, readonly=True) as conn:
        if args.action == "export":
            for line in audit.export_json_lines(conn, args.since):
                sys.stdout.write(line + "\n")
            waiting = audit.unsealed(conn)
            if waiting:
                print(f"{waiting} rows wait for sealing and are not in this export", file=sys.stderr)
            return 0
        broken = audit.verify(conn)
        head = audit.head(conn)
        waiting = audit.unsealed(conn)
    if broken is None:
        sealed = f"{head[0]} rows sealed, head hash {head[1]}" if head else "no row sealed yet"
        print(f"audit trail intact: {sealed}; {waiting} waiting for sealing")
        return 0
    print(f"audit trail BROKEN at row {broken}: a row was changed or removed", file=sys.stderr)
    return 1
