"""``syncd run``, ``syncd once`` and ``syncd status``: the daemon, and what it has done."""

import json

from syncd.commands import EXIT_TEMPORARY


def add_commands(sub) -> None:
    sub.add_parser("run", help="run the daemon until SIGTERM/SIGINT").set_defaults(handler=run)
    sub.add_parser("once", help="run every job once, then exit").set_defaults(handler=once)
    st = sub.add_parser("status", help="requests per status, oldest pending request, job health")
    st.add_argument("--json", action="store_true")
    st.set_defaults(handler=status)


def run(args, rt) -> int:
    from syncd.daemon import Daemon
    Daemon(rt).run_forever()
    return 0


def once(args, rt) -> int:
    from syncd.daemon import Daemon
    results = Daemon(rt).run_once()
    for name, count in results.items():
        print(f"{name:10} {'failed' if count is None else count}")
    return EXIT_TEMPORARY if None in results.values() else 0


def status(args, rt) -> int:
    from syncd import operator
    report = operator.status_report(rt)
    print(json.dumps(report, indent=2, default=str) if args.json else operator.format_status(report))
    return 0
