"""Who decides a request: the requester organisation's correspondents, or the central administrators.

Rules (seed guide): account creation and ``local`` roles go to the local correspondents of the
requester's primary organisation; ``central`` roles go to the central administrators, and so does
everything from an organisation with no correspondent. Nobody decides their own request, so the
requester is never among the deciders.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from syncd.core.model import Decider, DeciderScope, Management, RequestKind


class RouteReason(str, enum.Enum):
    LOCAL = "local"                      # the organisation's correspondents decide
    CENTRALLY_MANAGED = "central_managed"  # the role is managed centrally
    NO_CORRESPONDENT = "no_correspondent"  # fallback: the organisation has none (besides the requester)


@dataclass(frozen=True)
class Route:
    deciders: tuple[Decider, ...]
    reason: RouteReason

    @property
    def decider_ids(self) -> frozenset[str]:
        return frozenset(d.account_id for d in self.deciders)


def route(
    *,
    kind: RequestKind,
    management: Management | None,
    organisation_code: str,
    requester_account_id: str | None,
    deciders: tuple[Decider, ...] | list[Decider],
) -> Route:
    """Pick the deciders of one request among every known decider.

    ``management`` is the role's management (ignored for account requests, which are local).
    An empty ``deciders`` in the result means nobody can decide: the tacit clock still runs.
    """
    def eligible(d: Decider) -> bool:
        return d.account_id != requester_account_id

    central = tuple(sorted((d for d in deciders if d.scope is DeciderScope.CENTRAL and eligible(d)),
                           key=lambda d: d.account_id))
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


def may_decide(route_now: Route, decider_account_id: str) -> bool:
    """Authorisation is checked against routing computed from *current* data, not the old routing."""
    return decider_account_id in route_now.decider_ids
