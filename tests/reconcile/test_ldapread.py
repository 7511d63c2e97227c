"""The lean reader decodes what ldap3 decodes; the comparison keys agree with ``normalise_dn``."""

from __future__ import annotations

import pytest
from hypothesis import example, given, strategies as st

from syncd.directory import names
from syncd.directory.connection import NoSuchEntry
from syncd.reconcile.compare import Keys
from syncd.reconcile.ldapread import LeanReader, MalformedResponse, message_size, parse_entry, parse_message_head
from tests.fixtures_ldap import sample_layout

# --- the decoder, on hand-made messages ---------------------------------------------------------


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _entry_message(msgid: int, dn: str, attrs: dict[str, list[str]]) -> bytes:
    partials = b"".join(
        _tlv(0x30, _tlv(0x04, a.encode()) + _tlv(0x31, b"".join(_tlv(0x04, v.encode()) for v in vs)))
        for a, vs in attrs.items())
    op = _tlv(0x64, _tlv(0x04, dn.encode()) + _tlv(0x30, partials))
    return _tlv(0x30, _tlv(0x02, msgid.to_bytes(2, "big")) + op)


def test_an_entry_with_long_form_lengths_and_utf8_values_is_decoded():
    attrs = {"member": [f"uid=u{i},ou=people,dc=example,dc=org" for i in range(3000)], "cn": ["Éloïse Çà"]}
    m = _entry_message(300, "cn=g,dc=example,dc=org", attrs)
    assert message_size(bytearray(m), 0) == len(m)
    assert message_size(bytearray(m[:3]), 0) == -1
    msgid, tag, at = parse_message_head(m)
    assert (msgid, tag) == (300, 0x64)
    assert parse_entry(memoryview(m), at) == ("cn=g,dc=example,dc=org", attrs)


@given(st.integers(min_value=0, max_value=400), st.integers(min_value=1, max_value=65_535))
def test_messages_of_every_size_are_measured_and_decoded_whole_or_said_incomplete(pad, msgid):
    attrs = {"entryCSN": ["20261206201058.447602Z#000000#000#000000"], "description": ["x" * pad]}
    m = _entry_message(msgid, "uid=abc,ou=people,dc=example,dc=org", attrs)
    assert message_size(bytearray(m), 0) == len(m)
    header = 2 if m[1] < 0x80 else 2 + (m[1] & 0x7F)
    assert all(message_size(bytearray(m[:k]), 0) == -1 for k in range(header))
    framed = bytearray(b"\x00" * 5 + m)
    at_msgid, tag, at = parse_message_head(framed, 5)
    assert (at_msgid, tag) == (msgid, 0x64)
    assert parse_entry(framed, at, len(framed)) == ("uid=abc,ou=people,dc=example,dc=org",
                                                    {a.lower(): v for a, v in attrs.items()})


def test_a_message_that_is_not_an_ldap_message_is_refused():
    with pytest.raises(MalformedResponse):
        message_size(bytearray(b"\x04\x01x"), 0)
    with pytest.raises(MalformedResponse):
        message_size(bytearray(b"\x30\x85\x00\x00\x00\x00\x01"), 0)


# --- on a real slapd ------------------------------------------------------------------------------

@pytest.mark.slapd
def test_paged_reads_give_what_ldap3_gives(directory, ldap_settings):
    layout = directory.layout
    for i in range(7):
        directory.upsert_account(f"user{i}", {"given_name": "Zoé" if i % 2 else "Luc", "family_name": f"N{i}",
                                              "email": f"u{i}@example.org", "phone": None if i == 3 else "+33 1"})
    directory.upsert_account("multi", {"sn": "M", "description": ["un", "deux", "trois"]})
    people = names.branch_dn(layout, "people")
    wanted = ["givenName", "sn", "mail", "telephoneNumber", "description"]
    expected = {}
    for e in directory.iter_entries(people, "(objectClass=*)", wanted, scope="one"):
        expected[e["dn"]] = {a.lower(): sorted(v) for a, v in e.items() if a != "dn" and v}
    with LeanReader(ldap_settings) as reader:
        got = {dn: {a: sorted(v) for a, v in attrs.items()}
               for dn, attrs in reader.search(people, "(objectClass=*)", wanted, scope="one", page_size=2)}
    assert got == expected and len(got) == 8
    assert got[names.person_dn(layout, "user1")]["givenname"] == ["Zoé"]


@pytest.mark.slapd
def test_a_group_of_thousands_of_members_is_read_whole_and_compares_answer(directory, ldap_settings):
    layout = directory.layout
    directory.ensure_group("big", "big", "app")
    values = [f"uid=member-{i:05d},{names.branch_dn(layout, 'people')}" for i in range(12000)]
    directory.add_members("big", values)
    group = names.group_dn(layout, "big")
    with LeanReader(ldap_settings) as reader:
        attrs = reader.read(group, ["member"])
        assert len(attrs["member"]) == 12001                 # with the placeholder
        assert set(values) <= set(attrs["member"])
        assert reader.compare(group, "member", values[5000]) is True
        assert reader.compare(group, "member", "uid=nobody," + layout.base_dn) is False
        assert reader.compare(names.group_dn(layout, "nope"), "member", values[0]) is None


@pytest.mark.slapd
def test_a_missing_base_and_an_abandoned_search_leave_the_reader_usable(directory, ldap_settings):
    layout = directory.layout
    for i in range(5):
        directory.upsert_account(f"p{i}", {"sn": "x"})
    people = names.branch_dn(layout, "people")
    with LeanReader(ldap_settings) as reader:
        assert list(reader.search("ou=nope," + layout.base_dn, "(objectClass=*)", ["cn"], missing_ok=True)) == []
        with pytest.raises(NoSuchEntry):
            list(reader.search("ou=nope," + layout.base_dn, "(objectClass=*)", ["cn"]))
        it = reader.search(people, "(objectClass=*)", ["sn"], page_size=2)
        next(it)
        it.close()                                    # abandoned half-way through
        assert len(list(reader.search(people, "(objectClass=*)", ["sn"]))) == 5


# --- comparison keys -------------------------------------------------------------------------------

LAYOUT = sample_layout("dc=example,dc=org")
KEYS = Keys(LAYOUT)


@pytest.mark.parametrize("spelling", [
    "uid=AbC-1.x,ou=people,dc=example,dc=org",
    "UID=abc-1.X,OU=People,DC=Example,DC=org",
    "uid = abc-1.x , ou=people, dc=example, dc=org",
])
def test_every_spelling_of_a_person_dn_gets_the_key_of_its_id(spelling):
    assert KEYS.of_dn(spelling) == KEYS.of_id("abc-1.X") == "abc-1.x"
    assert KEYS.account_id_of_dn(spelling).lower() == "abc-1.x"


@example("0 ")   # found by this test: the DN's normal form drops the trailing space, the key must too
@given(st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s))
def test_keys_of_ids_and_of_their_dns_agree_for_any_id(account_id):
    dn = names.person_dn(LAYOUT, account_id)
    assert KEYS.of_dn(dn) == KEYS.of_id(account_id)
    assert KEYS.of_dn(KEYS.dn(account_id)) == KEYS.of_id(account_id)


def test_other_dns_keep_their_normalised_form():
    assert KEYS.of_dn("CN=Batch, OU=Services,dc=example,dc=org") == "cn=batch,ou=services,dc=example,dc=org"
    assert KEYS.of_dn("uid=x,ou=other,dc=example,dc=org") == "uid=x,ou=other,dc=example,dc=org"
    assert KEYS.placeholder == names.normalise_dn(LAYOUT.groups.placeholder_member)
