"""The API's request and response bodies (they are the OpenAPI document's schemas)."""

from __future__ import annotations

import enum
import re
from dataclasses import MISSING, fields
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, get_type_hints

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model, field_validator

from syncd.core.model import MembershipState, RequestKind, Status, Verdict
from syncd.store import queries
from syncd.web.messages import CODES

# One rule for every text a client sends, API field or page form field: no control character
# (C0, DEL, C1) and no bidirectional override (they make a name read otherwise than it is
# stored); a comment may hold line breaks and tabs. PostgreSQL refuses NUL in text, and a value
# printed in a mail, a page or a log must not carry control codes. Lone surrogates cannot be
# encoded at all: pydantic refuses them as strings, ``forbidden_character`` says so for forms.
# Refused: 400, naming the field (API); the form again with the error on the field (pages).
_CONTROLS = r"\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_CONTROLS_BUT_LINES = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
ONE_LINE = rf"^[^{_CONTROLS}]*$"
MULTI_LINE = rf"^[^{_CONTROLS_BUT_LINES}]*$"
EMAIL = rf"^[^{_CONTROLS} @]+@[^{_CONTROLS} @]+$"
CODE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
KEY = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
REF = rf"^[^{_CONTROLS}/]+$"
_FORBIDDEN = {False: re.compile(rf"[{_CONTROLS}\ud800-\udfff]"),
              True: re.compile(rf"[{_CONTROLS_BUT_LINES}\ud800-\udfff]")}
MAX_ID = 2**63 - 1


def one_of(*members: enum.Enum) -> Any:
    """``Literal`` of these members' values: the strings a body may hold are the core's enums'."""
    return Literal[tuple(m.value for m in members)]


VERDICT, DECIDED = one_of(*Verdict), one_of(Status.ACCEPTED, Status.REFUSED)
ENDED = one_of(MembershipState.REVOKED, MembershipState.EXPIRED)
ACCOUNT, HABILITATION, MOBILITY = (one_of(k) for k in (RequestKind.ACCOUNT, RequestKind.HABILITATION, RequestKind.MOBILITY))


def forbidden_character(value: str, *, multi_line: bool = False) -> str | None:
    """The first character of ``value`` that the rule above refuses, or None."""
    found = _FORBIDDEN[multi_line].search(value)
    return found.group() if found else None


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(BaseModel):
    error: str = Field(description="A stable, machine-readable code: " + ", ".join(f"`{c}`" for c in CODES) + ".")
    message: str = Field(description="For people: in French, or in English with `Accept-Language: en`.")
    fields: list["FieldError"] | None = Field(default=None, description="Set for `invalid_request`.")


class FieldError(BaseModel):
    field: str
    message: str


# --- decisions --------------------------------------------------------------------------------------

class DecisionIn(_In):
    verdict: VERDICT
    decider: str = Field(min_length=1, max_length=254, pattern=ONE_LINE,
                         description="The decider's account id or e-mail: on whose behalf the client decides.")
    comment: str | None = Field(default=None, max_length=2000, pattern=MULTI_LINE,
                                description="Required to refuse (it is sent to the requester).")


class DecisionOut(BaseModel):
    request_id: int
    status: DECIDED
    status_label: str
    decided_at: datetime
    decided_by: str
    comment: str | None = None


def _out_of(result: type, name: str, leave_out: str = "", defaults: bool = False, **given: Any) -> Any:
    """The API's body of a query's result: the same fields in the same order, each required (or,
    with ``defaults``, optional where the result has a default), but the one left out and those
    ``given`` (``(type, Field(...))``, in their place)."""
    default = {f.name: f.default for f in fields(result) if defaults and f.default is not MISSING}
    return create_model(name, **{field: given.get(field, (hint, default.get(field, ...)))
                                 for field, hint in get_type_hints(result).items() if field != leave_out})


# --- history, synthesis, contacts --------------------------------------------------------------------

PARKED_DESCRIPTION = ("True: syncd could not process it (the directory refused it, or intake kept failing) and an "
                      "operator retries or resolves it; the label reads « En attente … » meanwhile.")


HistoryItemOut = _out_of(
    queries.HistoryItem, "HistoryItemOut", defaults=True,
    date=(datetime, Field(description="When the request was submitted.")),
    description=(str, Field(description="The role's label as users see it, or « Création de compte ».")),
    parked=(bool, Field(default=False, description=PARKED_DESCRIPTION)),
    ended=(ENDED | None, Field(default=None, description="The right this accepted request granted was since "
                                                         "withdrawn (`revoked`) or expired (`expired`); `status_label` "
                                                         "then reads « Retirée le … » or « Expirée le … ».")))


class HistoryOut(BaseModel):
    account_id: str | None
    items: list[HistoryItemOut]


GrantedRoleOut = _out_of(queries.GrantedRole, "GrantedRoleOut", defaults=True, accepted_tacitly=(bool, ...))


ApplicationRightsOut = _out_of(queries.ApplicationRights, "ApplicationRightsOut", roles=(list[GrantedRoleOut], ...))


EndedRoleOut = _out_of(queries.EndedRole, "EndedRoleOut", status=(ENDED, ...), status_label=(str, Field(
    description="« Retirée le 03/12/2026 » or « Expirée le 03/12/2026 ».")))


class RightsOut(BaseModel):
    account_id: str
    applications: list[ApplicationRightsOut]
    ended: list[EndedRoleOut] = Field(default_factory=list, description="Habilitations held before and no more: "
                                                                        "withdrawn or expired, latest first.")


ContactOut = _out_of(queries.Contact, "ContactOut")


class ContactsOut(BaseModel):
    account_id: str
    organisation_code: str | None
    organisation_name: str | None
    central: bool = Field(description="True: the organisation has no correspondent; these are the central "
                                      "administrators.")
    contacts: list[ContactOut]


PendingItemOut = _out_of(queries.PendingItem, "PendingItemOut")


class PendingOut(BaseModel):
    decider_id: str
    items: list[PendingItemOut]
    total: int
    page: int
    page_size: int


# The decision page's detail of a request; who it was routed to stays out of the API.
RequestOut = _out_of(queries.RequestDetail, "RequestOut", leave_out="routed_to",
                     parked=(bool, Field(default=False, description=PARKED_DESCRIPTION)))


# --- submitting a request ------------------------------------------------------------------------------

class _RequestIn(_In):
    email: str = Field(max_length=254, pattern=EMAIL, description="The requester's professional e-mail.")
    portal_ref: str | None = Field(default=None, min_length=1, max_length=100, pattern=ONE_LINE,
                                   description="The portal's id of the request: an idempotency key (unique).")
    submitted_at: AwareDatetime | None = Field(default=None, description="When the person submitted the form "
                                                                         "(default: now). Not in the future.")

    @field_validator("submitted_at")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            return value.astimezone(timezone.utc)
        except (OverflowError, ValueError):
            raise ValueError("out of range once converted to UTC") from None


class AccountRequestIn(_RequestIn):
    """« Demande de création de compte » (docs/queue.md §1.1)."""

    # A valid submission, so the fuzzer (tests/web/test_schemathesis.py) reaches the success path.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "kind": "account", "email": "jeanne.martin@lassuranceretraite.fr", "civility": "Mme", "given_name": "Jeanne",
        "family_name": "Martin", "internal": True, "organisation_code": "CARSAT-RA", "terms_accepted": True,
        "terms_version": "2026-01"}]})

    kind: ACCOUNT
    civility: Literal["M.", "Mme"] | None = None
    given_name: str = Field(min_length=1, max_length=100, pattern=ONE_LINE)
    family_name: str = Field(min_length=1, max_length=100, pattern=ONE_LINE)
    internal: bool = Field(description="« Je travaille à la Sécu ? »: true for staff of the institution.")
    organisation_code: str = Field(pattern=CODE)
    terms_accepted: bool
    terms_version: str = Field(min_length=1, max_length=20, pattern=ONE_LINE)


class HabilitationRequestIn(_RequestIn):
    """« Demande d'habilitation » for an existing account (docs/queue.md §1.2)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "kind": "habilitation", "email": "a.charenne@lassuranceretraite.fr", "role_key": "opim-local"}]})

    kind: HABILITATION
    role_key: str = Field(pattern=KEY)


class MobilityRequestIn(_RequestIn):
    """« Changement d'organisme »: an existing account moves to another organisation (docs/queue.md §1.3)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "kind": "mobility", "email": "a.charenne@lassuranceretraite.fr", "organisation_code": "CPAM-75"}]})

    kind: MOBILITY
    organisation_code: str = Field(pattern=CODE, description="The organisation the person moves to.")


SubmitIn = Annotated[AccountRequestIn | HabilitationRequestIn | MobilityRequestIn, Field(discriminator="kind")]


class SubmittedOut(BaseModel):
    request_id: int
    status: str
    status_label: str
    portal_ref: str | None
    created: bool = Field(description="False: a request with this portal_ref already existed; it is returned.")


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


Error.model_rebuild()
