"""The production OpenLDAP configuration of ``deploy/openldap/production/`` does what it says.

A stock Debian slapd gets ``deploy/openldap/production`` applied by the README's own block
(``tests/openldap_setup.py``: ``ldapmodify`` over ``ldapi://``, the service accounts of
``60-service-accounts.ldif``). Then, over real binds:

* syncd's service DN does everything syncd does (branches, organisations, role groups,
  people, memberships, passwords) with the real ``Directory`` adapter, and nothing outside
  its three branches;
* an application DN reads ``member`` (search and compare) and ``memberOf``, never
  ``userPassword``, and writes nothing;
* a person binds, reads their own entry, changes their own password, and sees nobody else;
* anonymous clients see nothing.

(What the files set in ``cn=config``, and that they apply twice: ``test_openldap_setup.py``.)
"""

from __future__ import annotations

import pytest
from ldap3 import BASE, MODIFY_ADD, MODIFY_REPLACE, NONE, SAFE_SYNC, Connection, Server

from syncd.devslapd import DevSlapd, SlapdNotInstalled
from syncd.directory import Directory, names
from syncd.errors import DirectoryRejected
from tests.fixtures_ldap import sample_layout
from tests.openldap_setup import APP_PASSWORD, SYNCD_PASSWORD, app_dn, configure_as_documented, syncd_dn

pytestmark = pytest.mark.slapd

SUFFIX = "dc=example,dc=org"
SYNCD_DN = syncd_dn(SUFFIX)
APP_DN = app_dn(SUFFIX)
INSUFFICIENT_ACCESS = 50


def _bind(server: DevSlapd, dn: str | None = None, password: str | None = None) -> Connection:
    conn = Connection(Server(server.url, get_info=NONE), user=dn, password=password,
                      client_strategy=SAFE_SYNC, raise_exceptions=False)
    ok, result, _, _ = conn.bind()
    assert ok, f"bind as {dn} failed: {result}"
    return conn


@pytest.fixture(scope="module")
def acl_slapd(tmp_path_factory):
    """A stock Debian slapd with the README's block applied (base = the suffix)."""
    folder = tmp_path_factory.mktemp("acl-slapd")
    server = DevSlapd(folder / "server", suffix=SUFFIX, initial="debian")
    try:
        server.start()
    except SlapdNotInstalled as exc:
        pytest.skip(f"no OpenLDAP slapd: {exc}")
    configure_as_documented(server, folder / "secrets")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def world(acl_slapd):
    """What syncd itself writes, bound as its service DN, through the real adapter."""
    layout = sample_layout(SUFFIX)
    settings = acl_slapd.ldap_settings(bind_dn=SYNCD_DN, bind_password=SYNCD_PASSWORD)
    with Directory(settings, layout) as syncd:
        created = syncd.ensure_branches()
        syncd.upsert_organisation("CARSAT-RA", "CARSAT Rhône-Alpes", "retraite", [])
        syncd.ensure_group("app-egap", "egap", "guides", "Egap")
        for uid in ("alice", "bob"):
            syncd.upsert_account(uid, {"givenName": uid.title(), "sn": "Test", "mail": f"{uid}@example.org",
                                       "syncdAccountStatus": "active"}, layout.people.object_classes)
        syncd.add_members("app-egap", [names.person_dn(layout, "alice")])
        syncd.set_password("alice", "Alice-first-password-1")
        syncd.set_password("bob", "Bob-first-password-22")
        yield {"layout": layout, "created": created, "settings": settings,
               "group": names.group_dn(layout, "app-egap"), "alice": names.person_dn(layout, "alice"),
               "bob": names.person_dn(layout, "bob")}


# -- syncd's service DN -------------------------------------------------------------------------

def test_syncd_creates_its_branches_groups_people_and_passwords_as_its_service_dn(world, acl_slapd):
    assert {d.split(",")[0] for d in world["created"]} == {"ou=people", "ou=organisations", "ou=groups"}
    with Directory(world["settings"], world["layout"]) as syncd:
        assert syncd.members_of_group("app-egap") == {names.normalise_dn(world["alice"])}
        assert syncd.groups_of_person("alice") == {names.normalise_dn(world["group"])}
        assert syncd.remove_members("app-egap", [world["alice"]]).changed == 1
        assert syncd.add_members("app-egap", [world["alice"]]).requested == 1
        assert syncd.disable_account("bob") is True
        assert syncd.upsert_account("bob", {"syncdAccountStatus": "active"}, ("inetOrgPerson", "syncdAccount"))
        assert syncd.can_bind(world["alice"], "Alice-first-password-1")


def test_syncd_cannot_write_outside_its_branches_nor_read_passwords(world, acl_slapd):
    conn = _bind(acl_slapd, SYNCD_DN, SYNCD_PASSWORD)
    try:
        _, result, _, _ = conn.add(f"ou=elsewhere,{SUFFIX}", ["organizationalUnit"], {"ou": "elsewhere"})
        assert result["result"] == INSUFFICIENT_ACCESS, "not even directly under the base"
        _, result, _, _ = conn.add(f"cn=intruder,ou=applications,ou=services,{SUFFIX}",
                                   ["applicationProcess"], {"cn": "intruder"})
        assert result["result"] == INSUFFICIENT_ACCESS
        _, result, _, _ = conn.modify(APP_DN, {"description": [(MODIFY_REPLACE, ["changed"])]})
        assert result["result"] in (INSUFFICIENT_ACCESS, 32)
        _, result, _, _ = conn.modify(SUFFIX, {"description": [(MODIFY_REPLACE, ["changed"])]})
        assert result["result"] == INSUFFICIENT_ACCESS, "reads the base entry, never writes it"
        _, _, response, _ = conn.search(world["alice"], "(objectClass=*)", BASE, attributes=["userPassword"])
        assert "userPassword" not in response[0]["attributes"] or not response[0]["attributes"]["userPassword"]
    finally:
        conn.unbind()


# -- an application ----------------------------------------------------------------------------

def test_an_application_reads_member_and_member_of_but_no_password_and_writes_nothing(world, acl_slapd):
    conn = _bind(acl_slapd, APP_DN, APP_PASSWORD)
    try:
        _, result, response, _ = conn.search(f"ou=groups,{SUFFIX}", f"(member={world['alice']})", attributes=["cn"])
        assert result["result"] == 0 and [r["dn"] for r in response if r["type"] == "searchResEntry"] == [world["group"]]
        ok, result, _, _ = conn.compare(world["group"], "member", world["alice"])   # Apache Require ldap-group
        assert result["result"] == 6, "compareTrue"
        _, _, response, _ = conn.search(world["alice"], "(objectClass=*)", BASE,
                                        attributes=["memberOf", "mail", "userPassword"])
        attrs = response[0]["attributes"]
        assert [g.lower() for g in attrs["memberOf"]] == [world["group"].lower()]
        assert attrs["mail"] == ["alice@example.org"]
        assert not attrs.get("userPassword"), "never the password"
        _, result, _, _ = conn.compare(world["alice"], "userPassword", "Alice-first-password-1")
        assert result["result"] == INSUFFICIENT_ACCESS, "not even by compare"
        _, result, _, _ = conn.modify(world["group"], {"member": [(MODIFY_ADD, [world["bob"]])]})
        assert result["result"] == INSUFFICIENT_ACCESS
        _, result, _, _ = conn.add(f"uid=mallory,ou=people,{SUFFIX}", ["inetOrgPerson"],
                                   {"uid": "mallory", "cn": "m", "sn": "m"})
        assert result["result"] == INSUFFICIENT_ACCESS
        _, _, response, _ = conn.search(f"ou=services,{SUFFIX}", "(objectClass=*)", attributes=["cn"])
        assert [r for r in response if r["type"] == "searchResEntry"] == [], "other service accounts are hidden"
    finally:
        conn.unbind()


# -- people and anonymous clients -------------------------------------------------------------

def test_a_person_binds_reads_themselves_changes_their_password_and_sees_nobody_else(world, acl_slapd):
    from ldap3.extend.standard.modifyPassword import ModifyPassword
    conn = _bind(acl_slapd, world["bob"], "Bob-first-password-22")
    try:
        _, _, response, _ = conn.search(world["bob"], "(objectClass=*)", BASE, attributes=["mail", "userPassword"])
        assert response[0]["attributes"]["mail"] == ["bob@example.org"]
        assert not response[0]["attributes"].get("userPassword")
        _, _, response, _ = conn.search(world["alice"], "(objectClass=*)", BASE, attributes=["mail"])
        assert [r for r in response if r["type"] == "searchResEntry"] == []
        _, result, _, _ = conn.modify(world["group"], {"member": [(MODIFY_ADD, [world["bob"]])]})
        assert result["result"] == INSUFFICIENT_ACCESS, "nobody grants themselves a role"
        # (bound already: OpenLDAP is "unwilling to verify old password" in the operation)
        op = ModifyPassword(conn, user=world["bob"], new_password="Bob-second-password-333")
        op.send()
        assert op.result["result"] == 0
    finally:
        conn.unbind()
    _bind(acl_slapd, world["bob"], "Bob-second-password-333").unbind()


def test_anonymous_clients_see_nothing_but_the_root_dse(world, acl_slapd):
    conn = Connection(Server(acl_slapd.url, get_info=NONE), client_strategy=SAFE_SYNC, raise_exceptions=False)
    conn.open()
    try:
        _, _, response, _ = conn.search(SUFFIX, "(objectClass=*)", attributes=["*"])
        assert [r for r in response if r["type"] == "searchResEntry"] == []
        _, result, response, _ = conn.search("", "(objectClass=*)", BASE, attributes=["namingContexts"])
        assert result["result"] == 0 and response[0]["attributes"]["namingContexts"] == [SUFFIX]
    finally:
        conn.unbind()


def test_a_wrong_service_password_is_refused(acl_slapd):
    settings = acl_slapd.ldap_settings(bind_dn=SYNCD_DN, bind_password="not-the-password")
    with Directory(settings, sample_layout(SUFFIX)) as syncd:
        with pytest.raises(DirectoryRejected) as info:
            syncd.ping()
    assert info.value.result_code == 49
