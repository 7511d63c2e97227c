"""The syntax profiles: taken from schema/, one per directory kind, and the door's French reasons.

Whether slapd agrees with every validator is tested against a real server in
tests/directory/test_syntax_agreement.py; these are the pure rules.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.core import syntax
from syncd.core.intake import IntakeFacts, Rejection, ValidAccountRequest, validate_row
from syncd.core.model import DirectoryKind
from syncd.core.profile import ProfileRefused, validate_profile_changes
from syncd.mappings import AttributeMapping
from tests.core.test_intake import account_row
from tests.factories import mappings

SCHEMA = Path(__file__).resolve().parents[2] / "schema"
M = mappings()
STAFF = {"director": False, "primary_organisation": "CARSAT-RA"}


def schema_syntaxes(path: Path) -> dict[str, str]:
    """NAME → SYNTAX OID of each attribute type in one of our schema files."""
    text = re.sub(r"\n ", "", path.read_text(encoding="utf-8"))
    return {m.group(1): m.group(2) for m in re.finditer(r"NAME\s+'(\w+)'.*?SYNTAX\s+([\d.]+)", text)}


@pytest.mark.parametrize("kind, schema", [(DirectoryKind.OPENLDAP, "openldap/syncd.ldif"),
                                          (DirectoryKind.DS389, "389ds/99syncd.ldif")])
def test_the_profile_of_each_kind_gives_every_attribute_of_our_schema_its_syntax(kind, schema):
    declared = schema_syntaxes(SCHEMA / schema)
    assert len(declared) == 17
    prof = syntax.profile(kind)
    assert {name: prof.attribute(name).syntax.value for name in declared} == declared


def test_every_directory_kind_has_a_profile_and_only_389ds_knows_its_lock_attribute():
    assert set(syntax.PROFILES) == set(DirectoryKind)
    assert syntax.profile("389ds").attribute("nsaccountlock") and not syntax.profile("openldap").attribute("nsAccountLock")
    assert syntax.profile("openldap").attribute("rfc822Mailbox").name == "mail"


@pytest.mark.parametrize("attribute, value, code, stricter", [
    ("mail", "renée@lassuranceretraite.fr", "not_ascii", False),
    ("telephoneNumber", "01 23 45 67 89 ; poste 4", "not_printable", False),
    ("telephoneNumber", "0123456789" * 4, "too_long", True),
    ("syncdTermsVersion", "v1\x00", "control_character", True),
    ("givenName", "", "empty", True),
    ("syncdInternal", "true", "not_boolean", False),
    ("syncdTermsAcceptedAt", "20250229120000Z", "not_time", False),
    ("syncdTermsAcceptedAt", "٢٠٢٤٠١٠١١٢٠٠٠٠Z", "not_time", False),     # Arabic-Indic digits
    ("syncdPrimaryOrganisation", "o=CARSAT-RA,nosuchtype=x", "not_dn", True),
    ("syncdPrimaryOrganisation", "mail=ré,dc=example,dc=org", "not_ascii", False),
])
def test_a_value_the_directory_would_refuse_is_refused_with_a_stable_code(attribute, value, code, stricter):
    refusal = syntax.profile("openldap").check(attribute, value)
    assert (refusal.code, refusal.stricter_than_server) == (code, stricter)


@pytest.mark.parametrize("attribute, value", [
    ("mail", "a.charenne@lassuranceretraite.fr"), ("telephoneNumber", "+33 (0)1 23-45.67/89 poste 4"),
    ("givenName", "Jean-Éric"), ("syncdTermsAcceptedAt", "20240229120000Z"), ("syncdDirector", "FALSE"),
    ("syncdPrimaryOrganisation", "o=CARSAT\\2C RA,ou=organisations,dc=example,dc=org"),
])
def test_a_value_the_directory_takes_is_accepted(attribute, value):
    assert syntax.profile("openldap").check(attribute, value) is None


def test_the_reason_names_the_field_and_the_refused_character_in_french():
    with pytest.raises(ProfileRefused) as refused:
        validate_profile_changes({"phone": "01 23 45 67 89 poste n°4"}, STAFF, M)
    assert refused.value.problems["phone"] == (
        "Le numéro de téléphone contient « ° », que l'annuaire n'accepte pas dans ce champ (sont admis : lettres "
        "sans accent, chiffres, espaces et signes ' ( ) + , - . / : = ?).")


def test_the_attribute_a_field_is_mapped_to_decides_what_the_door_accepts():
    """The same e-mail is refused for mail (IA5String) and taken for a DirectoryString attribute."""
    row = account_row(email="renée@lassuranceretraite.fr")
    refused = validate_row(row, IntakeFacts(), M)
    assert isinstance(refused, Rejection) and refused.code == "bad_email"
    people = M.directory.people
    unicode_mail = people.model_copy(update={"attributes": {**people.attributes,
                                                            "email": AttributeMapping(ldap="displayName")}})
    M2 = M.model_copy(update={"directory": M.directory.model_copy(update={"people": unicode_mail})})
    assert isinstance(validate_row(row, IntakeFacts(), M2), ValidAccountRequest)


@pytest.mark.parametrize("written, kept", [("2026-01", "2026-01"), (" v2.1 ", "v2.1"), ("v1\x00", None),
                                           ("2026*)(uid=*", None), ("v1\\2a", None), ("", None), ("é", None)])
def test_a_terms_version_is_kept_only_when_it_is_plain_text_otherwise_the_policys_is_recorded(written, kept):
    outcome = validate_row(account_row(terms_version=written), IntakeFacts(), M)
    assert outcome.terms_version == (kept or M.policy.terms_version)


# -- Active Directory ----------------------------------------------------------------------------

@given(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32))
def test_an_active_directory_account_name_is_the_first_20_hex_digits_of_the_id(account_id):
    name = syntax.sam_account_name(account_id)
    assert name == account_id[:20]
    assert syntax.profile("active_directory").check("sAMAccountName", name) is None


@pytest.mark.parametrize("char", list(syntax.SAM_ACCOUNT_NAME_FORBIDDEN))
def test_active_directory_refuses_its_forbidden_characters_in_an_account_name(char):
    refusal = syntax.profile("active_directory").check("sAMAccountName", f"ab{char}cd")
    assert refusal is not None and refusal.code == "forbidden_character"
    with pytest.raises(ValueError):
        syntax.sam_account_name(f"ab{char}cd")


def test_active_directory_keeps_mail_in_a_unicode_string_bounded_by_its_range_upper():
    ad = syntax.profile("active_directory")
    assert ad.check("mail", "anne.lée@example.org") is None      # a Unicode string on AD, not IA5
    assert ad.check("givenName", "a" * 65).code == "too_long"
    assert ad.check("syncdAccountStatus", "active").code == "unknown_attribute"


def test_at_intake_a_name_longer_than_ad_keeps_is_refused_in_french_on_active_directory_only():
    values, attributes = {"given_name": "A" * 65}, {"given_name": "givenName"}
    refused = syntax.refusals("active_directory", values, attributes)
    assert refused["given_name"].code == "too_long"
    assert syntax.sentence("given_name", refused["given_name"]).startswith("Le prénom dépasse 64 caractères")
    assert syntax.refusals("openldap", values, attributes) == {}


@pytest.mark.parametrize("value, samba_takes", [("o=0 \\,,ou=x,dc=example,dc=org", False),
                                                ("o=a \\, ,ou=x,dc=example,dc=org", False),
                                                ("o=a \\,b,ou=x,dc=example,dc=org", True)])
def test_a_dn_with_a_space_before_an_escaped_comma_is_refused_on_active_directory_only(value, samba_takes):
    """Samba's DN parser refuses some of these valid DNs (measured); syncd refuses them all there,
    as stricter than the server, and the other servers' profiles take them."""
    refusal = syntax.profile("active_directory").check("seeAlso", value)
    assert refusal.code == "not_dn" and refusal.stricter_than_server
    assert syntax.profile("openldap").check("seeAlso", value) is None
    assert syntax.profile("389ds").check("seeAlso", value) is None
