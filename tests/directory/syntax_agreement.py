"""Does the directory accept exactly what syncd's validators accept? A property check for any server.

``check_syntax_profile(conn, base_dn, kind)`` and ``check_door_validators(conn, base_dn, kind)``
take an ldap3 connection bound with write rights and a base DN under which they may create a
few entries; they run hypothesis properties and raise on the first disagreement:

* every value the syntax profile of ``kind`` accepts for an attribute (syncd/core/syntax.py) is
  written to that attribute without error; every value it refuses for a reason that is not
  documented as stricter than the server (``Refusal.stricter_than_server``) is refused by the
  server too;
* every value the door validators accept (intake of a queue row, the profile check), with the
  shipped mappings switched to ``kind``, is written to the attribute its field is mapped to.

test_syntax_agreement.py calls them on each server kind: the session's slapd, 389-DS, and a copy
of the Samba AD DC (``DirectoryKind.ACTIVE_DIRECTORY``: AD's classes and attributes, the layout of
deploy/activedirectory).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timezone
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ldap3 import MODIFY_REPLACE, Connection

from syncd.core import syntax
from syncd.core.entries import ldap_value
from syncd.core.intake import IntakeFacts, ValidAccountRequest, validate_row, written_attributes
from syncd.core.model import DirectoryKind
from syncd.core.profile import ProfileRefused, validate_profile_changes
from syncd.directory import names
from syncd.mappings import DirectoryLayout, Mappings, load_mappings

SHIPPED = Path(__file__).resolve().parents[2] / "mappings"

# Where each attribute syncd writes lives: people, organisations and role groups (the RDN
# attributes, o and cn of those entries, are written only as RDNs: not replaced here).
PERSON_ATTRIBUTES = ("cn", "givenName", "sn", "mail", "telephoneNumber", "syncdCivility", "syncdBirthName",
                     "syncdContactMail", "syncdPrimaryOrganisation", "syncdSecondaryOrganisation",
                     "syncdInternal", "syncdDirector", "syncdTermsVersion", "syncdTermsAcceptedAt",
                     "syncdAccountStatus")
ORGANISATION_ATTRIBUTES = ("description", "syncdOrganisationCode", "syncdBranch", "syncdCorrespondent")
GROUP_ATTRIBUTES = ("description", "syncdRoleKey", "syncdApplicationKey", "syncdManagement", "syncdApplicationLabel",
                    "member")


class Disagreement(AssertionError):
    pass


# -- the entries the values are written to --------------------------------------------------------

# On Active Directory the same fields live in attributes of AD's default schema
# (deploy/activedirectory: the layout's people attributes, and servers.AD_ATTRIBUTES).
AD_PERSON_ATTRIBUTES = ("displayName", "personalTitle", "givenName", "sn", "msDS-cloudExtensionAttribute2", "mail",
                        "otherMailbox", "telephoneNumber", "seeAlso", "msDS-cloudExtensionAttribute3",
                        "msDS-cloudExtensionAttribute4", "msDS-cloudExtensionAttribute5",
                        "msDS-cloudExtensionAttribute6", "msDS-cloudExtensionAttribute1")
AD_ORGANISATION_ATTRIBUTES = ("description", "businessCategory", "seeAlso")
AD_GROUP_ATTRIBUTES = ("description", "adminDisplayName", "adminDescription", "info", "displayName", "member")


def attribute_names(kind: DirectoryKind) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(person, organisation, role group) attributes syncd writes on ``kind``."""
    if kind is DirectoryKind.ACTIVE_DIRECTORY:
        return AD_PERSON_ATTRIBUTES, AD_ORGANISATION_ATTRIBUTES, AD_GROUP_ATTRIBUTES
    return PERSON_ATTRIBUTES, ORGANISATION_ATTRIBUTES, GROUP_ATTRIBUTES


class Probe:
    """A person, an organisation and a role group under ``base_dn``, and writes to them."""

    def __init__(self, conn: Connection, base_dn: str, kind: DirectoryKind = DirectoryKind.OPENLDAP):
        self.conn = conn
        self.kind = kind
        tag = uuid.uuid4().hex[:8]
        self.base = names.child_dn("ou", f"syntax-{tag}", base_dn)
        self.attributes = dict(zip(("person", "organisation", "group"), attribute_names(kind), strict=True))
        self._add(self.base, {"objectClass": ["organizationalUnit"], "ou": [self.base.split(",")[0][3:]]})
        if kind is DirectoryKind.ACTIVE_DIRECTORY:     # AD's classes, named as syncd names them there
            self.person = names.child_dn("cn", "probe", self.base)
            self.organisation = names.child_dn("ou", "probe", self.base)
            self.group = names.child_dn("cn", "probe-group", self.base)
            self._add(self.person, {"objectClass": ["user"], "sAMAccountName": [f"probe-{tag}"]})
            self._add(self.organisation, {"objectClass": ["organizationalUnit"]})
            self._add(self.group, {"objectClass": ["group"]})
            return
        self.person = names.child_dn("uid", "probe", self.base)
        self.organisation = names.child_dn("o", "probe", self.base)
        self.group = names.child_dn("cn", "probe", self.base)
        self._add(self.person, {"objectClass": ["inetOrgPerson", "syncdAccount"], "uid": ["probe"],
                                "cn": ["probe"], "sn": ["probe"]})
        self._add(self.organisation, {"objectClass": ["organization", "syncdOrganisation"], "o": ["probe"]})
        self._add(self.group, {"objectClass": ["groupOfNames", "syncdRoleGroup"], "cn": ["probe"],
                               "member": [self.person]})

    def _result(self, outcome) -> dict:
        return outcome[1] if isinstance(outcome, tuple) else self.conn.result

    def _add(self, dn: str, attributes: dict) -> None:
        result = self._result(self.conn.add(dn, attributes=attributes))
        assert result["result"] == 0, f"cannot create {dn}: {result}"

    def entry_of(self, attribute: str) -> str:
        for which, attributes in self.attributes.items():
            if attribute in attributes:
                return getattr(self, which)
        raise KeyError(attribute)

    def write(self, attribute: str, value: str) -> dict:
        """The server's result for replacing ``attribute`` with ``value`` (result 0: accepted)."""
        dn = self.entry_of(attribute)
        return self._result(self.conn.modify(dn, {attribute: [(MODIFY_REPLACE, [value])]}))


# -- generated values ---------------------------------------------------------------------------

_SPECIALS = "\x00\t\n\x1b\x7f\x85 ;#_°*()\\,+=\"<>'/:?.-@éèçÉßœ€’\u00a0\u200b\ufeff\U0001f600"
_text = st.one_of(
    st.text(st.sampled_from(sorted(syntax.PRINTABLE)), min_size=1, max_size=24),
    st.text(st.characters(codec="utf-8"), max_size=24),
    st.text(st.one_of(st.sampled_from(_SPECIALS), st.characters(min_codepoint=0x20, max_codepoint=0x7e)),
            min_size=1, max_size=24),
)
_name = st.text(st.one_of(st.characters(categories=["L", "M"]), st.sampled_from(" '’.-")), min_size=1, max_size=40)
_phone = st.lists(st.sampled_from(list("0123456789") * 3 + [" ", "+", "-", ".", "(", ")", "/", ";", "#", "_",
                                                             "°", "x", " poste ", " n°", " ext. ", ":"]),
                  min_size=1, max_size=24).map("".join)
_local = st.one_of(st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,20}", fullmatch=True),
                   st.text(st.sampled_from("abcdeéèçjöøñß.-_+"), min_size=1, max_size=12))
_domain = st.sampled_from(["lassuranceretraite.fr", "urssaf.fr", "example.org", "exämple.fr", "xn--exmple-cua.fr",
                           "gmail.com", "münchen.de"])
_email = st.one_of(st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain), st.emails(), _text)
_time = st.one_of(
    st.datetimes(timezones=st.just(timezone.utc)).map(ldap_value),
    st.from_regex(r"[0-9]{8}([0-9]{2}){1,3}([.,][0-9]{1,3})?(Z|[+-][0-9]{2}([0-9]{2})?)", fullmatch=True),
    _text,
)
_boolean = st.one_of(st.sampled_from(["TRUE", "FALSE", "true", "False", "1", "0", "yes", " TRUE"]), _text)


def _dn(base_dn: str) -> st.SearchStrategy[str]:
    rdn_type = st.sampled_from(["o", "cn", "uid", "ou", "dc", "mail", "l", "syncdRoleKey", "nosuchattribute"])

    def build(kind: str, value: str) -> str:
        try:
            return names.child_dn(kind, value, base_dn)
        except Exception:   # noqa: BLE001 - an RDN value names.py refuses: try it raw
            return f"{kind}={value},{base_dn}"
    return st.one_of(st.builds(build, rdn_type, _text), _text)


def values_for(spec: syntax.AttributeSyntax, base_dn: str) -> st.SearchStrategy[str]:
    return {
        syntax.Syntax.DIRECTORY_STRING: st.one_of(_text, _name),
        syntax.Syntax.IA5_STRING: st.one_of(_email, _text),
        syntax.Syntax.PRINTABLE_STRING: st.one_of(_phone, _text),
        syntax.Syntax.TELEPHONE_NUMBER: st.one_of(_phone, _text),
        syntax.Syntax.BOOLEAN: _boolean,
        syntax.Syntax.GENERALIZED_TIME: _time,
        syntax.Syntax.DN: _dn(base_dn),
    }[spec.syntax]


def _settings(examples: int) -> Callable:
    return settings(max_examples=examples, deadline=None, derandomize=False, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


# -- the two properties -------------------------------------------------------------------------

def tested_attributes(kind: DirectoryKind) -> list[syntax.AttributeSyntax]:
    prof = syntax.profile(kind)
    wanted = [name for names_ in attribute_names(kind) for name in names_]
    return [prof.attribute(name) for name in dict.fromkeys(wanted)]


def check_syntax_profile(conn: Connection, base_dn: str, kind: DirectoryKind, *, examples: int = 40) -> None:
    """For each attribute syncd writes: what the profile accepts, the server takes; what it refuses
    for a reason not documented as stricter than the server, the server refuses."""
    probe = Probe(conn, base_dn, kind)
    prof = syntax.profile(kind)
    for spec in tested_attributes(kind):
        _agreement(spec, prof, probe, kind, examples)()


def names_no_object(result: dict) -> bool:
    """AD's answer to a DN value that is well formed but names no object (ERROR_DS_OBJ_NOT_FOUND
    / "Referenced object not found"): not a syntax refusal. syncd writes DNs of its own entries."""
    return result["result"] in (19, 32) and any(m in str(result.get("message", ""))
                                               for m in ("000020B5", "00000525", "Referenced object not found",
                                                         "specified dn doesn't exist"))


def _agreement(spec, prof, probe: "Probe", kind: DirectoryKind, examples: int):
    """The property for one attribute (a function of its own, so each binds its own ``spec``)."""
    @_settings(examples)
    @given(values_for(spec, probe.base))
    def agrees(value: str) -> None:
        refusal = prof.check(spec.name, value)
        if refusal is not None and refusal.stricter_than_server:
            return
        result = probe.write(spec.name, value)
        if refusal is None and spec.syntax is syntax.Syntax.DN and names_no_object(result):
            return    # a well-formed DN of no entry: AD keeps references to existing objects only
        if refusal is None and result["result"] != 0:
            raise Disagreement(f"{kind.value}: the profile accepts {value!r} for {spec.name} "
                               f"({spec.syntax.label}); the server refused it: {result['description']} "
                               f"{result.get('message', '')}")
        if refusal is not None and result["result"] == 0:
            raise Disagreement(f"{kind.value}: the profile refuses {value!r} for {spec.name} "
                               f"({refusal.code}: {refusal.reason}); the server took it")
    return agrees


def shipped_mappings(kind: DirectoryKind) -> Mappings:
    """The shipped mappings on ``kind``: their directory switched to it, or on AD replaced by
    deploy/activedirectory's (AD keeps the fields in attributes of its own schema)."""
    m = load_mappings(SHIPPED)
    if kind is DirectoryKind.ACTIVE_DIRECTORY:
        data = yaml.safe_load((SHIPPED.parent / "deploy" / "activedirectory" / "directory.yaml").read_text())
        return m.model_copy(update={"directory": DirectoryLayout.model_validate(data["directory"])})
    return m.model_copy(update={"directory": m.directory.model_copy(update={"kind": kind})})


def check_door_validators(conn: Connection, base_dn: str, kind: DirectoryKind, *, examples: int = 120) -> None:
    """Every value intake and the profile check accept is written to its mapped attribute."""
    probe = Probe(conn, base_dn, kind)
    mappings = shipped_mappings(kind)
    attributes = written_attributes(mappings)
    account = {"director": False, "primary_organisation": "CARSAT-RA"}

    def written(field: str, value: str) -> None:
        if field not in attributes or value is None:
            return
        result = probe.write(attributes[field], value)
        if result["result"] != 0:
            raise Disagreement(f"{kind.value}: the door accepts {value!r} for {field} "
                               f"({attributes[field]}); the server refused it: {result['description']}")

    @_settings(examples)
    @given(email=_email, given_name=st.one_of(_name, _text), family_name=st.one_of(_name, _text),
           civility=st.sampled_from([None, "M.", "mme", "Madame", "Dr"]), terms_version=st.one_of(_text, st.none()))
    def intake_agrees(email, given_name, family_name, civility, terms_version) -> None:
        row = {"kind": "account", "email": email, "given_name": given_name, "family_name": family_name,
               "civility": civility, "internal": False, "organisation_code": "CARSAT-RA",
               "terms_accepted": True, "terms_version": terms_version}
        outcome = validate_row(row, IntakeFacts(), mappings)
        if isinstance(outcome, ValidAccountRequest):
            for field in ("email", "given_name", "family_name", "civility", "terms_version"):
                written(field, getattr(outcome, field))

    @_settings(examples)
    @given(field=st.sampled_from(["civility", "given_name", "family_name", "birth_name", "contact_email", "phone"]),
           data=st.data())
    def profile_agrees(field, data) -> None:
        raw = data.draw({"contact_email": _email, "phone": st.one_of(_phone, _text),
                         "civility": st.sampled_from(["M.", "mme", "Dr", "M"])}.get(field, st.one_of(_name, _text)))
        try:
            clean = validate_profile_changes({field: raw}, account, mappings)
        except ProfileRefused:
            return
        written(field, clean[field])

    intake_agrees()
    profile_agrees()
