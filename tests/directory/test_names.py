"""DN and filter building: RFC 4514 / RFC 4515 escaping with hostile values (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ldap3.utils.conv import ldap_escape_to_bytes
from ldap3.utils.dn import parse_dn as ldap3_parse_dn

from syncd.directory import names
from syncd.directory.names import InvalidName
from syncd.errors import DirectoryRejected
from tests.fixtures_ldap import sample_layout

HOSTILE = ',+"\\<>;=#*() \x00é日'
# Text made mostly of the characters that break naive DN and filter building.
hostile_text = st.text(
    alphabet=st.one_of(st.sampled_from(HOSTILE), st.characters(blacklist_categories=("Cs",))),
    min_size=1, max_size=24,
)

LAYOUT = sample_layout("ou=t0000,dc=example,dc=org")


def as_hex_escapes(value: str) -> str:
    """Another valid RFC 4514 spelling of the same value: every byte as \\XX (as slapd does)."""
    return "".join(f"\\{b:02X}" for b in value.encode("utf-8"))


# -- RDN values --------------------------------------------------------------------------------

def test_every_rdn_special_character_gets_a_backslash():
    assert names.escape_rdn_value(',+"\\<>;=#') == '\\,\\+\\"\\\\\\<\\>\\;\\=\\#'


@pytest.mark.parametrize("special", list(',+"\\<>;=#\x00\x1f\x7f'))
def test_one_special_character_among_plain_ones_is_still_escaped(special):
    escaped = names.escape_rdn_value(f"ab{special}cd")
    assert escaped != f"ab{special}cd" and escaped.startswith("ab\\") and escaped.endswith("cd")


def test_a_plain_value_is_its_own_escape():
    assert names.escape_rdn_value("3f2a9c0e-jean.dupont_01@x") == "3f2a9c0e-jean.dupont_01@x"


def test_an_empty_rdn_value_is_refused():
    with pytest.raises(InvalidName):
        names.escape_rdn_value("")


def test_an_invalid_name_is_a_permanent_directory_rejection_and_a_value_error():
    with pytest.raises(DirectoryRejected):
        names.escape_rdn_value("")
    with pytest.raises(ValueError):
        names.escape_rdn_value("")


def test_nul_is_escaped_as_backslash_00():
    assert names.escape_rdn_value("a\x00b") == "a\\00b"


def test_other_control_characters_are_hex_escaped():
    assert names.escape_rdn_value("a\x01b\x7f") == "a\\01b\\7F"


def test_every_hash_is_escaped_not_only_a_leading_one():
    # RFC 4514 requires it in front only; ldap3's DN parser wants it everywhere.
    assert names.escape_rdn_value("#1#2") == "\\#1\\#2"


def test_leading_and_trailing_spaces_are_escaped_but_inner_spaces_are_not():
    assert names.escape_rdn_value("  a b  ") == "\\  a b \\ "


def test_a_lone_space_is_escaped_once():
    assert names.escape_rdn_value(" ") == "\\ "


def test_non_ascii_characters_are_kept_as_they_are():
    assert names.escape_rdn_value("Élodie 日本") == "Élodie 日本"


@pytest.mark.parametrize("value", [None, 42, b"bytes", "lone \ud800 surrogate"])
def test_a_value_that_is_not_valid_text_is_refused(value):
    with pytest.raises(InvalidName):
        names.escape_rdn_value(value)


def unescape_rdn_value(escaped: str) -> str:
    """The value an escaped RDN value stands for, as syncd's DN parser reads it."""
    [[(_, value)]] = names.parse_dn(f"cn={escaped}")
    return value


@given(hostile_text)
def test_an_escaped_value_unescapes_to_itself(value):
    assert unescape_rdn_value(names.escape_rdn_value(value)) == value


@given(hostile_text)
def test_an_escaped_value_stays_one_rdn_for_ldap3s_parser(value):
    escaped = names.escape_rdn_value(value)
    parsed = ldap3_parse_dn(f"uid={escaped},ou=people,dc=example,dc=org")
    assert [(a, sep) for a, _, sep in parsed] == [("uid", ","), ("ou", ","), ("dc", ","), ("dc", "")]
    assert parsed[0][1] == escaped
    assert unescape_rdn_value(parsed[0][1]) == value


@given(hostile_text)
def test_an_escaped_value_parses_back_with_our_parser(value):
    assert names.parse_dn(names.person_dn(LAYOUT, value))[0] == [("uid", value)]


# -- parsing and normalising -------------------------------------------------------------------

def test_parse_dn_reads_escapes_hex_escapes_and_multi_valued_rdns():
    assert names.parse_dn("cn=a\\2Cb+uid=x\\,y, ou=People ,dc=org") == [
        [("cn", "a,b"), ("uid", "x,y")], [("ou", "People")], [("dc", "org")]]


def test_parse_dn_returns_a_ber_value_as_bytes():
    assert names.parse_dn("cn=#04024869,dc=x") == [[("cn", b"\x04\x02Hi")], [("dc", "x")]]


@given(hostile_text)
def test_format_dn_is_the_inverse_of_parse_dn(value):
    dn = names.person_dn(LAYOUT, value)
    assert names.parse_dn(names.format_dn(names.parse_dn(dn))) == names.parse_dn(dn)


def test_the_empty_dn_parses_to_no_rdns():
    assert names.parse_dn("") == []


@pytest.mark.parametrize("dn", ["uid", "uid=a,", "=a", "uid=a\\", "uid=a\\zz", "uid=a;b", "1uid=a",
                                "uid=a\\C3", "cn=#0"])
def test_a_malformed_dn_is_refused(dn):
    with pytest.raises(InvalidName):
        names.parse_dn(dn)


def test_normalising_ignores_case_spacing_and_escaping_style():
    ours = names.person_dn(LAYOUT, "Jean,Dupont ")
    slapds = "UID=jean\\2Cdupont\\20, OU=people,ou=T0000,DC=Example,dc=ORG"
    assert names.normalise_dn(ours) == names.normalise_dn(slapds)
    

def test_normalising_sorts_the_parts_of_a_multi_valued_rdn():
    assert names.normalise_dn("uid=b+cn=a,dc=x") == names.normalise_dn("CN=A+UID=B,dc=x") == "cn=a+uid=b,dc=x"


def test_normalising_folds_inner_runs_of_spaces_like_the_server():
    assert names.normalise_dn("cn=a   b,dc=x") == "cn=a b,dc=x"


def test_different_values_do_not_normalise_equal():
    assert names.normalise_dn("uid=a\\+b,dc=x") != names.normalise_dn("uid=a+b=c,dc=x")
    assert names.normalise_dn("uid=ab,dc=x") != names.normalise_dn("uid=a b,dc=x")


@given(hostile_text)
def test_any_spelling_of_a_value_normalises_to_the_same_dn(value):
    ours = names.person_dn(LAYOUT, value)
    hexed = f"UID={as_hex_escapes(value)},OU=people,OU=t0000,DC=example,DC=org"
    assert names.normalise_dn(ours) == names.normalise_dn(hexed)


@given(st.text(alphabet="abXY09 ,=.-_'()*[]", min_size=0, max_size=30))
def test_the_fast_path_of_normalising_agrees_with_the_full_parser(text):
    dn = f"cn={text},DC=Example"
    try:
        expected = names._normalise_parsed(dn)
    except InvalidName:
        with pytest.raises(InvalidName):
            names.normalise_dn(dn)
        return
    assert names.normalise_dn(dn) == expected


@given(hostile_text)
def test_normalising_is_idempotent_and_gives_a_parseable_dn(value):
    once = names.normalise_dn(names.person_dn(LAYOUT, value))
    assert names.normalise_dn(once) == once
    assert len(names.parse_dn(once)) == 5


# -- builders ----------------------------------------------------------------------------------

def test_the_builders_follow_the_layout():
    assert names.branch_dn(LAYOUT, "people") == "ou=people,ou=t0000,dc=example,dc=org"
    assert names.person_dn(LAYOUT, "a+b") == "uid=a\\+b,ou=people,ou=t0000,dc=example,dc=org"
    assert names.organisation_dn(LAYOUT, "CPAM-75") == "o=CPAM-75,ou=organisations,ou=t0000,dc=example,dc=org"
    assert names.group_dn(LAYOUT, "Egap, admin") == "cn=Egap\\, admin,ou=groups,ou=t0000,dc=example,dc=org"
    assert names.placeholder_dn(LAYOUT) == "cn=syncd-placeholder,ou=t0000,dc=example,dc=org"


def test_an_unknown_branch_is_refused():
    with pytest.raises(InvalidName):
        names.branch_dn(LAYOUT, "printers")  # type: ignore[arg-type]


def test_an_empty_account_id_is_refused():
    with pytest.raises(InvalidName):
        names.person_dn(LAYOUT, "")


# -- attribute names ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["uid", "givenName", "x-custom", "2.5.4.3", "cn;lang-fr"])
def test_attribute_descriptors_oids_and_options_are_valid_names(name):
    assert names.validate_attribute_name(name) == name


@pytest.mark.parametrize("name", ["", "1uid", "uid)(cn=*", "u id", "uid=", "2.", "é", "01.2"])
def test_hostile_or_malformed_attribute_names_are_refused(name):
    with pytest.raises(InvalidName):
        names.validate_attribute_name(name)


# -- filters -----------------------------------------------------------------------------------

def test_filter_escaping_covers_star_parentheses_backslash_and_nul():
    assert names.escape_filter_value("*()\\\x00") == "\\2a\\28\\29\\5c\\00"


def test_filter_escaping_encodes_non_ascii_as_utf8_bytes():
    assert names.escape_filter_value("é") == "\\c3\\a9"


def test_filter_eq_escapes_the_value_and_validates_the_attribute():
    assert names.filter_eq("uid", "a*)(uid=*") == "(uid=a\\2a\\29\\28uid=\\2a)"
    with pytest.raises(InvalidName):
        names.filter_eq("uid)(objectClass=*", "x")


@given(hostile_text)
def test_a_filter_value_decodes_back_to_the_original_bytes(value):
    escaped = names.escape_filter_value(value)
    assert not any(c in escaped.replace("\\", "") for c in "*()\x00")
    assert ldap_escape_to_bytes(escaped) == value.encode("utf-8")


def test_filters_combine_with_and_or_and_not():
    a, b = names.filter_eq("uid", "a"), names.filter_present("mail")
    assert names.filter_and(a, b) == "(&(uid=a)(mail=*))"
    assert names.filter_or(a, b) == "(|(uid=a)(mail=*))"
    assert names.filter_and(a) == a
    assert names.filter_not(a) == "(!(uid=a))"


@pytest.mark.parametrize("bad", [(), ("uid=a",), ("(uid=a)", "mail=*")])
def test_combining_nothing_or_unparenthesised_filters_is_refused(bad):
    with pytest.raises(InvalidName):
        names.filter_and(*bad)
    with pytest.raises(InvalidName):
        names.filter_or(*bad)
