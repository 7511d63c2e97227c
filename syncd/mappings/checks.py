"""What the loader checks beyond the models: the names an operator may use, the shape of values.

The sections a file may define, the account fields ``directory.people.attributes`` may map,
the branches an organisation may belong to, and the checks on DNs, LDAP names and e-mail
domains that pydantic field constraints cannot express.
"""

from __future__ import annotations

import re

from syncd.core.mappings import Mappings

SECTIONS: tuple[str, ...] = tuple(Mappings.model_fields)

# The account fields a ``directory.people.attributes`` entry may map (columns of ``accounts``).
ACCOUNT_FIELDS: tuple[str, ...] = (
    "civility", "given_name", "family_name", "birth_name", "email", "contact_email", "phone",
    "primary_organisation", "secondary_organisation", "internal", "director",
    "terms_version", "terms_accepted_at", "status",
)
REQUIRED_ATTRIBUTES: tuple[str, ...] = ("given_name", "family_name", "email")

# The branches ("branches") of the French general social-security scheme an organisation
# belongs to; ``inter-branches`` is for bodies that serve several (UCANSS, the CGSS overseas).
BRANCHES: tuple[str, ...] = (
    "maladie", "at-mp", "retraite", "famille", "recouvrement", "autonomie", "inter-branches",
)

_MAX_TERMS_VERSION = 20          # accounts.terms_version is a String(20)

_LDAP_NAME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)$")   # descr or numericoid
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")


def _parse_dn(dn: str) -> list[tuple[str, str, str]]:
    """ldap3's pure DN parser (imported here only: the core imports this module, not ldap3).

    Spaces around ``,`` ``+`` and ``=`` are tolerated, as ``syncd.directory.names`` does.
    """
    from ldap3.utils.dn import parse_dn

    return parse_dn(dn, escape=False, strip=True)


def _norm(dn: str) -> str:
    return ",".join(f"{a.lower()}={v.lower()}" for a, v, _ in _parse_dn(dn))


def _domain_problem(domain: str) -> str | None:
    if domain.startswith("@"):
        return f"write the domain {domain[1:]!r} without the '@'"
    if "*" in domain:
        return (f"{domain!r}: wildcards are not supported; a domain already covers its "
                "subdomains (urssaf.fr covers idf.urssaf.fr)")
    labels = domain.lower().split(".")
    if (len(domain) > 253 or len(labels) < 2 or not all(_LABEL.match(p) for p in labels)
            or not _TLD.match(labels[-1])):
        return f"{domain!r} is not a domain name such as 'urssaf.fr'"
    return None
