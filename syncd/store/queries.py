"""Read queries behind the portal's pages and the correspondents' web hook.

Pure reads over a SQLAlchemy ``Connection``: they never write, never take a lock, and return
frozen dataclasses in the vocabulary users see (the French labels of the portal's user guide).

* ``request_history``   - "Historique de vos demandes": Date / Description / Statut, newest first.
* ``rights_synthesis``  - "Liste de vos habilitations": the roles held now, grouped by application;
  ``ended_rights`` those held before and no more (« Retirée le … », « Expirée le … »).
* ``contacts``          - "Mes contacts": the local correspondents of the user's organisation.
* ``pending_for_decider`` - what one decider has to decide, sorted and filtered, one page at a time.
* ``request_detail``    - everything the decision page shows about one request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection, RowMapping

from syncd.core.model import STATUS_LABELS_FR, AccountStatus, MembershipState, RequestKind, Status
from syncd.mappings import Mappings
from syncd.store.repo import GRANTED_STATUSES, account_by_id, aware, routed_to
from syncd.store.tables import (accounts, deciders, memberships, organisations, request_deciders, request_events,
                                requests)

ACCOUNT_REQUEST_LABEL = "Création de compte"
RENEWAL_PREFIX = "Renouvellement - "
MOBILITY_PREFIX = "Changement d'organisme vers "
OTHER_APPLICATION_LABEL = "Autres habilitations"   # a role no longer in the mappings
MAX_PAGE_SIZE = 100
# An accepted request whose LDAP write is parked (docs/workflow.md, "Parked requests").
PARKED_ACCEPTED_LABEL = "En attente de traitement"

SortKey = Literal["deadline", "-deadline", "submitted", "-submitted"]
SORT_KEYS: tuple[str, ...] = ("deadline", "-deadline", "submitted", "-submitted")


# --- values returned (most of the API's bodies are made from them: syncd.web.schemas._out_of) ----

@dataclass(frozen=True)
class HistoryItem:
    """One line of "Historique de vos demandes"."""

    request_id: int
    kind: str
    date: datetime                      # when the request was submitted
    description: str                    # the role's label as users see it, or "Création de compte"
    status: str
    status_label: str                   # French, as the portal shows it
    role_key: str | None = None
    application_label: str | None = None
    deadline: datetime | None = None
    decided_at: datetime | None = None
    comment: str | None = None          # the decider's comment (a refusal's reason)
    reason: str | None = None           # why the request was rejected at intake
    applied_at: datetime | None = None  # when LDAP got it (accepted requests)
    parked: bool = False                # syncd failed to process it for good: an operator acts (syncd parked)
    ended: str | None = None            # the right it granted was since "revoked" or "expired" (ENDED_LABELS_FR)
    ended_at: datetime | None = None


@dataclass(frozen=True)
class GrantedRole:
    role_key: str
    label: str
    granted_at: datetime
    state: Literal["accepted", "applied"]   # applied: the membership is in LDAP
    accepted_tacitly: bool = False
    applied_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class EndedRole:
    """A habilitation the account held and no longer holds: withdrawn, or past its validity."""

    role_key: str
    label: str
    application_label: str
    status: str             # "revoked" or "expired"
    status_label: str       # « Retirée le 03/12/2026 », « Expirée le 03/12/2026 »
    ended_at: datetime
    granted_at: datetime


@dataclass(frozen=True)
class ApplicationRights:
    application_key: str | None
    application_label: str
    roles: tuple[GrantedRole, ...]


@dataclass(frozen=True)
class Contact:
    name: str
    email: str


@dataclass(frozen=True)
class Contacts:
    organisation_code: str | None
    organisation_name: str | None
    contacts: tuple[Contact, ...]
    central: bool = False     # True: the organisation has no correspondent, these are the central administrators


@dataclass(frozen=True)
class PendingItem:
    request_id: int
    kind: str
    description: str
    requester_name: str
    requester_email: str
    organisation_code: str | None
    role_key: str | None
    submitted_at: datetime
    deadline: datetime | None


@dataclass(frozen=True)
class PendingPage:
    items: tuple[PendingItem, ...]
    total: int
    page: int
    page_size: int


@dataclass(frozen=True)
class RequestDetail:
    """What the decision page shows: who asks for what, from where, since when, until when."""

    request_id: int
    kind: str
    status: str
    status_label: str
    description: str
    requester_name: str
    requester_email: str
    requester_account_id: str | None
    internal: bool | None
    organisation_code: str | None
    organisation_name: str | None
    role_key: str | None
    role_label: str | None
    application_label: str | None
    submitted_at: datetime
    deadline: datetime | None
    decided_at: datetime | None = None
    decided_by: str | None = None
    comment: str | None = None
    reason: str | None = None
    applied_at: datetime | None = None
    routed_to: tuple[str, ...] = field(default_factory=tuple)
    parked: bool = False


# --- labels ------------------------------------------------------------------------------------

def status_label(status: str, parked: bool = False) -> str:
    """The French label; an accepted request that is parked is not « Acceptée » before LDAP has it."""
    try:
        known = Status(status)
    except ValueError:
        return status
    return PARKED_ACCEPTED_LABEL if parked and known.is_accepted else STATUS_LABELS_FR[known]


# A right that ended: its own label and date, never the « Acceptée » of the request that granted it.
ENDED_LABELS_FR = {MembershipState.REVOKED: "Retirée le {}", MembershipState.EXPIRED: "Expirée le {}"}
_PARIS = ZoneInfo("Europe/Paris")


def ended_label(ended: str, at: datetime) -> str:
    return ENDED_LABELS_FR[ended].format(at.astimezone(_PARIS).strftime("%d/%m/%Y"))


def _membership_end(m, now: datetime | None) -> tuple[str, datetime] | None:
    """How a membership row ended, and when: expiry (``expires_at`` reached) or withdrawal (by a
    decider, or the account disabled); None while it is held."""
    expires, revoked = aware(m["expires_at"]), aware(m["revoked_at"])
    if revoked is not None:
        return ((MembershipState.EXPIRED.value, expires) if expires is not None and expires <= revoked
                else (MembershipState.REVOKED.value, revoked))
    if expires is not None and now is not None and expires <= now:
        return MembershipState.EXPIRED.value, expires
    return None


def describe(kind: str, role_key: str | None, mappings: Mappings | None, organisation_code: str | None = None) -> str:
    """The "Description" column: the role's label, "Création de compte", or for a mobility
    "Changement d'organisme vers" the new organisation's name."""
    if kind == RequestKind.ACCOUNT.value:
        return ACCOUNT_REQUEST_LABEL
    if kind == RequestKind.MOBILITY.value:
        org = mappings.organisation(organisation_code) if organisation_code and mappings is not None else None
        return MOBILITY_PREFIX + (org.name if org else (organisation_code or ""))
    role = mappings.role(role_key) if role_key and mappings is not None else None
    label = role.label if role else (role_key or "")
    return RENEWAL_PREFIX + label if kind == RequestKind.RENEWAL.value else label


def _application_label(role_key: str | None, mappings: Mappings) -> str | None:
    app = mappings.application_of(role_key) if role_key else None
    return app.label if app else None


def _person_name(given: str | None, family: str | None, fallback: str | None = None) -> str:
    return " ".join(x for x in (given, family) if x) or (fallback or "")


# --- history -----------------------------------------------------------------------------------

def request_history(conn: Connection, account_id: str | None, mappings: Mappings, *,
                    email: str | None = None, now: datetime | None = None) -> list[HistoryItem]:
    """Every request of one person, newest first.

    A request is the person's when it names their account, or - before an account exists (an
    account request, a habilitation rejected at intake) - when it carries their e-mail. Give the
    account id, or only the e-mail of someone who has no account yet. An accepted request whose
    right was withdrawn or expired since reads so (``ended``; given ``now``, expiry is seen before
    the expiry job has run).
    """
    if account_id is not None and email is None:
        email = conn.execute(select(accounts.c.email).where(accounts.c.id == account_id)).scalar()
    mine = []
    if account_id is not None:
        mine.append(requests.c.account_id == account_id)
    if email:
        mine.append(and_(requests.c.account_id.is_(None), func.lower(requests.c.email) == email.strip().lower()))
    if not mine:
        return []
    rows = conn.execute(select(requests).where(or_(*mine))
                        .order_by(requests.c.submitted_at.desc(), requests.c.id.desc())).mappings().all()
    ends = _rights_ended(conn, [r["id"] for r in rows if r["status"] in GRANTED_STATUSES and r["role_key"]], now)
    return [_history_item(r, mappings, ends.get(r["id"])) for r in rows]


def _rights_ended(conn: Connection, request_ids: list[int], now: datetime | None) -> dict[int, tuple[str, datetime]]:
    """For accepted requests, how the right each granted ended, if it did: the request's own
    ``revoked``/``expired`` event (kept when a later request grants the role again), else the
    state of the membership it still grants (an account disabled leaves no event)."""
    if not request_ids:
        return {}
    ended: dict[int, tuple[str, datetime]] = {}
    for e in conn.execute(select(request_events.c.request_id, request_events.c.event, request_events.c.at)
                          .where(request_events.c.request_id.in_(request_ids),
                                 request_events.c.event.in_((MembershipState.REVOKED.value, MembershipState.EXPIRED.value)))
                          .order_by(request_events.c.at, request_events.c.id)):
        ended[e.request_id] = (e.event, aware(e.at))
    for m in conn.execute(select(memberships).where(memberships.c.granted_by_request.in_(request_ids))).mappings():
        end = _membership_end(m, now)     # the membership it still grants says it best
        if end is None:
            ended.pop(m["granted_by_request"], None)
        else:
            ended[m["granted_by_request"]] = end
    return ended


def _history_item(r: RowMapping, mappings: Mappings, end: tuple[str, datetime] | None = None) -> HistoryItem:
    status, parked = r["status"], r["parked_at"] is not None
    return HistoryItem(
        request_id=r["id"], kind=r["kind"], date=aware(r["submitted_at"]),
        description=describe(r["kind"], r["role_key"], mappings, r["organisation_code"]),
        status=status, status_label=ended_label(*end) if end else status_label(status, parked), parked=parked,
        role_key=r["role_key"],
        application_label=_application_label(r["role_key"], mappings),
        deadline=aware(r["deadline_at"]), decided_at=aware(r["decided_at"]),
        comment=r["comment"], reason=r["reason"], applied_at=aware(r["applied_at"]),
        ended=end[0] if end else None, ended_at=end[1] if end else None)


# --- synthesis ---------------------------------------------------------------------------------

def rights_synthesis(conn: Connection, account_id: str, mappings: Mappings, *,
                     now: datetime | None = None) -> list[ApplicationRights]:
    """The habilitations one account holds now, grouped by application ("Liste de vos habilitations").

    A habilitation is held while its membership is not revoked (and, given ``now``, not expired).
    ``state`` says whether LDAP has it yet ("applied") or only the decision ("accepted").
    """
    stmt = (select(memberships, requests.c.status.label("request_status"))
            .select_from(memberships.outerjoin(requests, requests.c.id == memberships.c.granted_by_request))
            .where(memberships.c.account_id == account_id, memberships.c.revoked_at.is_(None)))
    if now is not None:
        stmt = stmt.where(or_(memberships.c.expires_at.is_(None), memberships.c.expires_at > now))
    groups: dict[str | None, list[GrantedRole]] = {}
    for m in conn.execute(stmt).mappings():
        role = mappings.role(m["role_key"])
        app = mappings.application_of(m["role_key"])
        groups.setdefault(app.key if app else None, []).append(GrantedRole(
            role_key=m["role_key"], label=role.label if role else m["role_key"],
            granted_at=aware(m["granted_at"]), state="applied" if m["applied_at"] is not None else "accepted",
            accepted_tacitly=m["request_status"] == Status.ACCEPTED_TACITLY.value,
            applied_at=aware(m["applied_at"]), expires_at=aware(m["expires_at"])))
    result = []
    for key, roles in groups.items():
        app = next((a for a in mappings.applications if a.key == key), None)
        result.append(ApplicationRights(key, app.label if app else OTHER_APPLICATION_LABEL,
                                        tuple(sorted(roles, key=lambda g: g.label.casefold()))))
    # Known applications alphabetically, then the roles no longer in the mappings.
    return sorted(result, key=lambda a: (a.application_key is None, a.application_label.casefold()))


def ended_rights(conn: Connection, account_id: str, mappings: Mappings, *, now: datetime | None = None
                 ) -> list[EndedRole]:
    """The habilitations the account held and holds no more, most recently ended first: « Retirée
    le … » (withdrawn by a decider, or the account disabled), « Expirée le … »."""
    result = []
    for m in conn.execute(select(memberships).where(memberships.c.account_id == account_id)).mappings():
        end = _membership_end(m, now)
        if end is None:
            continue
        role = mappings.role(m["role_key"])
        app = mappings.application_of(m["role_key"])
        result.append(EndedRole(role_key=m["role_key"], label=role.label if role else m["role_key"],
                                application_label=app.label if app else OTHER_APPLICATION_LABEL, status=end[0],
                                status_label=ended_label(*end), ended_at=end[1], granted_at=aware(m["granted_at"])))
    return sorted(result, key=lambda e: e.ended_at, reverse=True)


# --- contacts ----------------------------------------------------------------------------------

def contacts(conn: Connection, account_id: str) -> Contacts:
    """The local correspondents of the account's primary organisation ("Mes contacts").

    When the organisation has none (besides the person themself), requests go to the central
    administrators: they are the contacts then, and ``central`` says so.
    """
    account = conn.execute(select(accounts.c.primary_organisation).where(accounts.c.id == account_id)).first()
    if account is None:
        return Contacts(None, None, ())
    code = account.primary_organisation
    name = conn.execute(select(organisations.c.name).where(organisations.c.code == code)).scalar()

    def people(scope_filter) -> tuple[Contact, ...]:
        # The deciders first, their accounts by key (as a join, SQLite read every account).
        rows = conn.execute(
            select(accounts.c.given_name, accounts.c.family_name, accounts.c.email)
            .where(accounts.c.id.in_(select(deciders.c.account_id).where(scope_filter)),
                   accounts.c.status == AccountStatus.ACTIVE.value, accounts.c.id != account_id)
            .order_by(accounts.c.family_name, accounts.c.given_name, accounts.c.email))
        return tuple(Contact(_person_name(r.given_name, r.family_name, r.email), r.email) for r in rows)

    local = people(and_(deciders.c.scope == "correspondent", deciders.c.organisation_code == code))
    if local:
        return Contacts(code, name, local)
    return Contacts(code, name, people(deciders.c.scope == "central"), central=True)


# --- a decider's work ----------------------------------------------------------------------------

def pending_for_decider(conn: Connection, decider_id: str, *, mappings: Mappings | None = None,
                        sort: str = "deadline", organisation: str | None = None, role: str | None = None,
                        kind: str | None = None, page: int = 1, page_size: int = 20) -> PendingPage:
    """The pending requests routed to one decider (``request_deciders``), one page at a time.

    ``sort``: ``deadline`` (soonest first, the default), ``submitted`` (oldest first), or either
    with a leading ``-`` for the reverse. Filters: organisation code, role key, request kind.
    Without ``mappings`` the description is the role key instead of its label.
    """
    if sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}")
    page = max(1, int(page))
    page_size = min(max(1, int(page_size)), MAX_PAGE_SIZE)
    where = [request_deciders.c.account_id == decider_id, requests.c.status == Status.PENDING.value]
    if organisation:
        where.append(requests.c.organisation_code == organisation)
    if role:
        where.append(requests.c.role_key == role)
    if kind:
        where.append(requests.c.kind == kind)
    base = select(requests).join(request_deciders, request_deciders.c.request_id == requests.c.id).where(*where)
    total = conn.execute(select(func.count()).select_from(base.subquery())).scalar() or 0
    column = requests.c.deadline_at if sort.lstrip("-") == "deadline" else requests.c.submitted_at
    order = column.desc() if sort.startswith("-") else column.asc()
    stmt = (base.add_columns(accounts.c.given_name.label("a_given"), accounts.c.family_name.label("a_family"),
                             accounts.c.email.label("a_email"))
            .outerjoin(accounts, accounts.c.id == requests.c.account_id)
            .order_by(order, requests.c.id).limit(page_size).offset((page - 1) * page_size))
    items = tuple(PendingItem(
        request_id=r["id"], kind=r["kind"], description=describe(r["kind"], r["role_key"], mappings, r["organisation_code"]),
        requester_name=_person_name(r["a_given"] or r["given_name"], r["a_family"] or r["family_name"],
                                    r["a_email"] or r["email"]),
        requester_email=r["a_email"] or r["email"] or "", organisation_code=r["organisation_code"],
        role_key=r["role_key"], submitted_at=aware(r["submitted_at"]), deadline=aware(r["deadline_at"]))
        for r in conn.execute(stmt).mappings())
    return PendingPage(items, total, page, page_size)


# --- one request -------------------------------------------------------------------------------

def request_detail(conn: Connection, request_id: int, mappings: Mappings) -> RequestDetail | None:
    """One request as the decision page shows it, or None if there is no such request."""
    r = conn.execute(select(requests).where(requests.c.id == request_id)).mappings().first()
    if r is None:
        return None
    account = account_by_id(conn, r["account_id"]) if r["account_id"] else None
    org_code = r["organisation_code"] or (account.primary_organisation if account else None)
    org = mappings.organisation(org_code) if org_code else None
    org_name = org.name if org else (
        conn.execute(select(organisations.c.name).where(organisations.c.code == org_code)).scalar()
        if org_code else None)
    role = mappings.role(r["role_key"]) if r["role_key"] else None
    routed = routed_to(conn, request_id)
    given = account.given_name if account else r["given_name"]
    family = account.family_name if account else r["family_name"]
    email = (account.email if account else r["email"]) or ""
    internal = account.internal if account else r["internal"]
    return RequestDetail(
        request_id=r["id"], kind=r["kind"], status=r["status"],
        status_label=status_label(r["status"], r["parked_at"] is not None), parked=r["parked_at"] is not None,
        description=describe(r["kind"], r["role_key"], mappings, r["organisation_code"]),
        requester_name=_person_name(given, family, email), requester_email=email,
        requester_account_id=r["account_id"], internal=None if internal is None else bool(internal),
        organisation_code=org_code, organisation_name=org_name or org_code, role_key=r["role_key"],
        role_label=role.label if role else r["role_key"],
        application_label=_application_label(r["role_key"], mappings),
        submitted_at=aware(r["submitted_at"]), deadline=aware(r["deadline_at"]),
        decided_at=aware(r["decided_at"]), decided_by=r["decided_by"], comment=r["comment"], reason=r["reason"],
        applied_at=aware(r["applied_at"]), routed_to=routed)
