"""The request state machine: which transitions exist and when a decision is refused.

    new ──intake──► pending ──accept──► accepted ──┐
     │                 │ ──refuse──► refused       ├─ applied (applied_at set; not a status)
     │                 └──deadline──► accepted_tacitly ┘
     │               ▲ │
     │      reroute  │ ▼ reroute (every decider left)
     ├──intake──► awaiting_decider (nobody can decide it: never tacit)
     └──invalid──► rejected

Tacit acceptance needs a decider's chance: only a request that reached a decider (its
``first_routed_at``) is accepted tacitly, and never an external account request
(``tacit_applies``); such a request past its deadline is escalated (``is_escalated``).

A terminal status never changes again: a late refusal does not revoke an accepted request
(revoking a habilitation is its own action on the membership). The one way out of one is an
operator's: a parked request (the directory refused its write for good) may be refused
(``PARKED_REFUSABLE``). The store writes no status the table does not allow (``sources``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from dateutil.relativedelta import relativedelta

from syncd.core.model import Decision, RequestKind, RequestView, Status, Verdict
from syncd.core.tacit import is_due
from syncd.errors import DecisionRefused

TACIT_DECIDER = "tacit"

ALLOWED: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.PENDING, Status.AWAITING_DECIDER, Status.REJECTED}),
    Status.PENDING: frozenset({Status.ACCEPTED, Status.ACCEPTED_TACITLY, Status.REFUSED, Status.AWAITING_DECIDER}),
    Status.AWAITING_DECIDER: frozenset({Status.PENDING, Status.REFUSED}),
    Status.ACCEPTED: frozenset(),
    Status.ACCEPTED_TACITLY: frozenset(),
    Status.REFUSED: frozenset(),
    Status.REJECTED: frozenset(),
}

# The statuses a parked request can have, from which an operator may refuse it (syncd parked refuse).
PARKED_REFUSABLE = frozenset({Status.NEW, Status.ACCEPTED, Status.ACCEPTED_TACITLY})

MAX_COMMENT_LENGTH = 2000

# Why a request in a status other than pending cannot be decided: the refusal's code and message.
UNDECIDABLE: dict[Status, tuple[str, str]] = {
    Status.ACCEPTED_TACITLY: ("already_tacitly_accepted", "The request was already accepted tacitly."),
    Status.ACCEPTED: ("already_decided", "The request was already decided (accepted)."),
    Status.REFUSED: ("already_decided", "The request was already decided (refused)."),
    Status.REJECTED: ("rejected", "The request was rejected at intake and cannot be decided."),
    Status.NEW: ("not_routed", "The request has not been routed to deciders yet."),
    Status.AWAITING_DECIDER: ("not_routed", "The request has not been routed to deciders yet."),
}


@dataclass(frozen=True)
class Transition:
    request_id: int
    from_status: Status
    to_status: Status
    event: str                 # the history event name: decided / tacitly_accepted / ...
    at: datetime
    decided_by: str | None = None
    comment: str | None = None


def sources(to_status: Status, *, parked: bool = False) -> frozenset[Status]:
    """The statuses from which a request may be written ``to_status``: those ``ALLOWED`` moves it
    from, and itself (staying put is no move); for a ``parked`` one being refused, ``PARKED_REFUSABLE``."""
    found = {s for s, targets in ALLOWED.items() if to_status in targets} | {to_status}
    return frozenset(found | (PARKED_REFUSABLE if parked and to_status is Status.REFUSED else set()))


def tacit_applies(request: RequestView, *, internal_accounts: bool = True) -> bool:
    """Whether the request may ever be accepted tacitly.

    Habilitations and renewals: always. Account requests: an internal account, while the policy
    allows it (``internal_account_tacit``, ``internal_accounts`` here); an external account never,
    since nobody would have looked at the person (a gmail address becomes an account).
    """
    return _tacit_applies(request.kind, request.internal, internal_accounts)


def _tacit_applies(kind: RequestKind, internal: bool | None, internal_accounts: bool) -> bool:
    if kind is not RequestKind.ACCOUNT:
        return True
    return internal_accounts and internal is True


def is_escalated(request: RequestView, *, now: datetime, internal_accounts: bool = True) -> bool:
    """A request that is never accepted tacitly and was not decided by its deadline: from then on
    the central administrators decide it (``routing.route(escalated=True)``)."""
    return not tacit_applies(request, internal_accounts=internal_accounts) and is_due(request.deadline_at, now)


def decide(request: RequestView, decision: Decision, *, now: datetime, authorised: bool,
           internal_accounts: bool = True) -> Transition:
    """Check one decision against the request as it is now; return the transition or refuse it.

    Order matters: who you are first (403), then whether the request can still be decided (409),
    then what you sent (400).
    """
    if request.account_id is not None and decision.decider_account_id == request.account_id:
        raise DecisionRefused("own_request", "Nobody may decide their own request.")
    if not authorised:
        raise DecisionRefused("not_authorised", "This decider may not decide this request.")
    if request.status in UNDECIDABLE:
        raise DecisionRefused(*UNDECIDABLE[request.status])
    if tacit_applies(request, internal_accounts=internal_accounts) and is_due(request.deadline_at, now):
        raise DecisionRefused(
            "deadline_passed", "The deadline has passed: the request is accepted tacitly."
        )
    comment = (decision.comment or "").strip() or None
    if decision.verdict is Verdict.REFUSE and comment is None:
        raise DecisionRefused("comment_required", "A refusal needs a comment.")
    if comment is not None and len(comment) > MAX_COMMENT_LENGTH:
        raise DecisionRefused("comment_too_long", f"A comment holds at most {MAX_COMMENT_LENGTH} characters.")
    to_status = Status.ACCEPTED if decision.verdict is Verdict.ACCEPT else Status.REFUSED
    return Transition(request.id, request.status, to_status, "decided", now, decision.decider_account_id, comment)


def tacit_acceptance(request: RequestView, *, now: datetime, internal_accounts: bool = True) -> Transition | None:
    """The transition to ``accepted_tacitly`` if the request's deadline has come, else None.

    None too for a request that never reached a decider, or that is never accepted tacitly.
    """
    move = _tacit_move(request.kind, request.status, request.internal, request.first_routed_at is not None,
                       now, internal_accounts)
    return move.of(request.id) if move is not None and is_due(request.deadline_at, now) else None


@dataclass(frozen=True)
class Move:
    """A transition as many requests make it together (a sweep's): ``Transition`` but the request."""
    from_status: Status
    to_status: Status
    event: str
    at: datetime
    decided_by: str | None = None
    comment: str | None = None

    def of(self, request_id: int) -> Transition:
        return Transition(request_id, self.from_status, self.to_status, self.event, self.at, self.decided_by,
                          self.comment)


class TacitCandidate(NamedTuple):
    """A request as the tacit sweep claims it, in plain values (a sweep reads thousands): what
    ``tacit_acceptance`` reads, and the membership an acceptance grants."""
    id: int
    kind: str                           # a RequestKind's value
    status: str                         # a Status's value
    internal: bool | None
    first_routed_at: datetime | None
    deadline_at: datetime | None
    account_id: str | None
    role_key: str | None


def tacit_acceptances(batch: Iterable[TacitCandidate], *, now: datetime,
                      internal_accounts: bool = True) -> dict[Move, list[TacitCandidate]]:
    """``tacit_acceptance`` over a batch: each move made, with the requests that make it, in the
    batch's order; a request the rule leaves is in none.

    The same rule, decided once per sort of request (kind, status, internal, reached a decider or
    not): all requests of one sort make the same move once due, so only the deadline is read for
    each (a sweep's thousands of habilitations are one sort).
    """
    out: dict[Move, list[TacitCandidate]] = {}
    making: dict[tuple, list[TacitCandidate] | None] = {}     # per sort: the list of its move, if any
    for c in batch:
        sort = (c.kind, c.status, c.internal, c.first_routed_at is not None)
        if sort not in making:
            move = _tacit_move(RequestKind(c.kind), Status(c.status), c.internal, sort[3], now, internal_accounts)
            making[sort] = None if move is None else out.setdefault(move, [])
        if (group := making[sort]) is not None and is_due(c.deadline_at, now):
            group.append(c)
    return {move: group for move, group in out.items() if group}


def _tacit_move(kind: RequestKind, status: Status, internal: bool | None, routed: bool, now: datetime,
                internal_accounts: bool) -> Move | None:
    """The move a request of this sort makes once due: to ``accepted_tacitly`` if it is pending,
    reached a decider and may be accepted tacitly at all."""
    if status is Status.PENDING and routed and _tacit_applies(kind, internal, internal_accounts):
        return Move(status, Status.ACCEPTED_TACITLY, "tacitly_accepted", now, TACIT_DECIDER)
    return None


def validity_end(kind: str, now: datetime, months: int | None, held_until: datetime | None,
                 held_revoked: bool) -> datetime | None:
    """When a habilitation granted now ends: ``months`` calendar months after it starts (None:
    it does not end).

    It starts now, except that a renewal of a habilitation still held (not revoked, with an end)
    starts at that end, if later: renewing early extends the validity, it never cuts it. Month
    arithmetic is the calendar's: 31 January + 1 month is 28 (or 29) February.
    """
    if not months:
        return None
    start = now
    if kind == RequestKind.RENEWAL and held_until is not None and not held_revoked:
        start = max(now, held_until)
    return start + relativedelta(months=months)
