"""Which profile changes ("mes coordonnées") are allowed, and their normalised values.

Directors' ("ADD") fields that an external referential owns cannot be changed through syncd:
the guide sends directors to their own profile page. Pure: the caller passes the account.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.core.intake import CIVILITIES, MAX_NAME, clean_name, directory_refusals, normalise_email
from syncd.core.mappings import Mappings
from syncd.errors import PermanentError

EDITABLE = ("civility", "given_name", "family_name", "birth_name", "contact_email", "phone",
            "secondary_organisation")
# Every field of « Mes coordonnées », in the guide's order.
FIELDS = ("civility", "given_name", "family_name", "birth_name", "email", "contact_email", "phone",
          "primary_organisation", "secondary_organisation")
NOT_HERE = {
    "email": "L'adresse e-mail professionnelle est votre identifiant de connexion : elle ne peut pas être "
             "modifiée ici.",
    "primary_organisation": "L'organisme change par une demande de mobilité vers le nouvel organisme.",
}


class ProfileRefused(PermanentError):
    """A profile change that is not allowed; ``problems`` maps field → reason (French);
    ``not_editable``: the fields refused because the person may not change them here at all."""

    def __init__(self, problems: dict[str, str], not_editable: frozenset[str] = frozenset()):
        self.problems, self.not_editable = problems, not_editable
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))


class ProfileStale(PermanentError):
    """The account changed since the version the form was read at (optimistic concurrency)."""

    def __init__(self, current_version: int):
        self.current_version = current_version
        super().__init__(f"the account is at version {current_version}")


def externally_owned(field: str, account: Mapping[str, Any], mappings: Mappings) -> bool:
    mapping = mappings.directory.people.attributes.get(field)
    if mapping is None:
        return False
    return mapping.owner == "external" or (bool(account.get("director")) and mapping.external_for_directors)


def referential_message(mappings: Mappings) -> str:
    """Why a director cannot change a field here: the referential, its « mon profil » page, its contact."""
    ref = mappings.policy.directors_referential
    text = f"Ce champ est géré dans le {ref.name} : merci de le modifier depuis votre page « mon profil »"
    text += f" ({ref.profile_url})." if ref.profile_url else "."
    if ref.contact:
        text += f" Pour toute question relative à ces mises à jour, écrivez à {ref.contact}."
    return text


def not_editable_reason(field: str, account: Mapping[str, Any], mappings: Mappings) -> str | None:
    """Why the person may not change ``field`` through syncd (French), or None when they may."""
    if externally_owned(field, account, mappings):
        # Directors are sent to their referential's own page (the guide); anyone else's field
        # owned elsewhere is an operator's choice in the mappings, with no page to point to.
        return (referential_message(mappings) if account.get("director")
                else "Ce champ est géré par un autre référentiel : il ne peut pas être modifié ici.")
    if field in NOT_HERE:
        return NOT_HERE[field]
    if field not in EDITABLE:
        return "Ce champ ne peut pas être modifié."
    return None


def validate_profile_changes(changes: Mapping[str, Any], account: Mapping[str, Any],
                             mappings: Mappings) -> dict[str, Any]:
    problems: dict[str, str] = {}
    not_editable: set[str] = set()
    clean: dict[str, Any] = {}
    for field, raw in changes.items():
        refusal = not_editable_reason(field, account, mappings)
        if refusal is not None:
            problems[field] = refusal
            not_editable.add(field)
            continue
        value = raw.strip() if isinstance(raw, str) else raw
        if value in (None, ""):
            if field in ("given_name", "family_name"):
                problems[field] = "Ce champ est obligatoire."
            else:
                clean[field] = None
            continue
        # Each field: its cleaned value (None: refused), and what to say when it is refused.
        if field in ("given_name", "family_name", "birth_name"):
            cleaned = clean_name(value)
            problem = f"Au plus {MAX_NAME} caractères : lettres, espaces, apostrophes et tirets."
        elif field == "civility":
            cleaned, problem = CIVILITIES.get(str(value).lower()), "La civilité doit être « M. » ou « Mme »."
        elif field == "contact_email":
            cleaned, problem = normalise_email(value), "L'adresse e-mail n'est pas valide."
        elif field == "phone":
            digits = "".join(ch for ch in str(value) if ch.isdigit() or ch == "+")
            valid = 6 <= len(digits) <= 20 and len(str(value)) <= 40
            cleaned = " ".join(str(value).split()) if valid else None
            problem = "Le numéro de téléphone n'est pas valide."
        elif field == "secondary_organisation":
            known = mappings.organisation(str(value)) is not None
            cleaned = value if known and value != account.get("primary_organisation") else None
            problem = ("L'organisme secondaire doit différer de l'organisme principal." if known
                       else "L'organisme choisi est inconnu.")
        else:
            continue
        if cleaned is None:
            problems[field] = problem
        else:
            clean[field] = cleaned
    # The same door as intake: a value the directory's syntax would refuse (a phone number with
    # « ; » or « n° », for telephoneNumber) is refused here, so it never holds back the others.
    for field, reason in directory_refusals(clean, mappings).items():
        problems[field] = reason
    if problems:
        raise ProfileRefused(problems, frozenset(not_editable))
    return clean
