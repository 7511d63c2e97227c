"""Plain values the core reasons about: statuses, kinds, requests, decisions.

Frozen dataclasses in, plain values out; the store maps rows to these and back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class RequestKind(str, enum.Enum):
    ACCOUNT = "account"            # "demande de création de compte"
    HABILITATION = "habilitation"  # "demande d'habilitation"
    RENEWAL = "renewal"            # recertification of a habilitation before it expires
    MOBILITY = "mobility"          # "changement d'organisme": the person moves to another organisation


class Status(str, enum.Enum):
    NEW = "new"                            # inserted by the portal, not yet taken in
    PENDING = "pending"                    # routed, waiting for a decider
    AWAITING_DECIDER = "awaiting_decider"  # nobody can decide it yet: waits, visible, never tacit
    ACCEPTED = "accepted"
    ACCEPTED_TACITLY = "accepted_tacitly"
    REFUSED = "refused"
    REJECTED = "rejected"                  # invalid at intake; ``reason`` says why

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_accepted(self) -> bool:
        return self in (Status.ACCEPTED, Status.ACCEPTED_TACITLY)


class AccountStatus(str, enum.Enum):
    PENDING = "pending"      # created by an accepted account request, its entry not written yet
    ACTIVE = "active"
    DISABLED = "disabled"    # its entry locked, its memberships revoked


class MembershipState(str, enum.Enum):
    HELD = "held"            # granted, neither revoked nor past its expiry
    REVOKED = "revoked"      # withdrawn: by a decider, or with the account
    EXPIRED = "expired"      # past its validity


# The accounts that have (or are to have) an LDAP entry.
PROVISIONED = (AccountStatus.ACTIVE.value, AccountStatus.DISABLED.value)

TERMINAL_STATUSES = frozenset({Status.ACCEPTED, Status.ACCEPTED_TACITLY, Status.REFUSED, Status.REJECTED})

# The labels users see in the portal's "Historique de vos demandes" (seed guide).
STATUS_LABELS_FR: dict[Status, str] = {
    Status.NEW: "En attente validation d'un gestionnaire",
    Status.PENDING: "En attente validation d'un gestionnaire",
    Status.AWAITING_DECIDER: "En attente validation d'un gestionnaire",
    Status.ACCEPTED: "Acceptée",
    Status.ACCEPTED_TACITLY: "Acceptée tacitement",
    Status.REFUSED: "Refusée",
    Status.REJECTED: "Rejetée",
}


class DirectoryKind(str, enum.Enum):
    """Which directory server syncd writes to: it decides syntaxes, locking and write quirks."""

    OPENLDAP = "openldap"
    DS389 = "389ds"          # 389 Directory Server (Red Hat Directory Server, FreeIPA's)
    ACTIVE_DIRECTORY = "active_directory"   # Microsoft Active Directory, Samba AD DC


class Management(str, enum.Enum):
    LOCAL = "local"      # decided by the organisation's correspondents
    CENTRAL = "central"  # decided by the central administrators


class DeciderScope(str, enum.Enum):
    CORRESPONDENT = "correspondent"
    CENTRAL = "central"


class Verdict(str, enum.Enum):
    ACCEPT = "accept"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Decider:
    account_id: str
    email: str
    scope: DeciderScope
    organisation_code: str | None = None  # set for correspondents


@dataclass(frozen=True)
class RequestView:
    """One request as the store hands it out: what the rules need, and what jobs and mails read."""

    id: int
    kind: RequestKind
    status: Status
    submitted_at: datetime
    account_id: str | None      # the requester's; None for an account request until the account exists
    organisation_code: str
    role_key: str | None = None
    deadline_at: datetime | None = None
    decided_by: str | None = None
    applied_at: datetime | None = None
    internal: bool | None = None           # account requests: "Je travaille à la Sécu ?"
    first_routed_at: datetime | None = None  # when it first reached a decider (their window starts)
    email: str | None = None               # as the portal wrote it (intake normalises it)
    civility: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    terms_accepted: bool | None = None
    terms_version: str | None = None
    reason: str | None = None              # why it was rejected
    comment: str | None = None             # the decider's
    decided_at: datetime | None = None
    attempts: int = 0
    parked_at: datetime | None = None
    parked_reason: str | None = None


@dataclass(frozen=True)
class Account:
    """What the store tells about an account; its LDAP entry's values are ``store.accounts``' rows."""

    id: str
    status: AccountStatus
    internal: bool
    primary_organisation: str
    director: bool = False              # the directors' referential owns their organisation
    email: str = ""
    given_name: str = ""
    family_name: str = ""
    civility: str | None = None
    birth_name: str | None = None
    contact_email: str | None = None
    phone: str | None = None
    secondary_organisation: str | None = None
    version: int = 1
    ldap_version: int | None = None     # the version LDAP holds (None: never written)


@dataclass(frozen=True)
class Decision:
    request_id: int
    verdict: Verdict
    decider_account_id: str
    comment: str | None = None
