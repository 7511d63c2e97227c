"""``syncd review``: open access review campaigns, and answer them from the command line.

The campaigns' rules are in ``syncd.core.reviews``, their use-cases in ``syncd.jobs.reviews``;
docs/operations.md ("Access reviews") says what an operator does with them.
"""

from __future__ import annotations

import json


def add_commands(sub) -> None:
    cmd = sub.add_parser("review", help="access review campaigns: open one, list and answer a reviewer's rights")
    actions = cmd.add_subparsers(dest="review_action", metavar="ACTION", required=True)
    start = actions.add_parser("start", help="open a campaign now (every organisation, or those named)")
    start.add_argument("--org", action="append", metavar="CODE", help="an organisation's code (repeatable)")
    listing = actions.add_parser("list", help="the rights a reviewer reviews in the campaigns under way")
    listing.add_argument("--as", dest="reviewer", required=True, help="the reviewer's e-mail or account id")
    listing.add_argument("--json", action="store_true")
    for name, text in (("confirm", "confirm rights under review"), ("withdraw", "withdraw rights under review")):
        answer = actions.add_parser(name, help=text)
        answer.add_argument("items", nargs="+", type=int, metavar="ID", help="review item ids (syncd review list)")
        answer.add_argument("--as", dest="reviewer", required=True, help="the reviewer's e-mail or account id")
        if name == "withdraw":
            answer.add_argument("--reason", required=True, help="French: it is mailed to each holder")


def dispatch(args, runtime_factory) -> int | None:
    if args.command != "review":
        return None
    from syncd.jobs import reviews
    rt = runtime_factory()
    try:
        if args.review_action == "start":
            for o in reviews.start(rt, args.org):
                state = (f"{o.rights} right(s), {o.reviewers} reviewer(s) mailed, ends {o.closes_at:%Y-%m-%d %H:%M} UTC"
                         if o.rights else "nothing to review (recorded, closed)")
                print(f"{o.organisation_code}: campaign {o.campaign_id}: {state}")
            return 0
        if args.review_action == "list":
            items = reviews.items_for(rt, args.reviewer)
            if args.json:
                print(json.dumps([vars(i) for i in items], indent=2, default=str, ensure_ascii=False))
                return 0
            for i in items:
                print(f"{i.id:6}  {i.organisation_code}  {i.holder_name} <{i.holder_email}>  {i.role_label}  "
                      f"{i.decision or 'to answer by ' + f'{i.closes_at:%Y-%m-%d %H:%M}'}")
            print(f"{len(items)} right(s)")
            return 0
        if args.review_action == "confirm":
            done = reviews.confirm(rt, args.items, args.reviewer)
        else:
            done = reviews.withdraw(rt, args.items, args.reviewer, args.reason)
        print(f"{len(done)} right(s) {'confirmed' if args.review_action == 'confirm' else 'withdrawn'}")
        return 0
    finally:
        rt.close()
