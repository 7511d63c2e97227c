"""``syncd account add``, ``unlock``, ``revoke``, ``disable``, ``enable``, ``profile``, ``password-reset``:
accounts and their habilitations over time (see ``syncd.jobs.habilitations``)."""

import json


def add_commands(sub) -> None:
    acc = sub.add_parser("account", help="operator actions on accounts").add_subparsers(dest="account_command",
                                                                                       required=True)
    add = acc.add_parser("add", help="create an active account directly (bootstrap: deciders, imports)")
    add.add_argument("email")
    add.add_argument("--given-name", required=True)
    add.add_argument("--family-name", required=True)
    add.add_argument("--organisation", required=True)
    add.add_argument("--external", action="store_true", help="not an employee of the institution")
    add.add_argument("--director", action="store_true", help="data owned by the directors' referential")
    add.set_defaults(handler=add_account)

    unl = sub.add_parser("unlock", help="clear the directory's lockout of an account after bad passwords (AD)")
    unl.add_argument("email")
    unl.set_defaults(handler=unlock)

    revoke = sub.add_parser("revoke", help="withdraw one habilitation, as a correspondent or administrator")
    revoke.add_argument("account", help="account e-mail or id")
    revoke.add_argument("role_key")
    revoke.add_argument("--as", dest="actor", required=True, help="decider's e-mail or account id")
    revoke.add_argument("--reason")
    revoke.set_defaults(handler=revoke_habilitation)
    for name, status, text in (("disable", "disabled", "disable an account: every membership is removed, history kept"),
                               ("enable", "active", "re-enable a disabled account (its habilitations are not restored)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("account", help="account e-mail or id")
        p.set_defaults(handler=set_status, status=status)
    profile = sub.add_parser("profile", help="change profile fields (mes coordonnées)")
    profile.add_argument("account", help="account e-mail or id")
    profile.add_argument("--set", dest="changes", action="append", default=[], metavar="FIELD=VALUE", required=True)
    profile.set_defaults(handler=update_profile)
    reset = sub.add_parser("password-reset", help="e-mail a single-use link to set a new password")
    reset.add_argument("email")
    reset.set_defaults(handler=password_reset)


def add_account(args, rt) -> int:
    from syncd import operator
    print(operator.add_account(rt, args.email, args.given_name, args.family_name, args.organisation,
                               internal=not args.external, director=args.director))
    return 0


def unlock(args, rt) -> int:
    from syncd import operator
    print("unlocked" if operator.unlock_account(rt, args.email) else "was not locked")
    return 0


def revoke_habilitation(args, rt) -> int:
    from syncd.jobs import habilitations
    habilitations.revoke(rt, args.account, args.role_key, args.actor, args.reason)
    print("done")
    return 0


def set_status(args, rt) -> int:
    from syncd.jobs import habilitations
    habilitations.set_account_status(rt, args.account, args.status)
    print("done")
    return 0


def update_profile(args, rt) -> int:
    from syncd.jobs import habilitations
    changes = dict(change.split("=", 1) for change in args.changes if "=" in change)
    print(json.dumps(habilitations.update_profile(rt, args.account, changes), ensure_ascii=False))
    return 0


def password_reset(args, rt) -> int:
    from syncd.jobs import passwords
    passwords.request_reset(rt, args.email)
    print("done")
    return 0
