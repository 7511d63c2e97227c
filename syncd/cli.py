"""The ``syncd`` command: check-config, db upgrade, run, once, status, demo and operator actions.

Exit codes: 0 success, 1 a problem the operator must fix (invalid config, refused action),
2 bad usage, 3 a temporary failure (a server down): retrying later may work.
"""

from __future__ import annotations

import argparse
import json
import sys

from syncd.errors import ConfigError, DecisionRefused, PermanentError, SyncdError, TemporaryError

EXIT_PROBLEM, EXIT_USAGE, EXIT_TEMPORARY = 1, 2, 3

# Command groups that live next to their use-case. Each module has ``add_commands(sub)`` and
# ``dispatch(args, runtime_factory) -> int | None`` (None: not one of its commands).
EXTENSIONS = ("syncd.lifecycle_commands", "syncd.plan_commands", "syncd.web.commands", "syncd.reconcile.commands",
              "syncd.outbox_commands", "syncd.parked_commands", "syncd.desk_commands", "syncd.review_commands")


def _extensions():
    import importlib
    return [importlib.import_module(name) for name in EXTENSIONS]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="syncd", description=__doc__.splitlines()[0])
    p.add_argument("-c", "--config", help="config file (default: $SYNCD_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("check-config", help="validate the settings and the mappings, print every problem")
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply the SQL migrations")
    sub.add_parser("run", help="run the daemon until SIGTERM/SIGINT")
    sub.add_parser("once", help="run every job once, then exit")
    st = sub.add_parser("status", help="requests per status, oldest pending request, job health")
    st.add_argument("--json", action="store_true")

    demo = sub.add_parser("demo", help="a private slapd + SQLite under ./var, sample data, the daemon")
    demo.add_argument("--var", default="var", help="folder for the demo's slapd, database and config")
    demo.add_argument("--exit-after-scenario", action="store_true", help="stop once the sample request is in LDAP")

    dec = sub.add_parser("decide", help="accept or refuse a pending request as a decider")
    dec.add_argument("request_id", type=int)
    verdict = dec.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--accept", action="store_true")
    verdict.add_argument("--refuse", action="store_true")
    dec.add_argument("--as", dest="decider", required=True, help="decider's e-mail or account id")
    dec.add_argument("--comment")

    acc = sub.add_parser("account", help="operator actions on accounts").add_subparsers(dest="account_command",
                                                                                       required=True)
    add = acc.add_parser("add", help="create an active account directly (bootstrap: deciders, imports)")
    add.add_argument("email")
    add.add_argument("--given-name", required=True)
    add.add_argument("--family-name", required=True)
    add.add_argument("--organisation", required=True)
    add.add_argument("--external", action="store_true", help="not an employee of the institution")
    add.add_argument("--director", action="store_true", help="data owned by the directors' referential")

    unl = sub.add_parser("unlock", help="clear the directory's lockout of an account after bad passwords (AD)")
    unl.add_argument("email")

    dcd = sub.add_parser("decider", help="correspondents and central administrators").add_subparsers(
        dest="decider_command", required=True)
    for name in ("add", "remove"):
        d = dcd.add_parser(name)
        d.add_argument("email")
        scope = d.add_mutually_exclusive_group(required=True)
        scope.add_argument("--organisation", help="correspondent of this organisation")
        scope.add_argument("--central", action="store_true", help="central administrator")

    sbm = sub.add_parser("submit", help="write a request into the queue table, as the portal does")
    sbm_sub = sbm.add_subparsers(dest="submit_command", required=True)
    h = sbm_sub.add_parser("habilitation")
    h.add_argument("email")
    h.add_argument("role_key")
    for extension in _extensions():
        extension.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
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


def _load(args, *, for_daemon: bool = False):
    """Settings, logging, mappings, database: everything validated before anything runs."""
    from syncd.logs import configure_logging
    from syncd.mappings import load_mappings
    from syncd.settings import load_settings

    settings = load_settings(args.config)
    configure_logging(settings.log.level, settings.log.format)
    mappings = load_mappings(settings.resolve(settings.mappings))
    return settings, mappings


def _runtime(args, *, require_schema: bool = True):
    from syncd.jobs.runtime import Runtime, default_worker_id
    from syncd.store.db import make_engine
    from syncd.store.migrate import is_up_to_date

    settings, mappings = _load(args)
    engine = make_engine(settings.database_url, echo=settings.database.echo, pool_size=settings.database.pool_size)
    if require_schema and not is_up_to_date(settings.database_url):
        raise ConfigError("the database schema is not up to date: run `syncd db upgrade` first")
    return Runtime(settings, mappings, engine, worker_id=settings.worker_id or default_worker_id())


def _dispatch(args) -> int:
    cmd = args.command
    if cmd == "check-config":
        settings, mappings = _load(args)
        roles = sum(len(a.roles) for a in mappings.applications)
        print(f"configuration valid: {len(mappings.applications)} applications, {roles} roles, "
              f"{len(mappings.organisations)} organisations")
        from syncd import operator
        print(operator.UPGRADE_NOTE)
        if (warning := operator.decider_warning(settings)) is not None:
            print(warning, file=sys.stderr)
        return 0
    if cmd == "db":
        from syncd.store.migrate import upgrade
        settings, _ = _load(args)
        upgrade(settings.database_url)
        print("database schema up to date")
        return 0
    if cmd == "demo":
        from syncd.demo import run_demo
        from syncd.devslapd import DevSlapdError
        try:
            return run_demo(var=args.var, exit_after_scenario=args.exit_after_scenario)
        except DevSlapdError as exc:   # no slapd, or no template to configure it: say which, no traceback
            print(f"syncd demo cannot start its OpenLDAP server: {exc}", file=sys.stderr)
            return EXIT_PROBLEM
    for extension in _extensions():
        code = extension.dispatch(args, lambda: _runtime(args))
        if code is not None:
            return code
    rt = _runtime(args)
    try:
        return _dispatch_runtime(args, rt)
    finally:
        rt.close()


def _dispatch_runtime(args, rt) -> int:
    from syncd import operator
    cmd = args.command
    if cmd in ("run", "once"):
        from syncd.daemon import Daemon
        daemon = Daemon(rt)
        if cmd == "once":
            results = daemon.run_once()
            failed = [name for name, count in results.items() if count is None]
            for name, count in results.items():
                print(f"{name:10} {'failed' if count is None else count}")
            return EXIT_TEMPORARY if failed else 0
        daemon.run_forever()
        return 0
    if cmd == "status":
        report = operator.status_report(rt)
        print(json.dumps(report, indent=2, default=str) if args.json else operator.format_status(report))
        return 0
    if cmd == "decide":
        from syncd.core.model import Verdict
        from syncd.jobs.decisions import decide_request
        t = decide_request(rt, args.request_id, args.decider, Verdict.ACCEPT if args.accept else Verdict.REFUSE,
                           args.comment, channel="cli")
        print(f"request {args.request_id}: {t.to_status.value}")
        return 0
    if cmd == "account":
        account_id = operator.add_account(rt, args.email, args.given_name, args.family_name, args.organisation,
                                          internal=not args.external, director=args.director)
        print(account_id)
        return 0
    if cmd == "unlock":
        print("unlocked" if operator.unlock_account(rt, args.email) else "was not locked")
        return 0
    if cmd == "decider":
        change = operator.add_decider if args.decider_command == "add" else operator.remove_decider
        change(rt, args.email, None if args.central else args.organisation)
        print("done")
        return 0
    if cmd == "submit":
        request_id = operator.submit_habilitation(rt, args.email, args.role_key)
        print(request_id)
        return 0
    raise AssertionError(cmd)


if __name__ == "__main__":
    sys.exit(main())
