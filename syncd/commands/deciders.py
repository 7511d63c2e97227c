"""``syncd decider add|remove``: correspondents of an organisation and central administrators."""


def add_commands(sub) -> None:
    dcd = sub.add_parser("decider", help="correspondents and central administrators").add_subparsers(
        dest="decider_command", required=True)
    for name in ("add", "remove"):
        d = dcd.add_parser(name)
        d.add_argument("email")
        scope = d.add_mutually_exclusive_group(required=True)
        scope.add_argument("--organisation", help="correspondent of this organisation")
        scope.add_argument("--central", action="store_true", help="central administrator")
        d.set_defaults(handler=change, remove=name == "remove")


def change(args, rt) -> int:
    from syncd import operator
    (operator.remove_decider if args.remove else operator.add_decider)(
        rt, args.email, None if args.central else args.organisation)
    print("done")
    return 0
