"""``syncd desk``: the correspondents' desk links (docs/operations.md).

* ``syncd desk revoke EMAIL [--reason TEXT]``: every desk link issued to that decider until now,
  and every session opened with one, stops working in every web process (``desk_revocations``,
  and an audit row). The next daily digest brings a new link.
* ``syncd desk link EMAIL``: print a fresh personal desk link (for a decider who lost the
  digest); it expires after ``desk.link_days``. Needs ``web.signing_key``.
"""

from __future__ import annotations


def add_commands(sub) -> None:
    cmd = sub.add_parser("desk", help="the correspondents' desk links: revoke them, or print a fresh one")
    actions = cmd.add_subparsers(dest="desk_action", metavar="ACTION", required=True)
    revoke = actions.add_parser("revoke", help="revoke every desk link (and session) of a decider issued until now")
    revoke.add_argument("decider", help="the decider's e-mail or account id")
    revoke.add_argument("--reason", help="recorded with the revocation (audit trail)")
    revoke.set_defaults(handler=revoke_links)
    link = actions.add_parser("link", help="print a fresh personal desk link for a decider")
    link.add_argument("decider", help="the decider's e-mail or account id")
    link.set_defaults(handler=print_link)


def revoke_links(args, rt) -> int:
    from syncd.jobs import digest
    account_id = digest.revoke_links(rt, args.decider, args.reason)
    print(f"desk links of {account_id} revoked")
    return 0


def print_link(args, rt) -> int:
    from syncd.errors import ConfigError, PermanentError
    from syncd.mail import desk_links
    from syncd.store import repo
    from syncd.store.db import transaction
    with transaction(rt.engine, readonly=True) as conn:
        account = repo.find_account(conn, args.decider)
    if account is None:
        raise PermanentError(f"no account {args.decider!r}")
    try:
        print(desk_links.desk_url(rt.settings, account.id, rt.clock()))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return 0
