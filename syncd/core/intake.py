"""Validation of the rows the portal writes into the queue table.

Every row ends either valid (normalised values the jobs can trust) or rejected with a reason a
person can read (French: it is e-mailed to the requester) and a stable code for logs and
metrics. Facts that need the database (does the account exist, is there a duplicate) are looked
up by the caller and passed in, so this stays pure.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email

from syncd.core import syntax
from syncd.core.entries import DN_FIELDS
from syncd.core.mappings import Mappings
from syncd.core.model import Account, AccountStatus, RequestKind

MAX_NAME = 100
MAX_EMAIL = 254
CIVILITIES = {"m.": "M.", "m": "M.", "monsieur": "M.", "mme": "Mme", "madame": "Mme"}
# Letters (any script), combining marks, spaces, apostrophes, hyphens and dots: "Jean-Éric", "O'Brien".
_NAME = re.compile(r"^[^\W\d_](?:[^\W\d_]|[\u0300-\u036f' ’.-])*$")


@dataclass(frozen=True)
class Rejection:
    code: str
    reason: str   # French, shown to the requester


ExistingAccount = Account   # what intake reads of the account with the row's e-mail


@dataclass(frozen=True)
class IntakeFacts:
    """What the database says about this row's requester and role."""

    account: ExistingAccount | None = None        # the account with the row's e-mail, if any
    account_request_open: bool = False            # another account request for this e-mail is pending
    habilitation_open_or_granted: bool = False    # same account and role already pending or granted
    mobility_open: bool = False                   # a mobility of this account is undecided


@dataclass(frozen=True)
class ValidAccountRequest:
    email: str
    civility: str | None
    given_name: str
    family_name: str
    internal: bool
    organisation_code: str
    terms_version: str


@dataclass(frozen=True)
class ValidHabilitationRequest:
    account_id: str
    role_key: str
    organisation_code: str


@dataclass(frozen=True)
class ValidMobilityRequest:
    account_id: str
    organisation_code: str    # the organisation the person moves to: its correspondents decide
    from_organisation: str


Outcome = ValidAccountRequest | ValidHabilitationRequest | ValidMobilityRequest | Rejection


def normalise_email(raw: Any) -> str | None:
    """The canonical form of a professional e-mail, or None if it is not one."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_EMAIL:
        return None
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return checked.normalized.lower()


def email_domain_is_internal(email: str, domains: tuple[str, ...]) -> bool:
    domain = email.rsplit("@", 1)[-1].lower()
    return any(domain == d.lower() or domain.endswith("." + d.lower()) for d in domains)


def written_attributes(mappings: Mappings) -> dict[str, str]:
    """Account field → the LDAP attribute syncd writes it to (fields owned elsewhere left out)."""
    return {f: m.ldap for f, m in mappings.directory.people.attributes.items() if m.owner == "syncd"}


def directory_refusals(values: dict[str, Any], mappings: Mappings) -> dict[str, str]:
    """Field → French reason for each text value that its LDAP attribute would refuse
    (the syntax profile of ``directory.kind``, syncd/core/syntax.py)."""
    # Organisation fields hold a code here, which the adapter turns into the organisation's DN: the
    # code is one of the mappings', whose names check-config checks against the same profile.
    texts = {f: v for f, v in values.items() if f not in DN_FIELDS}
    found = syntax.refusals(mappings.directory.kind, texts, written_attributes(mappings))
    return {f: syntax.sentence(f, r) for f, r in found.items()}


def account_door_refusals(row: dict[str, Any], mappings: Mappings) -> dict[str, str]:
    """Field → French reason for what the directory would refuse among an account request's
    values, normalised as intake does (the API answers with these before it queues the row)."""
    values = {"email": normalise_email(row.get("email")), "given_name": clean_name(row.get("given_name")),
              "family_name": clean_name(row.get("family_name"))}
    refused = directory_refusals({f: v for f, v in values.items() if v is not None}, mappings)
    if row.get("terms_version") is not None and clean_terms_version(row["terms_version"], mappings) is None:
        refused["terms_version"] = ("La version des conditions générales d'utilisation ne peut contenir que "
                                    "des lettres sans accent, des chiffres et les signes . _ : / + - "
                                    "(20 caractères au plus).")
    return refused


def clean_terms_version(raw: Any, mappings: Mappings) -> str | None:
    """The portal's terms version, or None when it is not one syncd can write (see docs/queue.md)."""
    if not isinstance(raw, str) or not syntax.TERMS_VERSION.match(raw.strip()):
        return None
    value = raw.strip()
    return None if directory_refusals({"terms_version": value}, mappings) else value


def clean_name(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    value = unicodedata.normalize("NFC", " ".join(raw.split()))
    if not value or len(value) > MAX_NAME or not _NAME.match(value):
        return None
    return value


def domain_rejection(email: str, internal: bool, mappings: Mappings) -> Rejection | None:
    """An internal account's e-mail must be in one of the Institution's domains (a normalised e-mail)."""
    if internal and not email_domain_is_internal(email, mappings.internal_email_domains):
        return Rejection("domain_not_internal", "Pour un compte de salarié de l'Institution, l'adresse e-mail doit "
                         "appartenir à un domaine de l'Institution (par exemple @urssaf.fr ou @assurance-maladie.fr).")
    return None


def email_rejection(raw: Any, internal: bool, mappings: Mappings) -> tuple[str | None, Rejection | None]:
    """What intake will say of this address on an account request: (the address as stored, or
    None; the rejection intake will send, or None). The sign-up form asks this before it submits.

    Whether an account exists already is left out on purpose: intake still rejects a duplicate
    (by mail, to that address), but the answer here must not tell who has an account.
    """
    email = normalise_email(raw)
    if email is None:
        return None, Rejection("bad_email", "L'adresse e-mail professionnelle n'est pas valide.")
    refused = directory_refusals({"email": email}, mappings)
    if refused:
        return email, Rejection("bad_email", refused["email"])
    return email, domain_rejection(email, internal, mappings)


def validate_row(row: dict[str, Any], facts: IntakeFacts, mappings: Mappings) -> Outcome:
    """Check one queue row; ``row`` holds the portal-written columns (see docs/queue.md)."""
    try:
        kind = RequestKind(row.get("kind"))
    except ValueError:
        return Rejection("bad_kind", "Type de demande inconnu.")
    if kind is RequestKind.RENEWAL:   # renewals are opened by syncd itself, never by the portal
        return Rejection("bad_kind", "Les demandes de renouvellement sont créées automatiquement.")
    email = normalise_email(row.get("email"))
    if email is None:
        return Rejection("bad_email", "L'adresse e-mail professionnelle n'est pas valide.")
    if kind is RequestKind.ACCOUNT:
        return _validate_account(row, email, facts, mappings)
    if kind is RequestKind.MOBILITY:
        return validate_mobility(row.get("organisation_code"), facts, mappings)
    return _validate_habilitation(row, facts, mappings)


def _validate_account(row: dict[str, Any], email: str, facts: IntakeFacts, mappings: Mappings) -> Outcome:
    given, family = clean_name(row.get("given_name")), clean_name(row.get("family_name"))
    if given is None:
        return Rejection("bad_given_name", "Le prénom est absent ou contient des caractères non admis.")
    if family is None:
        return Rejection("bad_family_name", "Le nom est absent ou contient des caractères non admis.")
    civility_raw = row.get("civility")
    civility = None
    if civility_raw not in (None, ""):
        civility = CIVILITIES.get(str(civility_raw).strip().lower())
        if civility is None:
            return Rejection("bad_civility", "La civilité doit être « M. » ou « Mme ».")
    # What the directory would refuse is refused here, with a reason the requester can act on,
    # instead of an accepted request whose account LDAP refuses for ever.
    refused = directory_refusals({"email": email, "given_name": given, "family_name": family,
                                  "civility": civility}, mappings)
    if refused:
        field, reason = next(iter(refused.items()))
        return Rejection(f"bad_{field}", reason)
    internal = row.get("internal")
    if not isinstance(internal, bool):
        return Rejection("bad_internal", "Il faut indiquer si vous travaillez à la Sécurité sociale (oui ou non).")
    org = row.get("organisation_code")
    if not isinstance(org, str) or mappings.organisation(org) is None:
        return Rejection("unknown_organisation", "L'organisme choisi est inconnu.")
    if row.get("terms_accepted") is not True:
        return Rejection("terms_not_accepted", "Les conditions générales d'utilisation n'ont pas été acceptées.")
    domain = domain_rejection(email, internal, mappings)
    if domain is not None:
        return domain
    if facts.account is not None:
        return Rejection("account_exists", "Un compte existe déjà pour cette adresse e-mail.")
    if facts.account_request_open:
        return Rejection("duplicate", "Une demande de création de compte est déjà en cours pour cette adresse.")
    terms_version = clean_terms_version(row.get("terms_version"), mappings) or mappings.policy.terms_version
    return ValidAccountRequest(email, civility, given, family, internal, org, terms_version)


def _validate_habilitation(row: dict[str, Any], facts: IntakeFacts, mappings: Mappings) -> Outcome:
    role_key = row.get("role_key")
    role = mappings.role(role_key) if isinstance(role_key, str) else None
    if role is None:
        return Rejection("unknown_role", "L'habilitation demandée est inconnue.")
    account = facts.account
    if account is None:
        return Rejection("unknown_account", "Aucun compte n'existe pour cette adresse e-mail.")
    if account.status != AccountStatus.ACTIVE:
        return Rejection("account_not_active", "Le compte n'est pas actif.")
    if mappings.organisation(account.primary_organisation) is None:
        return Rejection("unknown_organisation", "L'organisme du compte est inconnu.")
    if role.restriction == "internal_only" and not account.internal:
        return Rejection("internal_only", "Cette habilitation est réservée aux salariés de l'Institution.")
    if facts.habilitation_open_or_granted:
        return Rejection("duplicate", "Cette habilitation est déjà accordée ou déjà demandée.")
    return ValidHabilitationRequest(account.id, role.key, account.primary_organisation)


def validate_mobility(organisation_code: Any, facts: IntakeFacts, mappings: Mappings) -> ValidMobilityRequest | Rejection:
    """A move of an active account to another known organisation; a director's organisation is
    the referential's, so it never moves here."""
    account = facts.account
    if account is None:
        return Rejection("unknown_account", "Aucun compte n'existe pour cette adresse e-mail.")
    if account.status != AccountStatus.ACTIVE:
        return Rejection("account_not_active", "Le compte n'est pas actif.")
    if account.director:
        ref = mappings.policy.directors_referential
        return Rejection("director", f"L'organisme d'un agent de direction est géré dans le {ref.name} : "
                                     "le changement d'organisme s'y fait, pas ici.")
    if not isinstance(organisation_code, str) or mappings.organisation(organisation_code) is None:
        return Rejection("unknown_organisation", "L'organisme choisi est inconnu.")
    if organisation_code == account.primary_organisation:
        return Rejection("same_organisation", "Vous êtes déjà rattaché à cet organisme.")
    if facts.mobility_open:
        return Rejection("duplicate", "Une demande de changement d'organisme est déjà en cours.")
    return ValidMobilityRequest(account.id, organisation_code, account.primary_organisation)
