"""Values between syncd and ldap3: Python values as LDAP strings, and an entry's attributes.

Pure functions, no connection: ``ldap_values`` turns what callers pass (str, bool, int, aware
datetime, None, or a sequence of those) into the list of strings written to the server;
``person_attrs`` does it for the attributes of an account, named by account field or LDAP
name; ``attrs_of`` picks the requested attributes out of one ldap3 search response entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from syncd.directory import names
from syncd.errors import DirectoryRejected
from syncd.mappings import AttributeMapping

AttrValue = str | bool | int | datetime | None
AttrValues = AttrValue | Sequence[AttrValue]


def _one_value(value: AttrValue) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise DirectoryRejected(f"a datetime written to LDAP must be timezone-aware: {value!r}")
        return value.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ")
    if isinstance(value, str):
        return value if value != "" else None
    raise DirectoryRejected(f"cannot write a {type(value).__name__} to LDAP: {value!r}")


def ldap_values(value: AttrValues) -> list[str]:
    """A Python value as a list of LDAP string values; None, "" and [] give []."""
    if isinstance(value, (list, tuple, set, frozenset)):
        out = [_one_value(v) for v in value]
    else:
        out = [_one_value(value)]
    seen: dict[str, None] = {}
    for v in out:
        if v is not None:
            seen.setdefault(v, None)
    return list(seen)


def person_attrs(fields: Mapping[str, AttributeMapping], attrs: Mapping[str, AttrValues]) -> dict[str, list[str]]:
    """``attrs`` as LDAP attributes: account field names translated by ``fields``
    (``layout.people.attributes``), other keys taken as LDAP attribute names."""
    out: dict[str, list[str]] = {}
    for key, value in attrs.items():
        ldap_name = fields[key].ldap if key in fields else names.validate_attribute_name(key)
        if ldap_name.lower() == "objectclass":
            raise DirectoryRejected("object classes are passed as object_classes, not as an attribute")
        if any(k.lower() == ldap_name.lower() for k in out):
            raise DirectoryRejected(f"attribute {ldap_name} given twice (as {key!r} and another name)")
        out[ldap_name] = ldap_values(value)
    return out


def attrs_of(entry: Mapping[str, Any], wanted: Iterable[str]) -> dict[str, list[str]]:
    got = entry.get("attributes") or {}
    out: dict[str, list[str]] = {}
    for name in wanted:
        if name in ("*", "+", "1.1"):
            continue
        value = got.get(name, [])   # ldap3's CaseInsensitiveDict
        out[name] = list(value) if isinstance(value, (list, tuple)) else [value]
    if any(w in ("*", "+") for w in wanted):
        for name, value in got.items():
            if not any(name.lower() == k.lower() for k in out):
                out[name] = list(value) if isinstance(value, (list, tuple)) else [value]
    return out
