"""The bodies of the portal's endpoints (``syncd.web.portal_api``): profile, forgotten password,
withdrawal, account state, catalogue, organisations, e-mail check.

Each input model carries ``examples``: the fuzzer (tests/web/test_schemathesis.py) starts from
them, so it also reaches the successful path, not only the refusals.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from syncd.core.model import AccountStatus, Management
from syncd.web.schemas import MULTI_LINE, ONE_LINE, one_of

SETTABLE, MANAGEMENT = one_of(AccountStatus.ACTIVE, AccountStatus.DISABLED), one_of(*Management)


def _examples(*examples: dict) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


# --- « Mes coordonnées » -----------------------------------------------------------------------------

class ProfileFieldOut(BaseModel):
    field: str = Field(description="The account field: civility, given_name, family_name, birth_name, email, "
                                   "contact_email, phone, primary_organisation, secondary_organisation.")
    label: str = Field(description="The field's name on the « Mes coordonnées » form.")
    value: str | None
    display: str | None = Field(default=None, description="For an organisation: its name (value is its code).")
    editable: bool
    reason: str | None = Field(default=None, description="Why the field cannot be changed here (French); for a "
                                                          "director, the referential, its page and its contact.")


class ProfileOut(BaseModel):
    account_id: str
    version: int = Field(description="The account's version: the ETag; send it back in If-Match to change it.")
    status: str
    internal: bool
    director: bool
    fields: list[ProfileFieldOut]


class ProfileChangesIn(BaseModel):
    """Only the fields sent change; ``null`` (or an empty string) clears an optional one."""

    model_config = _examples({"phone": "04 72 00 00 01", "contact_email": "aristide.charenne@example.org"},
                             {"civility": "M.", "birth_name": "Charenne"})

    civility: Literal["M.", "Mme"] | None = None
    given_name: str | None = Field(default=None, max_length=100, pattern=ONE_LINE)
    family_name: str | None = Field(default=None, max_length=100, pattern=ONE_LINE)
    birth_name: str | None = Field(default=None, max_length=100, pattern=ONE_LINE)
    contact_email: str | None = Field(default=None, max_length=254, pattern=ONE_LINE)
    phone: str | None = Field(default=None, max_length=40, pattern=ONE_LINE)
    secondary_organisation: str | None = Field(default=None, max_length=64, pattern=ONE_LINE)
    # Read-only here; accepted in the body so that a form sending them back gets the reason.
    email: str | None = Field(default=None, max_length=254, pattern=ONE_LINE,
                              description="Not editable: the login.")
    primary_organisation: str | None = Field(default=None, max_length=64, pattern=ONE_LINE,
                                             description="Not editable: it changes through mobility.")


# --- « Vous avez oublié votre mot de passe ? » ----------------------------------------------------------

class ForgottenPasswordIn(BaseModel):
    model_config = _examples({"email": "a.charenne@lassuranceretraite.fr", "client_address": "192.0.2.10"})

    email: str = Field(min_length=1, max_length=254, pattern=ONE_LINE,
                       description="What the person typed as their login (not checked: any text is answered alike).")
    client_address: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[0-9A-Fa-f:.]+$",
                                       description="The person's IP address as the portal sees it: the second "
                                                   "rate limit's key (default: the API client).")


class AcceptedOut(BaseModel):
    status: Literal["accepted"]
    message: str


# --- withdrawal and account state ------------------------------------------------------------------------

class WithdrawalIn(BaseModel):
    model_config = _examples({"actor": "c.martin@lassuranceretraite.fr",
                              "reason": "Changement de fonctions : accès plus nécessaire."})

    actor: str = Field(min_length=1, max_length=254, pattern=ONE_LINE,
                       description="The correspondent's or central administrator's account id or e-mail.")
    reason: str = Field(min_length=1, max_length=2000, pattern=MULTI_LINE, description="Sent to the holder.")


class WithdrawalOut(BaseModel):
    account_id: str
    role_key: str
    withdrawn_at: datetime
    withdrawn_by: str


class AccountStateIn(BaseModel):
    model_config = _examples({"status": "disabled", "actor": "admin@ucanss.fr", "reason": "Départ de l'Institution."},
                             {"status": "active", "actor": "admin@ucanss.fr"})

    status: SETTABLE
    actor: str = Field(min_length=1, max_length=254, pattern=ONE_LINE,
                       description="A central administrator's account id or e-mail.")
    reason: str | None = Field(default=None, max_length=2000, pattern=MULTI_LINE)


class AccountStateOut(BaseModel):
    account_id: str
    status: SETTABLE
    changed: bool = Field(description="False: the account was in this state already.")


# --- catalogue and reference data ---------------------------------------------------------------------------

class CatalogueRoleOut(BaseModel):
    role_key: str
    label: str
    management: MANAGEMENT
    restriction: Literal["internal_only"] | None = None
    validity_months: int | None = None


class CatalogueApplicationOut(BaseModel):
    application_key: str
    application_label: str
    management: MANAGEMENT
    roles: list[CatalogueRoleOut]


class CatalogueOut(BaseModel):
    applications: list[CatalogueApplicationOut]


RoleState = Literal["held", "requested", "may_request", "not_available"]


class PersonRoleOut(CatalogueRoleOut):
    state: RoleState = Field(description="held: the person has it (padlock open); requested: a request is open; "
                                         "may_request: padlock, the person may ask; not_available: internal "
                                         "staff only, and this account is external.")
    state_label: str
    request_id: int | None = None
    request_status: str | None = Field(default=None, description="new, pending or awaiting_decider.")
    request_status_label: str | None = None
    parked: bool = Field(default=False, description="The request failed for good and waits for an operator.")
    expires_at: datetime | None = None


class PersonApplicationOut(BaseModel):
    application_key: str
    application_label: str
    management: MANAGEMENT
    held: bool = Field(description="The person holds at least one of its roles (the guide's « croix », no padlock).")
    roles: list[PersonRoleOut]


class PersonCatalogueOut(BaseModel):
    account_id: str
    internal: bool
    applications: list[PersonApplicationOut]


class OrganisationOut(BaseModel):
    code: str
    name: str
    branch: str


class OrganisationsOut(BaseModel):
    organisations: list[OrganisationOut]


class EmailCheckIn(BaseModel):
    model_config = _examples({"email": "jeanne.martin@assurance-maladie.fr", "internal": True},
                             {"email": "prestataire@example.com", "internal": False})

    email: str = Field(min_length=1, max_length=254, pattern=ONE_LINE)
    internal: bool = Field(description="« Je travaille à la Sécu ? »")


class EmailProblemOut(BaseModel):
    code: str = Field(description="Intake's rejection code: bad_email, domain_not_internal.")
    message: str


class EmailCheckOut(BaseModel):
    acceptable: bool
    email: str | None = Field(description="The address as syncd will store it (normalised), when it is one.")
    problems: list[EmailProblemOut]

