"""``syncd demo``: a private slapd and SQLite under ./var, sample data, the daemon (``syncd.demo``)."""

import sys

from syncd.commands import EXIT_PROBLEM


def add_commands(sub) -> None:
    demo = sub.add_parser("demo", help="a private slapd + SQLite under ./var, sample data, the daemon")
    demo.add_argument("--var", default="var", help="folder for the demo's slapd, database and config")
    demo.add_argument("--exit-after-scenario", action="store_true", help="stop once the sample request is in LDAP")
    demo.set_defaults(handler=run_demo, runtime=False)


def run_demo(args) -> int:
    from syncd.demo import run_demo
    from syncd.devslapd import DevSlapdError
    try:
        return run_demo(var=args.var, exit_after_scenario=args.exit_after_scenario)
    except DevSlapdError as exc:   # no slapd, or no template to configure it: say which, no traceback
        print(f"syncd demo cannot start its OpenLDAP server: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
