"""The ``syncd`` command: check-config, db upgrade, run, once, status, demo and operator actions.

Exit codes: 0 success, 1 a problem the operator must fix (invalid config, refused action),
2 bad usage, 3 a temporary failure (a server down): retrying later may work. Each command lives
in ``syncd.commands``, one module per noun; this module builds the parser and maps errors to codes.
"""

from __future__ import annotations

import argparse
import sys

from syncd.commands import (EXIT_PROBLEM, EXIT_TEMPORARY, accounts, audit, config, daemon, db, deciders, demo, desk,
                            outbox, parked, plan, reconcile, requests, review, web)
from syncd.errors import ConfigError, DecisionRefused, PermanentError, SyncdError, TemporaryError

# In the order ``syncd --help`` lists their commands.
MODULES = (config, db, daemon, demo, requests, accounts, deciders, audit, plan, web, reconcile, outbox, parked, desk,
           review)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="syncd", description=__doc__.splitlines()[0])
    p.add_argument("-c", "--config", help="config file (default: $SYNCD_CONFIG)")
    p.set_defaults(runtime=True)        # the handler is given an open Runtime, unless its command says not
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in MODULES:
        module.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_PROBLEM
    except DecisionRefused as exc:
        print(f"refused ({exc.code}): {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except TemporaryError as exc:
        print(f"temporary failure, try again later: {exc}", file=sys.stderr)
        return EXIT_TEMPORARY
    except (PermanentError, SyncdError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PROBLEM


def _run(args: argparse.Namespace) -> int:
    if not args.runtime:
        return args.handler(args)
    from syncd.runtime import open_runtime
    rt = open_runtime(args.config)
    try:
        return args.handler(args, rt)
    finally:
        rt.close()


if __name__ == "__main__":
    sys.exit(main())
