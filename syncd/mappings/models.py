"""The validated, frozen form of the operator's mappings, which every other module reads.

Values only: nothing here reads a file or reports a problem (``loader`` does both). The
indexes on ``Mappings`` are built once per instance, since an instance never changes.
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from syncd.core.model import DirectoryKind, Management

Ownership = Literal["syncd", "external"]
_KEY = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttributeMapping(_Frozen):
    """Where one account field lives in LDAP, and who owns its value."""

    ldap: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9-]*$")
    owner: Ownership = "syncd"
    # Owned by an external referential for directors ("ADD") only: syncd writes it for others.
    external_for_directors: bool = False


class BranchLayout(_Frozen):
    branch: str                       # RDN sequence relative to base_dn, e.g. "ou=people"
    rdn_attribute: str
    object_classes: tuple[str, ...]


class PeopleLayout(BranchLayout):
    attributes: dict[str, AttributeMapping]
    disabled_attribute: str = "syncdAccountStatus"


class GroupLayout(BranchLayout):
    member_attribute: str = "member"
    # groupOfNames requires one member: this DN is always kept in every role group so a
    # role with no members left stays a valid entry. It names no person.
    placeholder_member: str


class DirectoryLayout(_Frozen):
    kind: DirectoryKind = DirectoryKind.OPENLDAP
    base_dn: str
    people: PeopleLayout
    organisations: BranchLayout
    groups: GroupLayout


class Role(_Frozen):
    key: str = Field(pattern=_KEY)
    label: str = Field(min_length=1, max_length=200)
    group: str = Field(min_length=1, max_length=200)   # value of the group's RDN attribute
    management: Management | None = None               # None: the application's
    tacit_delay_days: int | None = Field(default=None, ge=1, le=365)
    restriction: Literal["internal_only"] | None = None
    validity_months: int | None = Field(default=None, ge=1, le=120)
    ownership: Literal["exclusive", "shared"] = "exclusive"
    # Reviewed in access review campaigns (syncd.core.reviews) instead of renewed: no validity.
    review: bool = False


class Application(_Frozen):
    key: str = Field(pattern=_KEY)
    label: str = Field(min_length=1, max_length=200)
    management: Management = Management.LOCAL
    roles: tuple[Role, ...] = Field(min_length=1)


class Organisation(_Frozen):
    code: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    branch: str = Field(min_length=1, max_length=64)


class DirectorsReferential(_Frozen):
    """Where directors ("Agents de Direction", ADD) change the fields the referential owns (the guide's
    « mon profil » page), and whom to write to: named in the portal's refusals."""

    name: str = Field(default="Référentiel des Agents de Direction", min_length=1, max_length=200,
                      pattern=r"^[^\x00-\x1f\x7f]+$")
    profile_url: str | None = Field(default=None, max_length=500, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$")
    contact: str | None = Field(default=None, max_length=254, pattern=r"^[^\s@]+@[^\s@]+\.[^\s@]+$")


class Policy(_Frozen):
    """Workflow delays and defaults; per-role settings override these."""

    tacit_delay_days: int = Field(default=10, ge=1, le=365)
    account_tacit_delay_days: int = Field(default=10, ge=1, le=365)
    calendar: Literal["calendar_days", "business_days_fr"] = "calendar_days"
    reminder_days_before: tuple[int, ...] = (3, 1)
    terms_version: str = "1"
    # The deciders' minimum window after a request first reaches one of them, before tacit
    # acceptance, whatever its submission date says (French business days; 0: none).
    decision_window_business_days: int = Field(default=2, ge=0, le=30)
    # Internal account requests are accepted tacitly like habilitations; external ones never.
    internal_account_tacit: bool = True
    # Named in the refusal of a director's change to a field the referential owns.
    directors_referential: DirectorsReferential = DirectorsReferential()


class Mappings(_Frozen):
    directory: DirectoryLayout
    applications: tuple[Application, ...]
    organisations: tuple[Organisation, ...]
    internal_email_domains: tuple[str, ...]
    policy: Policy = Policy()

    def role(self, key: str) -> Role | None:
        return self._roles.get(key)

    def application_of(self, role_key: str) -> Application | None:
        return self._applications_by_role.get(role_key)

    def management_of(self, role_key: str) -> Management:
        role = self.role(role_key)
        app = self.application_of(role_key)
        if role is None or app is None:
            raise KeyError(role_key)
        return role.management or app.management

    def tacit_delay_of(self, role_key: str) -> int:
        role = self.role(role_key)
        if role is None:
            raise KeyError(role_key)
        return role.tacit_delay_days or self.policy.tacit_delay_days

    def reviewed_roles(self) -> tuple[str, ...]:
        """The keys of the roles access review campaigns review (``review: true``), sorted."""
        return tuple(sorted(r.key for r in self._roles.values() if r.review))

    def organisation(self, code: str) -> Organisation | None:
        return self._organisations.get(code)

    # Indexes built once per (immutable) Mappings: jobs look roles up for every request of a
    # batch, and rebuilding the index each time showed in apply's profile.
    @functools.cached_property
    def _roles(self) -> dict[str, Role]:
        return {r.key: r for app in self.applications for r in app.roles}

    @functools.cached_property
    def _applications_by_role(self) -> dict[str, Application]:
        found: dict[str, Application] = {}
        for app in self.applications:
            for r in app.roles:
                found.setdefault(r.key, app)     # the first, as the linear search it replaces
        return found

    @functools.cached_property
    def _organisations(self) -> dict[str, Organisation]:
        found: dict[str, Organisation] = {}
        for o in self.organisations:
            found.setdefault(o.code, o)
        return found
