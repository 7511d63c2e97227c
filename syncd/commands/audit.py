"""``syncd audit export|verify``: the audit trail as JSON lines, or its hash chain checked."""

import sys


def add_commands(sub) -> None:
    trail = sub.add_parser("audit", help="the audit trail: export it as JSON lines, or verify its hash chain")
    trail.add_argument("action", choices=("export", "verify"))
    trail.add_argument("--since", type=int, default=0, metavar="SEQ",
                       help="export the sealed rows after this chain position (the last exported row's seq)")
    trail.add_argument("--no-seal", action="store_true",
                       help="do not seal waiting rows first (for a read-only database role)")
    trail.set_defaults(handler=audit_trail)


def audit_trail(args, rt) -> int:
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
