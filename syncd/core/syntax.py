"""What the directory accepts: one syntax profile per directory kind, and its validators.

For every attribute syncd writes (or that ``directory.people.attributes`` may map a field to),
the profile of a ``DirectoryKind`` gives its LDAP syntax, taken from ``schema/`` and the
standard schemas (core, cosine, inetorgperson: the same for OpenLDAP and 389-DS), and
``check`` says whether a value is accepted, with a French reason when it is not. Intake, the
profile check and the API call it at the door, so that a value the directory would refuse ends
as a refusal the requester reads, never as an LDAP write retried for ever.

The validators follow what the servers enforce (OpenLDAP ``schema_init.c``; 389-DS syntax
plugins with ``nsslapd-syntaxcheck: on``), RFC 4517:

* DirectoryString: one or more UTF-8 characters;
* IA5String (``mail``): ASCII only;
* PrintableString and TelephoneNumber: letters without accents, digits, space and ``'()+,-./:=?``;
* Boolean: ``TRUE`` or ``FALSE``; GeneralizedTime: ``YYYYMMDDHH[MM[SS]][.f](Z|±HH[MM])``;
* DN: RDNs of attribute types the server knows, each value valid for its own syntax.

syncd is stricter than the servers on purpose in four places (``Refusal.stricter_than_server``;
docs/reliability.md, "What the directory accepts"):

* no control character ever: both servers take a NUL in a DirectoryString, OpenLDAP one in an
  IA5String, but PostgreSQL, mails and logs cannot carry them;
* no empty value: syncd writes "no value" by removing the attribute;
* the schema's upper bound on a value's length (``{32}`` on ``telephoneNumber``), which neither
  server enforces but other directories and the applications reading them do;
* no DN with an RDN type this profile does not list: syncd writes only the DNs it builds.

Active Directory (``_AD``) has a schema of its own: every string is a DirectoryString there
(``mail``, ``telephoneNumber`` too), with ``rangeUpper`` bounds, and ``sAMAccountName`` refuses
``"/\\[]:;|=,+*?<>`` and more than 20 characters (``sam_account_name`` derives it from an id).
A Boolean or a date that syncd formats itself ("TRUE", "20260101000000Z") may be kept in a
DirectoryString: AD has no free attribute of those syntaxes.

Pure: plain values in, plain values out.
"""

from __future__ import annotations

import calendar
import enum
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from syncd.core.model import DirectoryKind


class Syntax(str, enum.Enum):
    """An LDAP syntax, by its OID (RFC 4517)."""

    BOOLEAN = "1.3.6.1.4.1.1466.115.121.1.7"
    DN = "1.3.6.1.4.1.1466.115.121.1.12"
    DIRECTORY_STRING = "1.3.6.1.4.1.1466.115.121.1.15"
    GENERALIZED_TIME = "1.3.6.1.4.1.1466.115.121.1.24"
    IA5_STRING = "1.3.6.1.4.1.1466.115.121.1.26"
    PRINTABLE_STRING = "1.3.6.1.4.1.1466.115.121.1.44"
    TELEPHONE_NUMBER = "1.3.6.1.4.1.1466.115.121.1.50"

    @property
    def label(self) -> str:
        return _SYNTAX_LABELS[self]


_SYNTAX_LABELS = {
    Syntax.BOOLEAN: "Boolean", Syntax.DN: "DN", Syntax.DIRECTORY_STRING: "DirectoryString",
    Syntax.GENERALIZED_TIME: "GeneralizedTime", Syntax.IA5_STRING: "IA5String",
    Syntax.PRINTABLE_STRING: "PrintableString", Syntax.TELEPHONE_NUMBER: "TelephoneNumber",
}


@dataclass(frozen=True)
class AttributeSyntax:
    """One attribute type as the directory defines it."""

    name: str                          # as the schema spells it (the first NAME)
    syntax: Syntax
    max_length: int | None = None      # the schema's upper bound ({n}), in characters
    aliases: tuple[str, ...] = ()
    forbidden: str = ""                # characters the server refuses besides the syntax's own


@dataclass(frozen=True)
class Refusal:
    """Why a value cannot be written to an attribute."""

    code: str                          # stable: not_ascii, not_printable, control_character, ...
    reason: str                        # French, a predicate: "<Le champ> <reason>."
    stricter_than_server: bool = False  # the server itself would take it; syncd refuses on purpose

    def sentence(self, subject: str = "La valeur") -> str:
        """``subject`` + the reason, as a French sentence (« L'adresse e-mail contient … »)."""
        return f"{subject} {self.reason}."


@dataclass(frozen=True)
class SyntaxProfile:
    """The attributes one kind of directory defines, by lower-case name and alias."""

    kind: DirectoryKind
    attributes: tuple[AttributeSyntax, ...]
    # Whether the server checks the values inside a DN against their attributes' syntaxes
    # (OpenLDAP does; 389-DS checks only the DN's form: measured, it takes dc=<U+00A0>).
    checks_values_inside_dns: bool = True
    # Branch ("people", "organisations", "groups") -> (naming attribute, object class) the
    # server requires of syncd's entries there; empty when the schema leaves it to the layout.
    required_layout: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # A form of RDN value (as written, escaped) the server's DN parser refuses in valid RFC 4514
    # DNs, refused as stricter than the server (it takes others that match): see _AD_DN_QUIRK.
    dn_quirk: re.Pattern[str] | None = None
    _by_name: dict[str, AttributeSyntax] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {n.lower(): a for a in self.attributes for n in (a.name, *a.aliases)}
        object.__setattr__(self, "_by_name", index)

    def attribute(self, name: str) -> AttributeSyntax | None:
        return self._by_name.get(name.lower())

    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    def check(self, attribute: str, value: str) -> Refusal | None:
        """None when the directory takes ``value`` in ``attribute``, else why not.

        An attribute the profile does not know is refused: ``check-config`` makes sure every
        mapped attribute is known, so this only happens for a value nobody should write.
        """
        spec = self.attribute(attribute)
        if spec is None:
            return Refusal("unknown_attribute", f"ne peut pas être écrite dans l'attribut inconnu {attribute}")
        return _check(self, spec, value)


# -- the validators, one per syntax ------------------------------------------------------------

# RFC 4517 PrintableCharacter: ALPHA / DIGIT / ' ( ) + , - . / : = ? and SPACE.
PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'()+,-./:=? ")
_PRINTABLE_SHOWN = "lettres sans accent, chiffres, espaces et signes ' ( ) + , - . / : = ?"
_TIME = re.compile(r"^(\d{4})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])([01]\d|2[0-3])"
                   r"(?:[0-5]\d(?:[0-5]\d|60)?)?(?:[.,]\d+)?(?:Z|[+-](?:[01]\d|2[0-3])(?:[0-5]\d)?)$",
                   re.ASCII)     # \d: ASCII digits only, as the servers read them
_DESCR = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$", re.ASCII)
_DN_SPECIAL = ',+"\\<>;='
_HEX = re.compile(r"[0-9A-Fa-f]{2}")

# The version of the terms of use (``policy.terms_version``, the portal's ``terms_version``):
# letters, digits and a few separators, never a control or filter character; at most 20
# characters (``accounts.terms_version`` is a String(20)).
TERMS_VERSION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9 ._:/+-]{0,18}[A-Za-z0-9.])?$")


def shown(char: str) -> str:
    """A character as a person can read it in a message: « é », or U+0000 when invisible."""
    if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp") or char.isspace():
        return f"U+{ord(char):04X}"
    return f"« {char} »"


def _hygiene(value: str) -> Refusal | None:
    """What syncd refuses whatever the syntax: empty values, control characters, surrogates."""
    if value == "":
        return Refusal("empty", "est vide", stricter_than_server=True)
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs":     # a lone surrogate cannot even be encoded in UTF-8
            return Refusal("not_utf8", f"contient un caractère invalide ({shown(char)})")
        if category == "Cc":
            return Refusal("control_character", f"contient un caractère de contrôle ({shown(char)}), "
                                                "qui n'est pas admis", stricter_than_server=True)
    return None


def _check(profile: SyntaxProfile, spec: AttributeSyntax, value: str) -> Refusal | None:
    if not isinstance(value, str):
        return Refusal("not_text", "n'est pas un texte")
    problem = _hygiene(value) or _VALIDATORS[spec.syntax](profile, value) or _forbidden(spec, value)
    if problem is None and spec.max_length is not None and len(value) > spec.max_length:
        problem = Refusal("too_long", f"dépasse {spec.max_length} caractères, la longueur que l'annuaire "
                                      "prévoit pour ce champ", stricter_than_server=True)
    return problem


def _first_refused(value: str, refused: Callable[[str], bool], code: str, rule: str) -> Refusal | None:
    """The refusal of the first character of ``value`` the field does not take (``rule`` says which do)."""
    bad = next((c for c in value if refused(c)), None)
    if bad is None:
        return None
    return Refusal(code, f"contient {shown(bad)}, que l'annuaire n'accepte pas dans ce champ ({rule})")


def _forbidden(spec: AttributeSyntax, value: str) -> Refusal | None:
    return _first_refused(value, spec.forbidden.__contains__, "forbidden_character",
                          f"sont refusés : {' '.join(spec.forbidden)}")


def _directory_string(profile: SyntaxProfile, value: str) -> Refusal | None:
    return None    # any non-empty UTF-8 text; _hygiene has refused what syncd never writes


def _ia5(profile: SyntaxProfile, value: str) -> Refusal | None:
    return _first_refused(value, lambda c: ord(c) > 0x7F, "not_ascii",
                          "sont admis : lettres sans accent, chiffres et ponctuation ASCII")


def _printable(profile: SyntaxProfile, value: str) -> Refusal | None:
    return _first_refused(value, lambda c: c not in PRINTABLE, "not_printable", f"sont admis : {_PRINTABLE_SHOWN}")


def _boolean(profile: SyntaxProfile, value: str) -> Refusal | None:
    return None if value in ("TRUE", "FALSE") else Refusal("not_boolean", "doit valoir TRUE ou FALSE")


def _generalized_time(profile: SyntaxProfile, value: str) -> Refusal | None:
    match = _TIME.match(value)
    if match is not None:
        year, month, day = (int(g) for g in match.groups()[:3])
        if day <= calendar.monthrange(year, month)[1]:
            return None
    return Refusal("not_time", "n'est pas une date au format de l'annuaire (AAAAMMJJhhmmssZ)")


def _dn(profile: SyntaxProfile, value: str) -> Refusal | None:
    # Stricter than the server: syncd only writes DNs it built itself, of RDN types this profile
    # knows; a server also takes the types of its other schemas and RFC 4514's rarer forms.
    refused = Refusal("not_dn", "n'est pas un nom d'entrée (DN) que syncd écrit", stricter_than_server=True)
    rdns = _split_dn(value)
    if rdns is None or (profile.dn_quirk is not None and profile.dn_quirk.search(value)):
        return refused
    for rdn in rdns:
        for attribute, raw in rdn:
            spec = profile.attribute(attribute) if _DESCR.match(attribute) else None
            if spec is None or spec.syntax is Syntax.DN or raw == "" or raw[0] == "#":
                return refused
            inner = _hygiene(raw) or _VALIDATORS[spec.syntax](profile, raw)
            if inner is not None:
                return inner if profile.checks_values_inside_dns else replace(inner, stricter_than_server=True)
    return None


def _split_dn(value: str) -> list[list[tuple[str, str]]] | None:
    """RFC 4514 ``value`` as RDNs of (type, unescaped value); None when it is not one."""
    rdns: list[list[tuple[str, str]]] = [[]]
    i, n = 0, len(value)
    while i < n:
        eq = value.find("=", i)
        if eq < 0:
            return None
        attribute = value[i:eq].strip(" ")
        out: list[str] = []
        i = eq + 1
        while i < n and value[i] not in ",+":
            c = value[i]
            if c == "\\":
                pair = value[i + 1:i + 3]
                if _HEX.fullmatch(pair):
                    try:   # a hex pair starts a UTF-8 sequence: decode the whole run at once
                        j = i
                        raw = bytearray()
                        while j < n and value[j] == "\\" and _HEX.fullmatch(value[j + 1:j + 3]):
                            raw.append(int(value[j + 1:j + 3], 16))
                            j += 3
                        out.append(raw.decode("utf-8"))
                    except UnicodeDecodeError:
                        return None
                    i = j
                    continue
                if i + 1 < n and (value[i + 1] in _DN_SPECIAL or value[i + 1] in " #"):
                    out.append(value[i + 1])
                    i += 2
                    continue
                return None
            if c in '"<>;=' or c == "\x00":
                return None
            out.append(c)
            i += 1
        rdns[-1].append((attribute, "".join(out).strip(" ")))
        if i < n:
            if value[i] == ",":
                rdns.append([])
            i += 1
            if i == n:
                return None       # a trailing separator
    return rdns if rdns[0] else None


_VALIDATORS = {
    Syntax.DIRECTORY_STRING: _directory_string,
    Syntax.IA5_STRING: _ia5,
    Syntax.PRINTABLE_STRING: _printable,
    Syntax.TELEPHONE_NUMBER: _printable,     # RFC 4517: TelephoneNumber = PrintableString
    Syntax.BOOLEAN: _boolean,
    Syntax.GENERALIZED_TIME: _generalized_time,
    Syntax.DN: _dn,
}


# -- the profiles --------------------------------------------------------------------------------

def _attrs(syntax: Syntax, *specs: str | tuple[str, int | None, tuple[str, ...]]) -> list[AttributeSyntax]:
    out = []
    for spec in specs:
        name, bound, aliases = (spec, None, ()) if isinstance(spec, str) else spec
        out.append(AttributeSyntax(name, syntax, bound, aliases))
    return out


# The standard attributes (RFC 4519, 4524, 2798: core, cosine, inetorgperson): the same syntaxes
# and bounds in OpenLDAP's /etc/ldap/schema and 389-DS's 00core.ldif ... 06inetorgperson.ldif.
_STANDARD: tuple[AttributeSyntax, ...] = tuple(
    _attrs(Syntax.DIRECTORY_STRING,
           ("name", 32768, ()), ("cn", 32768, ("commonName",)), ("sn", 32768, ("surname",)),
           ("givenName", 32768, ("gn",)), ("initials", 32768, ()), ("title", 32768, ()),
           ("o", 32768, ("organizationName",)), ("ou", 32768, ("organizationalUnitName",)),
           ("description", 1024, ()), ("uid", 256, ("userid",)), ("displayName", None, ()),
           ("employeeNumber", None, ()), ("employeeType", None, ()), ("departmentNumber", None, ()),
           ("preferredLanguage", None, ()), ("personalTitle", 256, ()))
    + _attrs(Syntax.IA5_STRING, ("mail", 256, ("rfc822Mailbox",)), ("dc", None, ("domainComponent",)))
    + _attrs(Syntax.TELEPHONE_NUMBER, ("telephoneNumber", 32, ()), ("mobile", None, ("mobileTelephoneNumber",)))
    + _attrs(Syntax.DN, ("member", None, ()), ("seeAlso", None, ()), ("manager", None, ()))
)

# schema/openldap/syncd.ldif and schema/389ds/99syncd.ldif: the same OIDs and syntaxes.
_SYNCD: tuple[AttributeSyntax, ...] = tuple(
    _attrs(Syntax.DIRECTORY_STRING, "syncdAccountStatus", "syncdCivility", "syncdBirthName",
           "syncdTermsVersion", "syncdOrganisationCode", "syncdBranch", "syncdRoleKey",
           "syncdApplicationKey", "syncdManagement", "syncdApplicationLabel")
    + _attrs(Syntax.BOOLEAN, "syncdInternal", "syncdDirector")
    + _attrs(Syntax.IA5_STRING, "syncdContactMail")
    + _attrs(Syntax.DN, "syncdPrimaryOrganisation", "syncdSecondaryOrganisation", "syncdCorrespondent")
    + _attrs(Syntax.GENERALIZED_TIME, "syncdTermsAcceptedAt")
)

# 389-DS's own operational attributes syncd may write (account locking, 01core389.ldif).
_DS389_ONLY: tuple[AttributeSyntax, ...] = tuple(_attrs(Syntax.DIRECTORY_STRING, "nsAccountLock"))

# Active Directory's schema (the default one of Windows Server 2012 R2 and later, which Samba 4
# provisions; no Exchange, no schema extension): its string attributes are "Unicode strings"
# (2.5.5.12, a DirectoryString), ``mail`` and ``telephoneNumber`` included; the bounds are the
# schema's ``rangeUpper``. syncd's own attributes live in attributes the default schema has
# (deploy/activedirectory/README.md says which and why): the twenty ``msDS-cloudExtensionAttribute``
# of users, ``adminDisplayName`` / ``adminDescription`` / ``info`` of groups, ``businessCategory``
# and ``seeAlso`` of organisational units.
SAM_ACCOUNT_NAME_FORBIDDEN = '"/\\[]:;|=,+*?<>'
SAM_ACCOUNT_NAME_MAX = 20
_AD: tuple[AttributeSyntax, ...] = tuple(
    _attrs(Syntax.DIRECTORY_STRING,
           ("name", 255, ()), ("cn", 64, ("commonName",)), ("sn", 64, ("surname",)),
           ("givenName", 64, ()), ("initials", 6, ()), ("title", 128, ()),
           # displayName also holds a role group's application label (syncdApplicationLabel elsewhere)
           ("displayName", 256, ("syncdApplicationLabel",)),
           ("description", 1024, ()), ("info", 1024, ()), ("o", 64, ()), ("ou", 64, ()),
           ("mail", 256, ()), ("otherMailbox", None, ()), ("telephoneNumber", 64, ()), ("mobile", 64, ()),
           ("personalTitle", 64, ()), ("employeeType", 256, ()), ("employeeNumber", 512, ()),
           ("departmentNumber", None, ()), ("department", 64, ()), ("company", 64, ()),
           ("businessCategory", 128, ()), ("adminDisplayName", 256, ()), ("adminDescription", 1024, ()),
           ("userPrincipalName", 1024, ()), ("uid", None, ()), ("preferredLanguage", None, ()),
           *((f"msDS-cloudExtensionAttribute{i}", None, ()) for i in range(1, 21)))
    + [AttributeSyntax("sAMAccountName", Syntax.DIRECTORY_STRING, SAM_ACCOUNT_NAME_MAX,
                       forbidden=SAM_ACCOUNT_NAME_FORBIDDEN)]
    + _attrs(Syntax.IA5_STRING, ("dc", 255, ("domainComponent",)))
    + _attrs(Syntax.DN, ("member", None, ()), ("seeAlso", None, ()), ("manager", None, ()),
             ("managedBy", None, ()))
)

# Samba's DN parser (ldb) refuses, as invalidDNSyntax "Empty RDN value" or "could not parse",
# some RDN values where an escaped comma follows a space: ``o=0 \,,…``, ``o=a \, ,…`` and
# ``o=a \,+cn=x,…`` (measured on Samba 4.17, tests/directory/test_syntax_agreement.py) while
# OpenLDAP and 389-DS take them. It takes ``o=a \,b,…`` and ``o=a \2C,…``: refusing every space
# before an escaped comma is stricter than the DC, which is allowed; syncd's own DNs never have one.
_AD_DN_QUIRK = re.compile(r" \\,")

PROFILES: dict[DirectoryKind, SyntaxProfile] = {
    DirectoryKind.OPENLDAP: SyntaxProfile(DirectoryKind.OPENLDAP, _STANDARD + _SYNCD),
    DirectoryKind.DS389: SyntaxProfile(DirectoryKind.DS389, _STANDARD + _SYNCD + _DS389_ONLY,
                                       checks_values_inside_dns=False),
    # AD names users and groups by cn whatever the layout says (the classes' rDNAttID), and the
    # adapter writes what user and group objects need (sAMAccountName, groupType...).
    DirectoryKind.ACTIVE_DIRECTORY: SyntaxProfile(DirectoryKind.ACTIVE_DIRECTORY, _AD, required_layout={
        "people": ("cn", "user"), "organisations": ("ou", "organizationalUnit"), "groups": ("cn", "group")},
        dn_quirk=_AD_DN_QUIRK),
}


def sam_account_name(account_id: str) -> str:
    """The ``sAMAccountName`` of an account on Active Directory: the first 20 characters of its
    id, spaces and dots at the end dropped (AD refuses a name ending in a dot). syncd's ids are
    32 hexadecimal digits, so that is their first 20 (80 bits): two ids sharing them are
    practically impossible, and the adapter checks before it creates the entry all the same.
    Raises ``ValueError`` for an id AD cannot name (a forbidden character, nothing left)."""
    name = account_id.strip()[:SAM_ACCOUNT_NAME_MAX].rstrip(". ")
    refusal = PROFILES[DirectoryKind.ACTIVE_DIRECTORY].check("sAMAccountName", name)
    if refusal is not None:
        raise ValueError(f"no sAMAccountName for account id {account_id!r}: {refusal.code}")
    return name


def profile(kind: DirectoryKind | str) -> SyntaxProfile:
    return PROFILES[DirectoryKind(kind)]


# -- which syntaxes can carry each account field's values ----------------------------------------

# What syncd writes for each field of ``accounts`` (syncd/core/entries.py): a check-config
# problem when a field is mapped to an attribute whose syntax cannot hold such values.
FIELD_SYNTAXES: dict[str, frozenset[Syntax]] = {
    "civility": frozenset({Syntax.DIRECTORY_STRING, Syntax.PRINTABLE_STRING}),
    "given_name": frozenset({Syntax.DIRECTORY_STRING}),
    "family_name": frozenset({Syntax.DIRECTORY_STRING}),
    "birth_name": frozenset({Syntax.DIRECTORY_STRING}),
    "email": frozenset({Syntax.IA5_STRING, Syntax.DIRECTORY_STRING}),
    "contact_email": frozenset({Syntax.IA5_STRING, Syntax.DIRECTORY_STRING}),
    "phone": frozenset({Syntax.TELEPHONE_NUMBER, Syntax.PRINTABLE_STRING, Syntax.DIRECTORY_STRING}),
    "primary_organisation": frozenset({Syntax.DN}),
    "secondary_organisation": frozenset({Syntax.DN}),
    "internal": frozenset({Syntax.BOOLEAN, Syntax.DIRECTORY_STRING}),
    "director": frozenset({Syntax.BOOLEAN, Syntax.DIRECTORY_STRING}),
    "terms_version": frozenset({Syntax.DIRECTORY_STRING, Syntax.PRINTABLE_STRING}),
    "terms_accepted_at": frozenset({Syntax.GENERALIZED_TIME, Syntax.DIRECTORY_STRING}),
    "status": frozenset({Syntax.DIRECTORY_STRING, Syntax.PRINTABLE_STRING}),
}


# What syncd writes into the attributes the layout names (``directory.people.disabled_attribute``…).
LAYOUT_SYNTAXES: dict[str, frozenset[Syntax]] = {
    "rdn_attribute": frozenset({Syntax.DIRECTORY_STRING, Syntax.PRINTABLE_STRING, Syntax.IA5_STRING}),
    "disabled_attribute": frozenset({Syntax.DIRECTORY_STRING, Syntax.PRINTABLE_STRING}),
    "member_attribute": frozenset({Syntax.DN}),
}


def mapping_problem(kind: DirectoryKind | str, attribute: str, allowed: frozenset[Syntax] | None,
                    holds: str) -> str | None:
    """Why ``attribute`` cannot hold ``holds`` (e.g. "the values of 'phone'") on a ``kind``
    directory (English, for check-config), or None. ``allowed``: the syntaxes that can."""
    prof = profile(kind)
    spec = prof.attribute(attribute)
    if spec is None:
        return (f"{attribute!r} is not an attribute syncd knows for directory.kind {prof.kind.value}: "
                "syncd checks every value it writes against the attribute's syntax, "
                "so it writes only the attributes of its syntax profile: " + ", ".join(sorted(prof.names())))
    if allowed is not None and spec.syntax not in allowed:
        return (f"{attribute!r} has the syntax {spec.syntax.label}, which cannot hold {holds}; "
                "use an attribute of syntax " + " or ".join(sorted(s.label for s in allowed)))
    return None


# How a refusal names each account field to the person who typed it (« Le prénom contient … »).
FIELD_SUBJECTS: dict[str, str] = {
    "civility": "La civilité", "given_name": "Le prénom", "family_name": "Le nom",
    "birth_name": "Le nom de naissance", "email": "L'adresse e-mail professionnelle",
    "contact_email": "L'adresse e-mail de contact", "phone": "Le numéro de téléphone",
    "terms_version": "La version des conditions générales d'utilisation",
}


def refusals(kind: DirectoryKind | str, values: Mapping[str, object],
             attributes: Mapping[str, str]) -> dict[str, Refusal]:
    """Field → refusal for the text ``values`` (field → value) that the attribute each field is
    mapped to (``attributes``: field → LDAP attribute) would not take. A field that is not
    mapped is not written, so it is not checked; nor are values that are not text (booleans,
    dates: syncd formats those itself)."""
    prof = profile(kind)
    out: dict[str, Refusal] = {}
    for name, value in values.items():
        attribute = attributes.get(name)
        if attribute is None or not isinstance(value, str):
            continue
        refusal = prof.check(attribute, value)
        if refusal is not None:
            out[name] = refusal
    return out


def sentence(field_name: str, refusal: Refusal) -> str:
    return refusal.sentence(FIELD_SUBJECTS.get(field_name, "La valeur"))
