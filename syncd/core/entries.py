"""What an account's LDAP entry should hold, given the mappings and who owns each attribute.

Fields an external source owns are left out, so syncd never writes them: fields with
``owner: external`` always, and fields ``external_for_directors`` for directors ("ADD", whose
data lives in the Référentiel des Agents de Direction) once the entry exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from syncd.core.mappings import PeopleLayout

DN_FIELDS = frozenset({"primary_organisation", "secondary_organisation"})


def ldap_value(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ")
    return str(value)


def owned_fields(people: PeopleLayout, *, director: bool, first_write: bool) -> list[str]:
    return [field for field, m in people.attributes.items()
            if m.owner == "syncd" and (first_write or not (director and m.external_for_directors))]


def account_attributes(account: Mapping[str, Any], people: PeopleLayout, *, first_write: bool,
                       organisation_dn: Callable[[str], str]) -> dict[str, list[str]]:
    """LDAP attribute → values for the fields syncd owns; an empty list means "remove the value".

    On the first write, empty values are left out instead (there is nothing to remove) and
    ``cn`` is set, as inetOrgPerson requires it.
    """
    director = bool(account.get("director"))
    attrs: dict[str, list[str]] = {}
    for field in owned_fields(people, director=director, first_write=first_write):
        raw = account.get(field)
        if raw is None or raw == "":
            if not first_write:
                attrs[people.attributes[field].ldap] = []
            continue
        value = organisation_dn(raw) if field in DN_FIELDS else ldap_value(raw)
        attrs[people.attributes[field].ldap] = [value]
    names_owned = first_write or not director
    if names_owned:
        attrs["cn"] = [" ".join(x for x in (account.get("given_name"), account.get("family_name")) if x)
                       or str(account.get("email"))]
    return attrs
