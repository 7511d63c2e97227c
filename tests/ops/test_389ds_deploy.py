"""389 Directory Server as deploy/389ds configures it: the files apply again, the configuration
they leave is the one the README describes (MemberOf, Referential Integrity, USN), the ACIs hold
for syncd, an application and a person, and syncd rides out a crash of the server. (The account
lock, nsAccountLock, is in the adapter's suite of every server: tests/directory/test_adapter.py.)"""

from __future__ import annotations

import subprocess

import pytest
from ldap3 import BASE, LEVEL, MODIFY_REPLACE, Connection

from syncd.directory import names
from syncd.directory.connection import open_connection, safe_close
from syncd.errors import DirectoryUnavailable
from syncd.settings import LdapSettings
from tests.ds389 import ROOT_DN, Ds389

pytestmark = pytest.mark.ds389

PASSWORD = "correct horse battery staple"
INSUFFICIENT_ACCESS = 50


def bind_as(ds389: Ds389, dn: str, password: str) -> Connection:
    return open_connection(LdapSettings(urls=[ds389.url], bind_dn=dn, bind_password=password))


def read(conn: Connection, dn: str, *attrs: str) -> dict[str, list]:
    """The attributes ``conn`` may see on ``dn``, by lower-cased name (absent ones left out)."""
    _, result, response, _ = conn.search(dn, "(objectClass=*)", BASE, attributes=list(attrs) or ["*"])
    assert result["result"] == 0, result
    return {k.lower(): v for k, v in response[0]["attributes"].items() if v not in ([], None)} if response else {}


def person_with_password(directory, account_id: str, **extra) -> str:
    directory.upsert_account(account_id, {"given_name": "Ann", "family_name": "Lee", **extra})
    directory.set_password(account_id, PASSWORD)
    return names.person_dn(directory.layout, account_id)


# -- the files of deploy/389ds -----------------------------------------------------------------

def ldap_tool(ds389: Ds389, tool: str, name: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool, *options, "-x", "-H", ds389.url, "-D", ROOT_DN, "-y", str(ds389.workdir / "root.pw")],
                          input=ds389.render(name), capture_output=True, text=True, timeout=60)


def test_every_file_applies_again_as_the_readme_says_and_changes_nothing(ds389, ds389_admin):
    before = read(ds389_admin, ds389.suffix, "aci")["aci"]
    assert ldap_tool(ds389, "ldapmodify", "10-plugins.ldif").returncode == 0
    for name in ("20-indexes.ldif", "30-entries.ldif"):
        done = ldap_tool(ds389, "ldapadd", name, "-c")
        refusals = [line for line in done.stderr.splitlines() if line.startswith("ldap_")]
        assert refusals and all("Already exists (68)" in line for line in refusals), done.stderr
    done = ldap_tool(ds389, "ldapmodify", "40-aci.ldif", "-c")
    refusals = [line for line in done.stderr.splitlines() if line.startswith("ldap_")]
    assert len(refusals) == 4 and all("Type or value exists (20)" in line for line in refusals), done.stderr
    assert sorted(read(ds389_admin, ds389.suffix, "aci")["aci"]) == sorted(before)


def test_the_plugins_indexes_and_limits_are_those_the_readme_describes(ds389, ds389_admin):
    memberof = read(ds389_admin, "cn=MemberOf Plugin,cn=plugins,cn=config")
    assert memberof["nsslapd-pluginenabled"] == ["on"]
    assert {names.normalise_dn(v) for v in memberof["memberofentryscope"]} == {
        names.normalise_dn(f"ou={b},{ds389.suffix}") for b in ("people", "groups")}
    assert read(ds389_admin, "cn=referential integrity postoperation,cn=plugins,cn=config",
                "nsslapd-pluginEnabled")["nsslapd-pluginenabled"] == ["on"]
    assert read(ds389_admin, "cn=USN,cn=plugins,cn=config", "nsslapd-pluginEnabled")["nsslapd-pluginenabled"] == ["on"]
    assert read(ds389_admin, "", "lastusn")          # the cursor of incremental reconciliations
    _, _, response, _ = ds389_admin.search("cn=index,cn=userRoot,cn=ldbm database,cn=plugins,cn=config",
                                           "(objectClass=nsIndex)", LEVEL, attributes=["cn", "nsIndexType"])
    types = {r["attributes"]["cn"][0].lower(): {t.lower() for t in r["attributes"]["nsIndexType"]} for r in response}
    for attr in ("member", "memberof", "uid", "mail", "cn", "entryuuid", "syncdrolekey", "syncdapplicationkey",
                 "syncdorganisationcode", "syncdprimaryorganisation", "syncdcorrespondent"):
        assert "eq" in types.get(attr, set()), attr
    limits = read(ds389_admin, ds389.service_dn, "nsSizeLimit", "nsLookThroughLimit", "nsPagedSizeLimit")
    assert {k: [str(v) for v in vs] for k, vs in limits.items()} == {
        "nssizelimit": ["-1"], "nslookthroughlimit": ["-1"], "nspagedsizelimit": ["-1"]}


# -- access control ----------------------------------------------------------------------------

def test_syncd_sets_passwords_but_cannot_read_them_nor_write_outside_its_branches(ds389, ds389_directory):
    dn = person_with_password(ds389_directory, "u1")
    syncd = bind_as(ds389, ds389.service_dn, ds389.service_password)
    try:
        assert "userpassword" not in read(syncd, dn, "userPassword")
        syncd.modify(ds389.app_dn, {"description": [(MODIFY_REPLACE, ["taken over"])]})
        assert syncd.result["result"] == INSUFFICIENT_ACCESS
        syncd.add(f"ou=elsewhere,{ds389.suffix}", ["organizationalUnit"], {"ou": "elsewhere"})
        assert syncd.result["result"] == INSUFFICIENT_ACCESS
    finally:
        safe_close(syncd)


def test_an_application_reads_members_and_member_of_but_no_password_nor_lock_and_writes_nothing(
        ds389, ds389_directory):
    dn = person_with_password(ds389_directory, "u1")
    ds389_directory.ensure_group("g", "r", "app")
    ds389_directory.add_members("g", [dn])
    ds389_directory.disable_account("u1")
    gdn = names.group_dn(ds389_directory.layout, "g")
    app = bind_as(ds389, ds389.app_dn, ds389.app_password)
    try:
        assert names.normalise_dn(dn) in {names.normalise_dn(v) for v in read(app, gdn, "member")["member"]}
        assert app.compare(gdn, "member", dn)[1]["description"] == "compareTrue"
        attrs = read(app, dn, "memberOf", "userPassword", "nsAccountLock", "uid")
        assert [names.normalise_dn(v) for v in attrs["memberof"]] == [names.normalise_dn(gdn)]
        assert "userpassword" not in attrs and "nsaccountlock" not in attrs and attrs["uid"] == ["u1"]
        app.modify(gdn, {"description": [(MODIFY_REPLACE, ["changed by an application"])]})
        assert app.result["result"] == INSUFFICIENT_ACCESS
    finally:
        safe_close(app)


def test_a_person_reads_their_own_entry_changes_their_password_and_sees_nobody_else(ds389, ds389_directory):
    dn = person_with_password(ds389_directory, "u1")
    other = person_with_password(ds389_directory, "u2")
    me = bind_as(ds389, dn, PASSWORD)
    try:
        assert read(me, dn, "uid")["uid"] == ["u1"]
        _, _, response, _ = me.search(other, "(objectClass=*)", BASE, attributes=["uid"])
        assert [r for r in response or [] if r.get("type") == "searchResEntry"] == []
        me.modify(dn, {"userPassword": [(MODIFY_REPLACE, ["a new one of my own"])]})
        assert me.result["result"] == 0
    finally:
        safe_close(me)
    assert ds389_directory.can_bind(dn, "a new one of my own") is True


# -- outages -----------------------------------------------------------------------------------

def test_syncd_reports_a_389ds_outage_and_reconnects_once_it_is_back(ds389, ds389_directory):
    ds389_directory.ping()
    ds389.kill()                        # a crash: SIGKILL, the database recovers at start
    try:
        with pytest.raises(DirectoryUnavailable):
            ds389_directory.ping()
    finally:
        ds389.restart()
    ds389_directory.ping()              # the stale connection is replaced transparently
    assert ds389_directory.ensure_group("after-restart", "r", "app") == "created"


def test_the_endpoint_fixture_lets_a_plain_connection_write_under_its_base_as_the_service_account(
        ds389, ds389_endpoint):
    assert ds389_endpoint.bind_dn == ds389.service_dn
    conn = ds389_endpoint.connect()
    try:
        dn = names.child_dn("uid", "plain", ds389_endpoint.base_dn)
        _, result, _, _ = conn.add(dn, ["inetOrgPerson", "syncdAccount"],
                                   {"uid": "plain", "cn": "Plain", "sn": "Plain", "syncdAccountStatus": "active"})
        assert result["result"] == 0, result
    finally:
        safe_close(conn)
