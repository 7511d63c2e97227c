"""``syncd outbox``: the mails given up on, listed and sent again (see ``syncd.store.outbox``)."""

from __future__ import annotations

import sys


def add_commands(sub) -> None:
    mail = sub.add_parser("outbox", help="mails given up on: list them, or queue them again")
    actions = mail.add_subparsers(dest="outbox_action", metavar="ACTION", required=True)
    actions.add_parser("failed", help="list the mails given up on, newest first, with why")
    retry = actions.add_parser("retry", help="queue failed mails again, their tries counted from zero")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", type=int, default=[], metavar="ID", help="outbox ids")
    which.add_argument("--all-failed", action="store_true", help="every mail given up on")


def dispatch(args, runtime_factory) -> int | None:
    if args.command != "outbox":
        return None
    from syncd.store import outbox
    from syncd.store.db import transaction
    rt = runtime_factory()
    try:
        if args.outbox_action == "failed":
            with transaction(rt.engine, readonly=True) as conn:
                rows = outbox.failed(conn)
            for r in rows:
                note = "" if r["resendable"] else (
                    "  (its content was erased after smtp.keep_content_days: it cannot be sent again)"
                    if r["content_erased_at"] else "  (its link was erased: the person needs a new one)")
                print(f"{r['id']:>8}  {r['created_at']:%Y-%m-%d %H:%M}  {r['template']:<28} {r['recipient']}  "
                      f"after {r['attempts']} tries: {r['last_error']}{note}")
            print(f"{len(rows)} failed mails" + (" (the newest 100)" if len(rows) == 100 else ""))
            return 0
        if not args.all_failed and not args.ids:
            print("name the outbox ids to retry, or --all-failed", file=sys.stderr)
            return 2
        with transaction(rt.engine) as conn:
            again, left = outbox.retry_failed(conn, None if args.all_failed else args.ids, rt.clock())
        print(f"{len(again)} mails queued again")
        if left:
            print(f"left failed, their link or content erased (they cannot be sent again): {', '.join(map(str, left))}")
        not_failed = sorted(set(args.ids) - set(again) - set(left))
        if not_failed:
            print(f"not failed mails, nothing done: {', '.join(map(str, not_failed))}", file=sys.stderr)
            return 1
        return 0
    finally:
        rt.close()
