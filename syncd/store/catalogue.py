"""The catalogue with its padlocks (the guide's « Demander de nouvelles habilitations »): every
application and role of the mappings, and for one person each role's state.

A read like ``syncd.store.queries``: no write, no lock. The states, checked in this order:

* ``held``          the person holds the role (a membership not revoked, not expired): no padlock;
* ``requested``     a request for it is open (``new``, ``pending`` or ``awaiting_decider``, parked
                    or not): the portal shows its status instead of the button;
* ``not_available`` the role is ``internal_only`` and the account is external: intake would
                    reject the request, so the portal offers none;
* ``may_request``   the padlock: « demander l'accès à l'application ».
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Connection, RowMapping

from syncd.core.model import Account, MembershipState, RequestKind, Status
from syncd.mappings import Mappings
from syncd.store.repo import aware
from syncd.store.tables import memberships, requests

OPEN = (Status.NEW.value, Status.PENDING.value, Status.AWAITING_DECIDER.value)
STATE_LABELS = {MembershipState.HELD: "Habilitation accordée", "may_request": "Vous pouvez demander l'accès",
                "not_available": "Réservée aux salariés de l'Institution"}


@dataclass(frozen=True)
class RoleState:
    state: str
    request: RowMapping | None = None
    expires_at: datetime | None = None


def role_states(conn: Connection, account: Account, mappings: Mappings, now: datetime) -> dict[str, RoleState]:
    """Role key -> the person's state for it, for every role of the mappings."""
    held = {m.role_key: aware(m.expires_at) for m in conn.execute(
        select(memberships.c.role_key, memberships.c.expires_at).where(
            memberships.c.account_id == account.id, memberships.c.revoked_at.is_(None),
            or_(memberships.c.expires_at.is_(None), memberships.c.expires_at > now)))}
    # Before intake a row has no account id yet: the portal wrote the e-mail only.
    open_requests: dict[str, Any] = {}
    for r in conn.execute(select(requests.c.id, requests.c.role_key, requests.c.status, requests.c.parked_at)
                          .where(requests.c.kind.in_((RequestKind.HABILITATION.value, RequestKind.RENEWAL.value)),
                                 requests.c.status.in_(OPEN),
                                 or_(requests.c.account_id == account.id,
                                     func.lower(requests.c.email) == account.email.lower()))
                          .order_by(requests.c.submitted_at.desc(), requests.c.id.desc())).mappings():
        open_requests.setdefault(r["role_key"], r)
    states = {}
    for app in mappings.applications:
        for role in app.roles:
            if role.key in held:
                states[role.key] = RoleState(MembershipState.HELD.value, expires_at=held[role.key])
            elif role.key in open_requests:
                states[role.key] = RoleState("requested", request=open_requests[role.key])
            elif role.restriction == "internal_only" and not account.internal:
                states[role.key] = RoleState("not_available")
            else:
                states[role.key] = RoleState("may_request")
    return states
