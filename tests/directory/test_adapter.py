"""The Directory adapter's contract, on a real slapd configured as deploy/openldap ships it, on a
real 389 Directory Server configured from deploy/389ds (memberOf plugin, no permissive modify,
syncd bound as its service account) and on a Samba AD DC with deploy/activedirectory's layout.

Every test that takes ``directory`` / ``make_directory`` / ``ldap_layout`` / ``admin`` runs on
each server (``server_kind``, tests/fixtures_kinds.py and tests/directory/conftest.py); where the
servers rightly differ, the test says how.
"""

from __future__ import annotations

import itertools
import threading
import unicodedata
import uuid

import pytest
import structlog
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ldap3 import BASE, MODIFY_DELETE, MODIFY_REPLACE

from syncd.devslapd import DevSlapd
from syncd.directory import Directory, NoSuchEntry, adapter
from syncd.directory import names
from syncd.errors import DirectoryRejected, DirectoryUnavailable
from tests.directory.conftest import skip_on
from tests.fixtures_kinds import shows_locked, status_attribute
from tests.fixtures_ldap import sample_layout

pytestmark = pytest.mark.slapd

HOSTILE_ID = ' #Jean+"Dupont",<x>;\\=*()\x00é日 '
# 389-DS's 7-bit check plugin (on by default) refuses a uid that is not ASCII, and a NUL in an
# RDN value comes back as a second uid value "\\00" there (deploy/389ds/README.md).
HOSTILE_ASCII_ID = HOSTILE_ID.replace("é日", "").replace("\x00", "")


def read(conn, dn, *attrs):
    _, result, response, _ = conn.search(dn, "(objectClass=*)", BASE, attributes=list(attrs) or ["*"])
    assert result["result"] == 0, result
    return response[0]["attributes"]


def person(directory, account_id, **extra):
    directory.upsert_account(account_id, {"given_name": "Ann", "family_name": "Lee", **extra})
    return names.person_dn(directory.layout, account_id)


def member_dns(directory, server_kind, admin, ids):
    """The DNs of people ``ids``; on Active Directory they are created (AD refuses a member value
    naming no object; elsewhere a member is just a name)."""
    dns = [names.person_dn(directory.layout, i) for i in ids]
    if server_kind == "active_directory":
        for dn, account_id in zip(dns, ids, strict=True):
            _, result, _, _ = admin.add(dn, ["user"], {"sAMAccountName": account_id})
            assert result["result"] == 0, result
    return dns


AD_NO_GHOST_MEMBERS = ("AD refuses a member naming no object, and 1,000+ users cost minutes to create for "
                       "batching that does not depend on the server (batches on AD: the 5,000-member group "
                       "of test_samba_ad.py)")
AD_NO_PLACEHOLDER = "AD groups may be empty: no placeholder member (test_samba_ad.py)"


def count_modifies(directory, monkeypatch):
    directory.supports_permissive_modify()   # the detection probe is not part of the count
    calls = []
    original = directory._modify

    def counting(dn, changes, controls=None):
        calls.append(sum(len(v) for ops in changes.values() for _, v in ops))
        return original(dn, changes, controls)

    monkeypatch.setattr(directory, "_modify", counting)
    return calls


# -- tree and health ---------------------------------------------------------------------------

def test_ping_answers(directory):
    directory.ping()


def test_ensure_branches_creates_the_base_and_the_three_branches_once(make_directory, ldap_layout, admin):
    # (on 389-DS the base is the deployed suffix and the branches this test's own, inside it)
    base_existed = admin.search(ldap_layout.base_dn, "(objectClass=*)", BASE)[1]["result"] == 0
    d = make_directory()
    created = d.ensure_branches()
    assert {names.normalise_dn(dn) for dn in created} >= {
        *([] if base_existed else [names.normalise_dn(ldap_layout.base_dn)]),
        *(names.normalise_dn(names.branch_dn(ldap_layout, b)) for b in ("people", "organisations", "groups")),
    }
    assert d.ensure_branches() == []


def test_ensure_branches_creates_the_base_and_its_missing_ancestors_as_the_root_dn(slapd):
    # OpenLDAP only: under 389-DS the suffix and its branches are the deployed ones.
    missing = f"ou=missing{uuid.uuid4().hex[:8]},{slapd.suffix}"
    layout = sample_layout(f"ou=deeper,{missing}")
    with Directory(slapd.root_settings(), layout) as d:
        created = d.ensure_branches()
    assert [names.normalise_dn(dn) for dn in created[:2]] == [
        names.normalise_dn(missing), names.normalise_dn(layout.base_dn)]


def test_permissive_modify_auto_detects_openldaps_unadvertised_support_and_is_never_used_on_389ds(
        directory, server_kind):
    assert directory.settings.permissive_modify == "auto"
    assert directory.supports_permissive_modify() is (server_kind == "openldap")


def test_permissive_modify_auto_detects_a_control_the_server_does_not_know(make_directory, monkeypatch):
    monkeypatch.setattr(adapter, "PERMISSIVE_MODIFY_OID", "1.3.6.1.4.1.99999.1.2.3")
    assert make_directory().supports_permissive_modify() is False


@pytest.mark.parametrize("mode, expected", [("on", True), ("off", False)])
def test_permissive_modify_can_be_forced_where_the_server_knows_the_control(make_directory, server_kind, mode, expected):
    assert make_directory(permissive_modify=mode).supports_permissive_modify() is (expected and server_kind == "openldap")


# -- accounts ----------------------------------------------------------------------------------

def test_a_new_account_gets_cn_from_its_given_and_family_names(directory, admin, server_kind):
    skip_on(server_kind, "active_directory", "AD names a user by cn (its id); the full name is its displayName "
            "(test_samba_ad.py)")
    assert directory.upsert_account("u1", {"given_name": "Ann", "family_name": "Lee", "internal": True}) == "created"
    attrs = read(admin, names.person_dn(directory.layout, "u1"))
    assert attrs["cn"] == ["Ann Lee"] and attrs["uid"] == ["u1"] and attrs["syncdInternal"] == ["TRUE"]
    assert {c.lower() for c in attrs["objectClass"]} >= {"inetorgperson", "syncdaccount"}


def test_upserting_the_same_values_again_changes_nothing(directory):
    person(directory, "u1", email="ann@example.org")
    assert directory.upsert_account("u1", {"given_name": "Ann", "email": "ann@example.org"}) == "unchanged"


def test_upsert_touches_only_the_attributes_passed(directory, admin):
    dn = person(directory, "u1", phone="+33 1 00 00 00 00")
    # a value owned by someone else, written behind syncd's back
    admin.modify(dn, {"description": [(MODIFY_REPLACE, ["set by the HR referential"])]})
    assert directory.upsert_account("u1", {"given_name": "Anne", "phone": None}) == "updated"
    attrs = read(admin, dn)
    assert attrs["givenName"] == ["Anne"]
    assert "telephoneNumber" not in attrs
    assert attrs["description"] == ["set by the HR referential"]
    assert attrs["sn"] == ["Lee"]


def test_an_empty_list_deletes_and_ldap_attribute_names_work_too(directory, admin):
    dn = person(directory, "u1", contact_email="a@b.c")
    directory.upsert_account("u1", {"syncdContactMail": [], "title": "Dr"})
    attrs = read(admin, dn)
    assert "syncdContactMail" not in attrs and attrs["title"] == ["Dr"]


def test_an_account_without_a_family_name_is_rejected_by_the_schema(directory, server_kind):
    skip_on(server_kind, "active_directory", "AD's user class requires no sn")
    with pytest.raises(DirectoryRejected):
        directory.upsert_account("u1", {"given_name": "Ann"})


def test_an_unknown_attribute_is_rejected(directory):
    person(directory, "u1")
    with pytest.raises(DirectoryRejected):
        directory.upsert_account("u1", {"noSuchAttributeAnywhere": "x"})


def test_disabling_an_account_sets_its_status_and_keeps_its_memberships(directory, admin):
    dn = person(directory, "u1")
    directory.ensure_group("g", "r", "app")
    directory.add_members("g", [dn])
    assert directory.disable_account("u1") is True
    assert directory.disable_account("u1") is False
    status = directory.layout.people.disabled_attribute
    assert read(admin, dn, status)[status] == ["disabled"]
    assert directory.members_of_group("g") == {names.normalise_dn(dn)}


def test_disabling_a_missing_account_says_so(directory):
    with pytest.raises(NoSuchEntry):
        directory.disable_account("nobody")


def test_a_person_with_a_hostile_id_can_be_created_found_by_filter_and_added_to_a_group(directory, server_kind):
    skip_on(server_kind, "active_directory", "AD refuses these characters in sAMAccountName, which syncd derives "
            "from the id (its ids are hexadecimal)")
    hostile = HOSTILE_ID if server_kind == "openldap" else HOSTILE_ASCII_ID
    dn = person(directory, hostile)
    found = list(directory.iter_entries(names.branch_dn(directory.layout, "people"),
                                        names.filter_eq("uid", hostile), ["uid"]))
    assert [e["uid"] for e in found] == [[hostile]]
    assert names.normalise_dn(found[0]["dn"]) == names.normalise_dn(dn)
    directory.ensure_group("g", "r", "app")
    directory.add_members("g", [dn])
    assert directory.members_of_group("g") == {names.normalise_dn(dn)}
    assert directory.groups_of_person(hostile) == {names.normalise_dn(names.group_dn(directory.layout, "g"))}


_ids = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(alphabet=st.one_of(st.sampled_from(',+"\\<>;=#*() \x00é日'), st.characters(
    blacklist_categories=("Cs",))), min_size=1, max_size=16).filter(lambda v: v.strip(" ")))
def test_an_escaped_value_round_trips_through_a_real_slapd(directory, admin, server_kind, value):
    skip_on(server_kind, "active_directory", "Samba refuses some of these RDN values as invalidDNSyntax (34); "
            "syncd names AD entries by hexadecimal ids and organisation codes only")
    # 389-DS keeps a NUL of an RDN value as a second value "\\00", drops a trailing CR from the DN it
    # returns and refuses some other control characters (invalidDNSyntax): syncd's syntax profile
    # refuses every control character at the door, so on 389-DS only the others are tried here
    assume(server_kind == "openldap" or not any(unicodedata.category(c) == "Cc" for c in value))
    # each example gets its own container: two values the server considers equal
    # (case, spaces) must not collide
    parent = names.child_dn("ou", f"e{next(_ids)}", names.branch_dn(directory.layout, "people"))
    admin.add(parent, ["organizationalUnit"], {"ou": parent.split(",")[0][3:]})
    dn = names.child_dn("cn", value, parent)
    _, result, _, _ = admin.add(dn, ["person"], {"cn": value, "sn": "x"})
    assert result["result"] == 0, result
    _, result, response, _ = admin.search(parent, names.filter_eq("cn", value), attributes=["cn"])
    assert result["result"] == 0
    assert len(response) == 1
    assert response[0]["attributes"]["cn"] == [value]
    assert names.normalise_dn(response[0]["dn"]) == names.normalise_dn(dn)      # slapd's spelling, our spelling: same DN


# -- organisations -----------------------------------------------------------------------------

def test_an_organisation_is_created_then_its_correspondents_replaced(directory, admin):
    a, b = person(directory, "c1"), person(directory, "c2")
    assert directory.upsert_organisation("CPAM-75", "CPAM de Paris", "maladie", [a]) == "created"
    assert directory.upsert_organisation("CPAM-75", "CPAM de Paris", "maladie", [a]) == "unchanged"
    assert directory.upsert_organisation("CPAM-75", "CPAM de Paris", "maladie", [b]) == "updated"
    attr = directory.traits.name          # where the server keeps syncd's own attributes
    rdn = directory.layout.organisations.rdn_attribute
    attrs = read(admin, names.organisation_dn(directory.layout, "CPAM-75"))
    assert attrs[rdn] == ["CPAM-75"] and attrs["description"] == ["CPAM de Paris"]
    assert attrs[attr("syncdBranch")] == ["maladie"] and attrs[attr("syncdOrganisationCode")] == ["CPAM-75"]
    assert [names.normalise_dn(v) for v in attrs[attr("syncdCorrespondent")]] == [names.normalise_dn(b)]
    directory.upsert_organisation("CPAM-75", "CPAM de Paris", "maladie", [])
    assert read(admin, names.organisation_dn(directory.layout, "CPAM-75")).get(attr("syncdCorrespondent"), []) == []


# -- groups ------------------------------------------------------------------------------------

def test_a_new_role_group_holds_only_the_placeholder_and_is_idempotent(directory, admin, server_kind):
    skip_on(server_kind, "active_directory", AD_NO_PLACEHOLDER)
    assert directory.ensure_group("Egap admin", "egap.admin", "egap", "Egap - Guides") == "created"
    assert directory.ensure_group("Egap admin", "egap.admin", "egap", "Egap - Guides") == "unchanged"
    attrs = read(admin, names.group_dn(directory.layout, "Egap admin"))
    assert attrs["member"] == [directory.layout.groups.placeholder_member]
    assert attrs["syncdRoleKey"] == ["egap.admin"] and attrs["syncdApplicationKey"] == ["egap"]
    assert directory.members_of_group("Egap admin") == set()


def test_a_group_that_does_not_exist_has_no_members_to_list(directory):
    with pytest.raises(NoSuchEntry):
        directory.members_of_group("nope")


def test_adding_to_a_group_that_does_not_exist_is_a_rejection(directory):
    with pytest.raises(DirectoryRejected):
        directory.add_members("nope", [person(directory, "u1")])


def test_2000_members_added_in_one_call_land_in_few_modify_operations(directory, monkeypatch, server_kind):
    skip_on(server_kind, "active_directory", AD_NO_GHOST_MEMBERS)
    directory.ensure_group("big", "r", "app")
    dns = [names.person_dn(directory.layout, f"user{i:05d}") for i in range(2000)]
    calls = count_modifies(directory, monkeypatch)
    change = directory.add_members("big", dns)
    assert change.requested == 2000 and change.operations == 4 == len(calls)
    assert max(calls) == directory.settings.batch_size
    assert directory.members_of_group("big") == {names.normalise_dn(dn) for dn in dns}


def test_batches_also_respect_the_request_size_limit(make_directory, monkeypatch, server_kind):
    skip_on(server_kind, "active_directory", AD_NO_GHOST_MEMBERS)
    d = make_directory(max_request_bytes=10_000, batch_size=10_000)
    d.ensure_branches()
    d.ensure_group("big", "r", "app")
    dns = [names.person_dn(d.layout, f"user{i:05d}") for i in range(1000)]
    calls = count_modifies(d, monkeypatch)
    d.add_members("big", dns)
    per_value = len(dns[0].encode()) + 6
    assert all(n * per_value < 10_000 for n in calls)
    assert sum(calls) == 1000 and len(calls) >= 1000 * per_value // 10_000
    assert len(d.members_of_group("big")) == 1000


@pytest.mark.parametrize("permissive", ["on", "off"])
def test_adding_a_member_already_present_is_success(make_directory, permissive):
    d = make_directory(permissive_modify=permissive)
    d.ensure_branches()
    d.ensure_group("g", "r", "app")
    dn = person(d, "u1")
    d.add_members("g", [dn])
    change = d.add_members("g", [dn])
    assert change.conflicts == (0 if d.supports_permissive_modify() else 1)   # never on 389-DS
    assert d.members_of_group("g") == {names.normalise_dn(dn)}


@pytest.mark.parametrize("permissive", ["on", "off"])
def test_removing_a_member_already_absent_is_success(make_directory, permissive):
    d = make_directory(permissive_modify=permissive)
    d.ensure_branches()
    d.ensure_group("g", "r", "app")
    stays, gone = person(d, "stays"), person(d, "gone")
    d.add_members("g", [stays])
    change = d.remove_members("g", [gone])
    assert change.conflicts == 1     # OpenLDAP 2.5 ignores permissive modify for deletes
    assert change.changed == 0
    assert d.members_of_group("g") == {names.normalise_dn(stays)}


def test_without_permissive_modify_only_the_real_conflicts_are_dropped(make_directory, server_kind, admin):
    d = make_directory(permissive_modify="off", batch_size=64)
    d.ensure_branches()
    d.ensure_group("g", "r", "app")
    dns = member_dns(d, server_kind, admin, [f"u{i:03d}" for i in range(200)])
    d.add_members("g", dns[::10])                      # 20 already there, scattered
    change = d.add_members("g", dns)
    assert change.permissive is False
    assert change.conflicts == 20 and change.changed == 180
    # the first refused batch costs one read of the members; every batch then goes through
    assert change.member_reads == 1 and change.operations == 4 + 1
    assert d.members_of_group("g") == {names.normalise_dn(dn) for dn in dns}
    change = d.remove_members("g", dns[:100] + dns[:100])  # duplicates are sent once
    assert change.requested == 100 and change.conflicts == 0
    change = d.remove_members("g", dns[50:150])
    assert change.conflicts == 50
    assert d.members_of_group("g") == {names.normalise_dn(dn) for dn in dns[150:]}


def test_a_small_refused_batch_is_split_in_halves_down_to_the_conflicts(make_directory, server_kind, admin):
    d = make_directory(permissive_modify="off", batch_size=16)
    d.ensure_branches()
    d.ensure_group("g", "r", "app")
    dns = member_dns(d, server_kind, admin, [f"u{i:02d}" for i in range(16)])
    d.add_members("g", [dns[3], dns[11]])
    change = d.add_members("g", dns)
    assert change.conflicts == 2 and change.member_reads == 0
    assert change.operations <= 1 + 2 * 2 * 4           # 1 + 2·k·log2(16)
    assert d.members_of_group("g") == {names.normalise_dn(dn) for dn in dns}


def test_a_conflict_that_appears_after_the_members_were_read_is_still_isolated(make_directory, monkeypatch,
                                                                               server_kind, admin):
    d = make_directory(permissive_modify="off")
    d.ensure_branches()
    d.ensure_group("g", "r", "app")
    dns = member_dns(d, server_kind, admin, [f"u{i:03d}" for i in range(100)])
    d.add_members("g", dns[40:45])
    monkeypatch.setattr(d, "_current_members", lambda dn, attr: set())   # a stale read: a race
    change = d.add_members("g", dns)
    assert change.conflicts == 5 and change.member_reads == 1
    assert d.members_of_group("g") == {names.normalise_dn(dn) for dn in dns}


def test_dns_are_compared_without_regard_to_case_or_escaping_style(directory, server_kind):
    skip_on(server_kind, "active_directory", "AD refuses a comma in sAMAccountName, which syncd derives from the id")
    directory.ensure_group("g", "r", "app")
    dn = person(directory, "Ann,Lee")
    shouting = dn.upper().replace("\\,", "\\2C")
    directory.add_members("g", [dn, shouting])        # one value, not two
    assert directory.members_of_group("g") == {names.normalise_dn(dn)}
    directory.remove_members("g", [shouting])
    assert directory.members_of_group("g") == set()


def test_the_placeholder_is_never_removed(directory, admin, server_kind):
    skip_on(server_kind, "active_directory", AD_NO_PLACEHOLDER)
    directory.ensure_group("g", "r", "app")
    placeholder = directory.layout.groups.placeholder_member
    change = directory.remove_members("g", [placeholder, placeholder.upper()])
    assert change.requested == 0 and change.operations == 0
    assert read(admin, names.group_dn(directory.layout, "g"), "member")["member"] == [placeholder]


def test_a_role_group_whose_last_member_is_removed_still_exists_and_is_valid(directory, admin):
    directory.ensure_group("g", "r", "app")
    dn = person(directory, "u1")
    directory.add_members("g", [dn])
    directory.remove_members("g", [dn])
    attrs = read(admin, names.group_dn(directory.layout, "g"), "member", "objectClass")
    placeholder = [directory.layout.groups.placeholder_member] if directory.traits.needs_placeholder else []
    assert attrs.get("member", []) == placeholder     # AD: an empty group is valid
    assert directory.members_of_group("g") == set()
    directory.add_members("g", [dn])                   # and it keeps working
    assert directory.members_of_group("g") == {names.normalise_dn(dn)}


def test_a_group_that_lost_its_placeholder_gets_it_back_instead_of_becoming_invalid(directory, admin, server_kind):
    skip_on(server_kind, "active_directory", AD_NO_PLACEHOLDER)
    directory.ensure_group("g", "r", "app")
    gdn = names.group_dn(directory.layout, "g")
    dn = person(directory, "u1")
    directory.add_members("g", [dn])
    admin.modify(gdn, {"member": [(MODIFY_DELETE, [directory.layout.groups.placeholder_member])]})
    directory.remove_members("g", [dn])
    if server_kind == "389ds":
        # 389-DS's groupOfNames has member as MAY: the group may go empty and stays valid
        assert read(admin, gdn, "member").get("member", []) == []
        assert directory.members_of_group("g") == set()
        return
    assert read(admin, gdn, "member")["member"] == [directory.layout.groups.placeholder_member]


def test_ensure_group_restores_a_missing_placeholder(directory, admin, server_kind):
    skip_on(server_kind, "active_directory", AD_NO_PLACEHOLDER)
    directory.ensure_group("g", "r", "app")
    gdn = names.group_dn(directory.layout, "g")
    directory.add_members("g", [person(directory, "u1")])
    admin.modify(gdn, {"member": [(MODIFY_DELETE, [directory.layout.groups.placeholder_member])]})
    assert directory.ensure_group("g", "r", "app") == "updated"
    assert directory.layout.groups.placeholder_member in read(admin, gdn, "member")["member"]


def test_member_of_appears_on_the_user_through_the_memberof_overlay(directory, admin):
    dn = person(directory, "u1")
    for g in ("g1", "g2"):
        directory.ensure_group(g, g, "app")
        directory.add_members(g, [dn])
    expected = {names.normalise_dn(names.group_dn(directory.layout, g)) for g in ("g1", "g2")}
    assert directory.groups_of_person("u1") == expected
    # applications may also ask the server directly
    rdn = directory.layout.people.rdn_attribute
    _, result, response, _ = admin.search(names.branch_dn(directory.layout, "people"),
                                          names.filter_eq("memberOf", names.group_dn(directory.layout, "g1")),
                                          attributes=[rdn])
    assert [r["attributes"][rdn] for r in response] == [["u1"]]
    directory.remove_members("g1", [dn])
    assert directory.groups_of_person("u1") == expected - {names.normalise_dn(names.group_dn(directory.layout, "g1"))}


def test_deleting_a_user_removes_it_from_its_groups(directory, admin):
    dn = person(directory, "u1")
    directory.ensure_group("g", "r", "app")
    directory.add_members("g", [dn, person(directory, "u2")])
    admin.delete(dn)
    assert directory.members_of_group("g") == {names.normalise_dn(names.person_dn(directory.layout, "u2"))}


# -- reads -------------------------------------------------------------------------------------

def test_paged_iteration_returns_all_2500_entries_with_page_size_100(directory, admin, server_kind):
    skip_on(server_kind, "active_directory", "2,500 users cost minutes to create on a DC; paged reads on AD: "
            "the 5,000 users of test_samba_ad.py")
    parent = names.branch_dn(directory.layout, "people")
    for i in range(2500):
        _, result, _, _ = admin.add(names.person_dn(directory.layout, f"p{i:04d}"), ["inetOrgPerson"],
                                    {"cn": f"p{i}", "sn": "x", "uid": f"p{i:04d}"})
        assert result["result"] == 0
    with structlog.testing.capture_logs() as logs:
        entries = directory.iter_entries(parent, "(objectClass=inetOrgPerson)", ["uid", "mail"], page_size=100)
        first = next(entries)
        assert set(first) == {"dn", "uid", "mail"} and first["mail"] == []
        rest = list(entries)
    uids = {e["uid"][0] for e in [first, *rest]}
    assert uids == {f"p{i:04d}" for i in range(2500)}
    done = [e for e in logs if e["event"] == "ldap_paged_search_done"]
    assert done and done[0]["pages"] >= 25


def test_iterating_under_a_missing_base_is_a_no_such_entry(directory):
    with pytest.raises(NoSuchEntry):
        list(directory.iter_entries("ou=nowhere," + directory.layout.base_dn, "(objectClass=*)", ["cn"]))


# -- account lock: each server's own (OpenLDAP: the access rules read the status; 389-DS:
# nsAccountLock; AD: userAccountControl's disable bit) -------------------------------------------

PASSWORD = "Un mot de passe solide 42"      # AD's complexity: three kinds of characters at least


def person_with_password(directory, account_id: str, status: str) -> str:
    dn = person(directory, account_id, **{status_attribute(directory.layout): status})
    directory.set_password(account_id, PASSWORD)
    return dn


def test_a_disabled_account_cannot_bind_and_writing_it_active_again_restores_the_bind(directory):
    dn = person_with_password(directory, "u1", status="active")
    assert directory.can_bind(dn, PASSWORD) is True
    assert directory.disable_account("u1") is True
    status = status_attribute(directory.layout)
    assert directory.read_entry(dn, [status])[status] == ["disabled"] and shows_locked(directory, dn)
    assert directory.can_bind(dn, PASSWORD) is False
    assert directory.upsert_account("u1", {status: "active"}) == "updated"
    assert not shows_locked(directory, dn)
    assert directory.can_bind(dn, PASSWORD) is True


def test_an_account_written_with_any_status_but_active_is_locked_from_its_creation(directory):
    dn = person_with_password(directory, "u1", status="pending")
    assert directory.can_bind(dn, PASSWORD) is False
    assert shows_locked(directory, dn)


def test_an_account_with_no_password_yet_cannot_bind(directory):
    dn = person(directory, "u1", **{status_attribute(directory.layout): "active"})
    assert directory.can_bind(dn, PASSWORD) is False


def test_writing_other_attributes_leaves_the_lock_as_it_is(directory):
    dn = person_with_password(directory, "u1", status="active")
    directory.disable_account("u1")
    assert directory.upsert_account("u1", {"given_name": "Anne"}) == "updated"
    assert directory.can_bind(dn, PASSWORD) is False and shows_locked(directory, dn)


# -- passwords ---------------------------------------------------------------------------------

def test_a_password_set_by_password_modify_lets_the_person_bind(directory, admin, server_kind):
    # OpenLDAP's access rules refuse the bind of an entry whose status is not active; AD keeps
    # syncd's status elsewhere and locks by userAccountControl, which a new user has unlocked.
    dn = person(directory, "u1", **({} if server_kind == "active_directory" else {"syncdAccountStatus": "active"}))
    with structlog.testing.capture_logs() as logs:
        directory.set_password("u1", "Correct horse battery staple 1")   # AD: 4 kinds of characters
    assert directory.can_bind(dn, "Correct horse battery staple 1") is True
    assert directory.can_bind(dn, "wrong") is False
    assert directory.can_bind(dn, "") is False
    assert "orrect horse" not in repr(logs)
    if server_kind == "active_directory":     # unicodePwd is write-only; the DC keeps hashes of its own
        assert read(admin, dn, "unicodePwd", "userPassword").get("unicodePwd", []) == []
        return
    stored = read(admin, dn, "userPassword")["userPassword"][0]
    scheme = b"{SSHA}" if server_kind == "openldap" else b"{PBKDF2-SHA512}"   # each server's default
    assert (stored if isinstance(stored, bytes) else stored.encode()).startswith(scheme)   # hashed by the server


def test_setting_a_password_on_a_missing_account_is_a_rejection(directory):
    with pytest.raises(DirectoryRejected):
        directory.set_password("nobody", "x")


def test_an_empty_password_is_refused(directory):
    with pytest.raises(DirectoryRejected):
        directory.set_password("u1", "")


# -- outages -----------------------------------------------------------------------------------

def test_a_directory_reconnects_after_a_restart_and_reports_an_outage(tmp_path):
    with DevSlapd(tmp_path / "own") as server:
        d = Directory(server.ldap_settings(), sample_layout(server.suffix))
        d.ensure_branches()
        server.stop()
        with pytest.raises(DirectoryUnavailable):
            d.ping()
        server.start()
        d.ping()          # a new connection is opened: no error sticks
        server.stop()
        server.start()
        d.ping()          # the stale connection is replaced transparently
        d.close()


def test_threads_sharing_a_directory_each_get_their_own_connection(directory, server_kind):
    skip_on(server_kind, "active_directory", AD_NO_GHOST_MEMBERS)
    from concurrent.futures import ThreadPoolExecutor

    for g in range(4):
        directory.ensure_group(f"g{g}", "r", "app")

    def fill(g):
        dns = [names.person_dn(directory.layout, f"t{g}-{i}") for i in range(300)]
        directory.add_members(f"g{g}", dns)
        return len(directory.members_of_group(f"g{g}"))

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(fill, range(4))) == [300] * 4
    assert len(directory._connections) >= 2


def test_shared_work_runs_at_once_on_as_many_connections_as_configured_and_keeps_them_for_the_next_job(
        make_directory, server_kind):
    skip_on(server_kind, "active_directory", AD_NO_GHOST_MEMBERS)
    d = make_directory(write_connections=3)
    d.ensure_branches()
    groups = [f"w{g}" for g in range(6)]
    for g in groups:
        d.ensure_group(g, "r", "app")

    def job():
        queue, lock, threads = list(groups), threading.Lock(), []
        all_three = threading.Barrier(3, timeout=10)    # broken unless three workers run at once

        def worker():
            threads.append(threading.get_ident())
            all_three.wait()
            while True:
                with lock:
                    if not queue:
                        return
                    group = queue.pop()
                d.add_members(group, [names.person_dn(d.layout, f"{group}-{i}") for i in range(20)])
        d.share_work(worker)
        return threads

    first = job()
    opened = set(d._connections)
    second = job()
    assert len(set(first)) == 3 and threading.get_ident() in first
    assert set(second) == set(first), "the same writer threads serve the next job"
    assert d._connections == opened and len(opened) == 3, "on the connections they opened: no new bind"
    assert all(len(d.members_of_group(g)) == 20 for g in groups)


def test_an_error_in_a_writer_thread_is_raised_once_every_worker_has_returned(make_directory):
    d = make_directory(write_connections=2)
    finished, caller = [], threading.get_ident()

    def worker():
        if threading.get_ident() != caller:
            raise DirectoryRejected("refused in the writer thread")
        threading.Event().wait(0.2)
        finished.append("caller")
    with pytest.raises(DirectoryRejected, match="writer thread"):
        d.share_work(worker)
    assert finished == ["caller"]


def test_one_write_connection_runs_the_work_in_the_callers_thread_only(make_directory):
    d = make_directory(write_connections=1)
    threads = []
    d.share_work(lambda: threads.append(threading.get_ident()))
    assert threads == [threading.get_ident()]


def test_closing_the_directory_ends_its_writer_threads_and_a_later_job_gets_new_ones(make_directory):
    d = make_directory(write_connections=2)
    seen = []

    def worker():
        seen.append(threading.current_thread())
        d.ping()
    d.share_work(worker)
    writer = next(t for t in seen if t is not threading.current_thread())
    d.close()
    assert not writer.is_alive() and not d._connections
    seen.clear()
    d.share_work(worker)
    assert len(seen) == 2 and writer not in seen


def test_groups_written_at_once_sharing_their_members_leave_every_member_of_on_each_person(make_directory):
    d = make_directory(write_connections=2)
    d.ensure_branches()
    people = [person(d, f"s{i}") for i in range(8)]
    groups = ["shared-a", "shared-b", "shared-c", "shared-d"]
    for g in groups:
        d.ensure_group(g, g, "app")
    todo, lock = list(groups), threading.Lock()
    both_writing = threading.Barrier(2, timeout=10)

    def worker():
        both_writing.wait()
        while True:
            with lock:
                if not todo:
                    return
                group = todo.pop()
            for dn in people:     # one modify per member: the two connections interleave on each person
                d.add_members(group, [dn])
    d.share_work(worker)
    expected = {names.normalise_dn(names.group_dn(d.layout, g)) for g in groups}
    assert all(d.groups_of_person(f"s{i}") == expected for i in range(len(people)))
