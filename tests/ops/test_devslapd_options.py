"""DevSlapd's options for the operations tests: LDIF change records applied offline to the
rendered cn=config before slapadd (for the failover and TLS servers; the production files are
applied live with ldapmodify instead, tests/openldap_setup.py), TLS, replication."""

from __future__ import annotations

import base64

import pytest

from syncd.devslapd import (DevSlapd, DevSlapdError, TlsFiles, apply_ldif_changes, parse_change_records,
                            replication_changes)

CONFIG = """\
# a comment block

dn: cn=config
objectClass: olcGlobal
cn: config

dn: cn=module{0},cn=config
objectClass: olcModuleList
olcModuleLoad: {0}back_mdb
olcModuleLoad: {1}memberof

include: file:///etc/ldap/schema/core.ldif

dn: olcDatabase={1}mdb,cn=config
objectClass: olcMdbConfig
olcAccess: {0}to * by users read
olcDbIndex: uid eq
"""


def test_modify_add_replace_delete_like_ldapmodify():
    out = apply_ldif_changes(CONFIG, """\
dn: olcDatabase={1}mdb,cn=config
changetype: modify
replace: olcAccess
olcAccess: {0}to attrs=userPassword
  by self =w by anonymous auth by * none
olcAccess: {1}to * by * none
-
add: olcDbIndex
olcDbIndex: uid eq
olcDbIndex: mail eq
-
delete: objectClass
objectClass: olcMdbConfig

dn: cn=module{0},cn=config
changetype: modify
add: olcModuleLoad
olcModuleLoad: syncprov
""")
    mdb = out.split("dn: olcDatabase={1}mdb,cn=config\n")[1]
    assert "olcAccess: {0}to attrs=userPassword by self =w by anonymous auth by * none" in mdb, "unfolded"
    assert "olcAccess: {1}to * by * none" in mdb and "by users read" not in mdb
    assert mdb.count("olcDbIndex: uid eq") == 1, "a value already there is skipped (ldapmodify -c)"
    assert "olcDbIndex: mail eq" in mdb and "objectClass: olcMdbConfig" not in mdb
    assert "olcModuleLoad: {2}syncprov" in out, "an ordered value without {n} goes last"
    assert "include: file:///etc/ldap/schema/core.ldif" in out and "# a comment block" in out


def test_add_and_delete_entries():
    out = apply_ldif_changes(CONFIG, """\
dn: olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config
changetype: add
objectClass: olcSyncProvConfig
olcOverlay: {0}syncprov

dn: cn=module{0},cn=config
changetype: delete
""")
    assert out.rstrip().endswith("olcOverlay: {0}syncprov")
    assert "cn=module{0}" not in out


@pytest.mark.parametrize("changes, message", [
    ("dn: cn=nothing,cn=config\nchangetype: modify\nadd: x\nx: 1\n", "no such entry"),
    ("dn: cn=config\nchangetype: add\nobjectClass: olcGlobal\n", "already has it"),
    ("dn: cn=config\nchangetype: modrdn\nnewrdn: cn=x\n", "not supported"),
    ("dn: cn=config\nchangetype: modify\nolcLogLevel: 0\n", "expected add:/replace:/delete:"),
    ("dn: cn=config\nchangetype: modify\nreplace: olcLogLevel\nolcIdleTimeout: 5\n", "does not belong"),
    ("cn: config\n", "must start with dn:"),
])
def test_bad_change_records_are_refused_clearly(changes, message):
    with pytest.raises(DevSlapdError, match=message):
        apply_ldif_changes(CONFIG, changes)


def test_replication_changes_name_every_other_provider():
    text = replication_changes(server_id=2, providers=["ldap://127.0.0.1:1", "ldap://127.0.0.1:3"],
                               suffix="dc=example,dc=org", root_dn="cn=admin,dc=example,dc=org", root_password="pw")
    records = parse_change_records(text)
    assert [(dn, kind) for dn, kind, _ in records] == [
        ("cn=config", "modify"), ("cn=module{0},cn=config", "modify"),
        ("olcDatabase={1}mdb,cn=config", "modify"), ("olcOverlay={2}syncprov,olcDatabase={1}mdb,cn=config", "add")]
    assert "olcServerID: 2" in text and text.count("olcSyncrepl: {") == 2 and "olcMultiProvider: TRUE" in text


def test_the_options_leave_the_default_rendering_alone(tmp_path):
    plain = DevSlapd(tmp_path / "a")
    assert plain.config_changes == [] and plain.tls is None and not plain.providers and not plain.ldapi
    with pytest.raises(DevSlapdError, match="needs tls"):
        DevSlapd(tmp_path / "b", ldaps=True)
    with pytest.raises(DevSlapdError, match="server_id"):
        DevSlapd(tmp_path / "c", providers=["ldap://127.0.0.1:1"])
    with pytest.raises(DevSlapdError, match="ldaps"):
        _ = DevSlapd(tmp_path / "d", tls=TlsFiles("c.pem", "k.pem")).ldaps_url


def test_a_base64_value_is_the_same_value_as_its_plain_form():
    config = "dn: cn=config\nobjectClass: olcGlobal\nolcLogLevel: stats\n"
    encoded = base64.b64encode("stats".encode()).decode()
    changes = f"dn: cn=config\nchangetype: modify\nadd: olcLogLevel\nolcLogLevel:: {encoded}\n"
    assert apply_ldif_changes(config, changes).count("olcLogLevel") == 1, "already there: skipped"
    removal = f"dn: cn=config\nchangetype: modify\ndelete: olcLogLevel\nolcLogLevel:: {encoded}\n"
    assert "olcLogLevel" not in apply_ldif_changes(config, removal)
