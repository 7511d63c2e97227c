"""``syncd parked``: the items syncd gave up on for good, listed, retried after a fix, or resolved.

See ``syncd.jobs.parking`` for what parks an item and docs/operations.md for what to do.
"""

import json
import sys

from syncd.commands import EXIT_USAGE


def add_commands(sub) -> None:
    cmd = sub.add_parser("parked", help="items refused for good: list them, retry after a fix, or resolve one")
    actions = cmd.add_subparsers(dest="parked_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every parked request, account and membership, with why and since when")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=list_parked)
    retry = actions.add_parser("retry", help="put parked items back in line, their tries counted from zero")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("refs", nargs="*", default=[], metavar="ID",
                       help="request:ID (or ID), account:ID, membership:ACCOUNT:ROLE")
    which.add_argument("--all", action="store_true", help="every parked item")
    retry.set_defaults(handler=retry_parked)
    resolve = actions.add_parser("resolve", help="end one parked item without retrying it")
    resolve.add_argument("ref", metavar="ID")
    how = resolve.add_mutually_exclusive_group(required=True)
    how.add_argument("--refuse", action="store_true", help="a request: refuse it; the requester gets the reason")
    how.add_argument("--settled", action="store_true", help="a membership: LDAP was put right by hand")
    resolve.add_argument("--reason", required=True, help="for --refuse, French: it is mailed to the requester")
    resolve.set_defaults(handler=resolve_parked)


def list_parked(args, rt) -> int:
    from syncd.store import parked
    from syncd.store.db import transaction
    with transaction(rt.engine, readonly=True) as conn:
        items = parked.listing(conn)
    if args.json:
        print(json.dumps([vars(i) for i in items], indent=2, default=str, ensure_ascii=False))
        return 0
    for i in items:
        status = f" ({i.status})" if i.status else ""
        print(f"{i.ref}{status}  parked {i.parked_at:%Y-%m-%d %H:%M} after {i.attempts} tries: {i.reason}")
    print(f"{len(items)} parked items")
    return 0


def retry_parked(args, rt) -> int:
    from syncd.jobs import parking
    from syncd.store import parked
    if not args.all and not args.refs:
        print("name the items to retry, or --all", file=sys.stderr)
        return EXIT_USAGE
    done = parking.retry(rt, None if args.all else args.refs)
    print(f"{len(done)} items back in line")
    missing = sorted({parked.canonical(r) for r in args.refs} - set(done))
    if missing:
        print(f"not parked, nothing done: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


def resolve_parked(args, rt) -> int:
    from syncd.jobs import parking
    from syncd.store import parked
    kind, key = parked.parse_ref(args.ref)
    if kind == "accounts":
        print(f"an account write is resolved by fixing its cause (its values, or the LDAP entry), then "
              f"`syncd parked retry account:{key[0]}`", file=sys.stderr)
        return 1
    if args.refuse != (kind == "requests"):
        print("--refuse resolves a request, --settled a membership", file=sys.stderr)
        return EXIT_USAGE
    if kind == "requests":
        was = parking.refuse_request(rt, key[0], args.reason)
        print(f"request {key[0]} ({was}) refused; the requester is told why")
    else:
        parking.settle_membership(rt, args.ref, args.reason)
        print(f"{args.ref} recorded as settled by hand")
    return 0
