"""Who decides a request: the requester organisation's correspondents, or the central administrators.

Rules (seed guide): account creation and ``local`` roles go to the local correspondents of the
requester's primary organisation; ``central`` roles go to the central administrators, and so does
everything from an organisation with no correspondent. Nobody decides their own request, so the
requester is never among the deciders. A request that is never accepted tacitly (an external
account) and whose deadline has passed is escalated: it goes to the central administrators.

A route with no decider means nobody can decide the request: it waits in ``awaiting_decider``
(``waiting_status``), never accepted tacitly, until the ``reroute`` job finds someone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from syncd.core.model import Decider, DeciderScope, Management, RequestKind, Status


class RouteReason(str, enum.Enum):
    LOCAL = "local"                      # the organisation's correspondents decide
    CENTRALLY_MANAGED = "central_managed"  # the role is managed centrally
    NO_CORRESPONDENT = "no_correspondent"  # fallback: the organisation has none (besides the requester)
    ESCALATED = "escalated"              # not decided by its deadline and never tacit: the central administrators


@dataclass(frozen=True)
class Route:
    deciders: tuple[Decider, ...]
    reason: RouteReason

    @property
    def decider_ids(self) -> frozenset[str]:
        return frozenset(d.account_id for d in self.deciders)

    @property
    def waiting_status(self) -> Status:
        """The status of an undecided request with this route: nobody to decide it, it waits."""
        return Status.PENDING if self.deciders else Status.AWAITING_DECIDER


def route(
    *,
    kind: RequestKind,
    management: Management | None,
    organisation_code: str,
    requester_account_id: str | None,
    deciders: tuple[Decider, ...] | list[Decider],
    escalated: bool = False,
) -> Route:
    """Pick the deciders of one request among every known decider.

    ``management`` is the role's management (ignored for account requests, which are local).
    ``escalated`` (``lifecycle.is_escalated``): the central administrators decide, whoever did.
    An empty ``deciders`` in the result means nobody can decide: the request waits.
    """
    def eligible(d: Decider) -> bool:
        return d.account_id != requester_account_id

    central = tuple(sorted((d for d in deciders if d.scope is DeciderScope.CENTRAL and eligible(d)),
                           key=lambda d: d.account_id))
    if escalated:
        return Route(central, RouteReason.ESCALATED)
    if kind is not RequestKind.ACCOUNT and management is Management.CENTRAL:
        return Route(central, RouteReason.CENTRALLY_MANAGED)
    local = tuple(sorted(
        (d for d in deciders
         if d.scope is DeciderScope.CORRESPONDENT and d.organisation_code == organisation_code and eligible(d)),
        key=lambda d: d.account_id,
    ))
    if local:
        return Route(local, RouteReason.LOCAL)
    return Route(central, RouteReason.NO_CORRESPONDENT)


def withdrawal_refusal(*, management: Management, organisation_code: str, holder_account_id: str,
                       actor_account_id: str | None, deciders: tuple[Decider, ...] | list[Decider]) -> str | None:
    """Why ``actor`` may not withdraw a right of the holder (a stable code), or None when they may.

    A central administrator may withdraw any role; a correspondent of the holder's organisation,
    a locally managed one. Nobody withdraws their own (as nobody decides their own request).
    """
    if actor_account_id is None:
        return "not_authorised"
    if actor_account_id == holder_account_id:
        return "own_request"
    for d in deciders:
        if d.account_id != actor_account_id:
            continue
        if d.scope is DeciderScope.CENTRAL:
            return None
        if management is Management.LOCAL and d.organisation_code == organisation_code:
            return None
    return "not_authorised"


def withdrawn_on_mobility(held: dict[str, Management]) -> list[str]:
    """The rights a person loses by moving to another organisation: role key → management in,
    the locally managed ones out (sorted). The old organisation's correspondents granted those,
    and nobody there may look after them once the person has left; a centrally managed role does
    not depend on the organisation, so it stays."""
    return sorted(key for key, management in held.items() if management is Management.LOCAL)
