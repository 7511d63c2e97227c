"""Active Directory on a real Samba AD DC: the test DC itself, what syncd writes there (users,
groups, passwords over TLS, the disable bit, membership conflicts) and member lists of 5,000 read
through range retrieval."""

from __future__ import annotations

import pytest
from ldap3 import BASE, MODIFY_REPLACE

from syncd.directory import Directory, names, ranges
from syncd.directory.connection import open_connection, safe_close
from syncd.directory.servers import ACCOUNTDISABLE, GLOBAL_SECURITY_GROUP
from syncd.errors import DirectoryRejected
from syncd.reconcile.ldapread import LeanReader
from syncd.web.password_page import PASSWORD_ERRORS_FR, _directory_refusal
from tests.fixtures_ad import BULK_GROUP, BULK_MEMBERS, ad_sample_layout, bulk_members

pytestmark = [pytest.mark.samba_ad, pytest.mark.long(35)]


def test_the_dc_answers_over_ldaps_with_the_certificate_it_generated(samba_ad):
    conn = open_connection(samba_ad.ldap_settings())
    try:
        _, result, response, _ = conn.search("", "(objectClass=*)", BASE, attributes=["defaultNamingContext"])
        assert result["result"] == 0
        assert response[0]["attributes"]["defaultNamingContext"] == [samba_ad.suffix]
    finally:
        safe_close(conn)


def test_a_certificate_for_another_name_is_refused(samba_ad):
    settings = samba_ad.ldap_settings()
    wrong = settings.model_copy(update={"tls": settings.tls.model_copy(update={"server_name": "elsewhere.example.org"})})
    with pytest.raises(DirectoryRejected, match="TLS"):
        open_connection(wrong)


# -- what syncd writes on AD ---------------------------------------------------------------------

ACCOUNT_ID = "0123456789abcdef0123456789abcdef"
PASSWORD = "Un mot de passe solide 42"


def read(conn, dn, *attrs):
    _, result, response, _ = conn.search(dn, "(objectClass=*)", BASE, attributes=list(attrs))
    assert result["result"] == 0, result
    return {k: v for k, v in response[0]["attributes"].items()}


def test_a_user_gets_its_id_as_cn_a_derived_login_and_its_full_name_as_display_name(ad_directory, ad_admin):
    assert ad_directory.upsert_account(ACCOUNT_ID, {"given_name": "Anne", "family_name": "Lée", "cn": "Anne Lée",
                                                    "email": "anne.lee@example.org", "status": "active"}) == "created"
    attrs = read(ad_admin, names.person_dn(ad_directory.layout, ACCOUNT_ID), "cn", "displayName", "sAMAccountName",
                 "userPrincipalName", "userAccountControl", "mail", "msDS-cloudExtensionAttribute1")
    assert attrs["cn"] == [ACCOUNT_ID] and attrs["displayName"] == ["Anne Lée"]
    assert attrs["sAMAccountName"] == [ACCOUNT_ID[:20]]
    assert attrs["userPrincipalName"] == [f"{ACCOUNT_ID[:20]}@example.org"]
    assert int(attrs["userAccountControl"][0]) & ACCOUNTDISABLE == 0
    assert attrs["msDS-cloudExtensionAttribute1"] == ["active"]
    assert ad_directory.upsert_account(ACCOUNT_ID, {"given_name": "Anne", "cn": "Anne Lée"}) == "unchanged"


def test_two_ids_with_the_same_first_20_digits_are_refused_before_ad_is_asked(ad_directory):
    ad_directory.upsert_account(ACCOUNT_ID, {"family_name": "Lée"})
    twin = ACCOUNT_ID[:20] + "ffffffffffff"
    with pytest.raises(DirectoryRejected, match="sAMAccountName"):
        ad_directory.upsert_account(twin, {"family_name": "Lée"})


def test_a_role_group_is_a_global_security_group_holding_syncds_keys_in_the_default_schema(ad_directory, ad_admin):
    assert ad_directory.ensure_group("app-egap", "egap.admin", "egap", "Egap", management="local") == "created"
    attrs = read(ad_admin, names.group_dn(ad_directory.layout, "app-egap"), "groupType", "adminDisplayName",
                 "adminDescription", "info", "member")
    assert int(attrs["groupType"][0]) == int(GLOBAL_SECURITY_GROUP)
    assert (attrs["adminDisplayName"], attrs["adminDescription"], attrs["info"]) == (["egap.admin"], ["egap"], ["local"])
    assert attrs["member"] == []
    assert ad_directory.members_of_group("app-egap") == set()


def test_a_password_is_set_over_tls_and_binds_and_never_in_clear(ad_directory, samba_ad):
    dn = names.person_dn(ad_directory.layout, ACCOUNT_ID)
    ad_directory.upsert_account(ACCOUNT_ID, {"family_name": "Lée", "status": "active"})
    ad_directory.set_password(ACCOUNT_ID, PASSWORD)
    assert ad_directory.can_bind(dn, PASSWORD) is True
    assert ad_directory.can_bind(dn, "pas le bon") is False
    plain = Directory(samba_ad.ldap_settings(tls=False), ad_directory.layout)
    try:
        with pytest.raises(DirectoryRejected, match="encrypted connection only"):
            plain.set_password(ACCOUNT_ID, PASSWORD + "!")
    finally:
        plain.close()
    assert ad_directory.can_bind(dn, PASSWORD) is True


def test_a_password_the_domain_policy_refuses_is_a_constraint_violation_the_password_page_explains(ad_directory):
    ad_directory.upsert_account(ACCOUNT_ID, {"family_name": "Lée", "status": "active"})
    with pytest.raises(DirectoryRejected) as refused:
        ad_directory.set_password(ACCOUNT_ID, "court")
    assert refused.value.result_code == 19 and "password policy" in str(refused.value)
    assert "court" not in str(refused.value)
    assert _directory_refusal(refused.value) == PASSWORD_ERRORS_FR["directory"]


def test_disabling_sets_the_disable_bit_keeps_the_others_and_the_bind_fails(ad_directory, ad_admin):
    dn = names.person_dn(ad_directory.layout, ACCOUNT_ID)
    ad_directory.upsert_account(ACCOUNT_ID, {"family_name": "Lée", "status": "active"})
    ad_directory.set_password(ACCOUNT_ID, PASSWORD)
    never_expires = 0x10000          # DONT_EXPIRE_PASSWD: the domain's, not syncd's
    uac = int(read(ad_admin, dn, "userAccountControl")["userAccountControl"][0])
    ad_admin.modify(dn, {"userAccountControl": [(MODIFY_REPLACE, [str(uac | never_expires)])]})
    assert ad_directory.disable_account(ACCOUNT_ID) is True
    uac = int(read(ad_admin, dn, "userAccountControl")["userAccountControl"][0])
    assert uac & ACCOUNTDISABLE and uac & never_expires
    assert ad_directory.can_bind(dn, PASSWORD) is False
    ad_directory.upsert_account(ACCOUNT_ID, {"status": "active"})
    uac = int(read(ad_admin, dn, "userAccountControl")["userAccountControl"][0])
    assert not uac & ACCOUNTDISABLE and uac & never_expires
    assert ad_directory.can_bind(dn, PASSWORD) is True


def test_membership_writes_are_idempotent_without_permissive_modify(ad_directory):
    ids = [f"{i:02x}{'c' * 30}" for i in range(3)]
    dns = [names.person_dn(ad_directory.layout, i) for i in ids]
    for i in ids:
        ad_directory.upsert_account(i, {"family_name": "Lée"})
    ad_directory.ensure_group("g", "r", "app")
    assert ad_directory.supports_permissive_modify() is False
    assert ad_directory.add_members("g", dns[:2]).conflicts == 0
    assert ad_directory.add_members("g", dns).conflicts == 2               # entryAlreadyExists (68)
    gone = names.person_dn(ad_directory.layout, "f" * 32)                   # names no object at all
    change = ad_directory.remove_members("g", [dns[0], dns[0].upper(), gone])
    assert change.requested == 2 and change.conflicts == 1                  # unwillingToPerform (53)
    assert ad_directory.remove_members("g", [dns[0]]).conflicts == 1
    assert ad_directory.members_of_group("g") == {names.normalise_dn(d) for d in dns[1:]}
    assert ad_directory.groups_of_person(ids[1]) == {names.normalise_dn(names.group_dn(ad_directory.layout, "g"))}


# -- 5,000 members: range retrieval ---------------------------------------------------------------

# The first of these builds the 5,000 users of the bulk template (ad_bulk_template): minutes on a
# loaded machine, more than the default per-test timeout.
BULK_TIMEOUT = pytest.mark.timeout(900)


def bulk_directory(dc):
    return Directory(dc.ldap_settings(), ad_sample_layout())


@BULK_TIMEOUT
def test_samba_returns_every_value_to_a_plain_read_so_syncd_asks_for_ranges(samba_ad_bulk):
    """Measured: Samba 4.17 does not cap a plain read at MaxValRange as Windows does, and honours
    an explicit range; syncd asks for ranges on AD either way."""
    layout = ad_sample_layout()
    conn = open_connection(samba_ad_bulk.ldap_settings())
    try:
        _, _, response, _ = conn.search(names.group_dn(layout, BULK_GROUP), "(objectClass=*)", BASE, attributes=["member"])
        assert len(response[0]["attributes"]["member"]) == BULK_MEMBERS
        conn.empty_attributes = False
        _, _, response, _ = conn.search(names.group_dn(layout, BULK_GROUP), "(objectClass=*)", BASE,
                                        attributes=["member;range=0-1499"])
        assert [(k, len(v)) for k, v in response[0]["attributes"].items()] == [("member;range=0-1499", 1500)]
    finally:
        safe_close(conn)


@BULK_TIMEOUT
def test_a_5000_member_group_is_read_back_whole_through_range_retrieval(samba_ad_bulk, monkeypatch):
    asked: list[str] = []
    real = ranges.ranged
    monkeypatch.setattr(ranges, "ranged", lambda *a, **k: asked.append(real(*a, **k)) or asked[-1])
    d = bulk_directory(samba_ad_bulk)
    try:
        expected = {names.normalise_dn(dn) for dn, _ in bulk_members(d.layout)}
        assert d.members_of_group(BULK_GROUP) == expected
    finally:
        d.close()
    assert asked == ["member;range=0-1499", "member;range=1500-2999", "member;range=3000-4499",
                     "member;range=4500-5999"]


@BULK_TIMEOUT
def test_the_reconcile_reader_completes_a_ranged_member_list_in_a_paged_search(samba_ad_bulk):
    layout = ad_sample_layout()
    with LeanReader(samba_ad_bulk.ldap_settings()) as reader:
        groups = list(reader.search(names.branch_dn(layout, "groups"), "(objectClass=group)",
                                    [ranges.ranged("member")], scope="one", page_size=10))
        people = sum(1 for _ in reader.search(names.branch_dn(layout, "people"), "(objectClass=user)", ["cn"],
                                              page_size=500))
    [(dn, attrs)] = groups
    assert list(attrs) == ["member"] and len(set(attrs["member"])) == BULK_MEMBERS
    assert people == BULK_MEMBERS
