"""``syncd decide`` and ``syncd submit``: a decider's verdict, and a request written as the portal does."""


def add_commands(sub) -> None:
    dec = sub.add_parser("decide", help="accept or refuse a pending request as a decider")
    dec.add_argument("request_id", type=int)
    verdict = dec.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--accept", action="store_true")
    verdict.add_argument("--refuse", action="store_true")
    dec.add_argument("--as", dest="decider", required=True, help="decider's e-mail or account id")
    dec.add_argument("--comment")
    dec.set_defaults(handler=decide)

    sbm = sub.add_parser("submit", help="write a request into the queue table, as the portal does")
    h = sbm.add_subparsers(dest="submit_command", required=True).add_parser("habilitation")
    h.add_argument("email")
    h.add_argument("role_key")
    h.set_defaults(handler=submit_habilitation)


def decide(args, rt) -> int:
    from syncd.core.model import Verdict
    from syncd.jobs.decisions import decide_request
    t = decide_request(rt, args.request_id, args.decider, Verdict.ACCEPT if args.accept else Verdict.REFUSE,
                       args.comment, channel="cli")
    print(f"request {args.request_id}: {t.to_status.value}")
    return 0


def submit_habilitation(args, rt) -> int:
    from syncd import operator
    print(operator.submit_habilitation(rt, args.email, args.role_key))
    return 0
