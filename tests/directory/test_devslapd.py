"""DevSlapd: the throwaway slapd renders the shipped configuration and explains its failures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from syncd import devslapd
from syncd.devslapd import DevSlapd, DevSlapdError, SlapdNotInstalled
from syncd.directory import Directory, names
from tests.fixtures_ldap import sample_layout

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_template_has_exactly_the_documented_placeholders():
    template = (REPO / "deploy" / "openldap" / "slapd.ldif.in").read_text()
    found = {m for line in template.splitlines() if not line.startswith("#")
             for m in re.findall(r"@[A-Z_]+@", line)}
    assert found == {"@SUFFIX@", "@ROOTDN@", "@ROOTPW@", "@DBDIR@", "@MODULEDIR@", "@SCHEMADIR@",
                     "@SYNCD_SCHEMA@", "@PIDFILE@", "@ARGSFILE@"}


def test_both_schema_variants_use_the_same_oids():
    def oids(path):
        return re.findall(r"\(\s*(2\.25\.\d+\.[12]\.\d+)\s+NAME\s+'(\w+)'", path.read_text().replace("\n  ", " "))
    openldap = oids(REPO / "schema" / "openldap" / "syncd.ldif")
    ds389 = oids(REPO / "schema" / "389ds" / "99syncd.ldif")
    assert openldap == ds389
    assert len(openldap) == 20 and len({o for o, _ in openldap}) == 20


def test_a_missing_slapd_binary_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.delenv("SYNCD_SLAPD", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(devslapd, "_BIN_DIRS", (str(tmp_path),))
    with pytest.raises(SlapdNotInstalled, match="apt-get install -y slapd ldap-utils"):
        DevSlapd(tmp_path / "w").start()


def test_a_wrong_slapd_override_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNCD_SLAPD", str(tmp_path / "no-slapd"))
    with pytest.raises(SlapdNotInstalled, match="SYNCD_SLAPD"):
        DevSlapd(tmp_path / "w").start()


def test_a_work_folder_with_spaces_is_refused_clearly(tmp_path):
    with pytest.raises(DevSlapdError, match="whitespace"):
        DevSlapd(tmp_path / "with space").start()


@pytest.mark.slapd
def test_the_rendered_config_loads_the_overlays_indexes_and_our_schema(slapd):
    config = (slapd.workdir / "config.ldif").read_text()
    assert "@" not in "".join(l for l in config.splitlines() if not l.startswith("#"))
    mdb = next(slapd.config_dir.glob("cn=config/olcDatabase={1}mdb.ldif")).read_text()
    assert "olcDbMultival: member 100,10" in mdb and "olcDbMaxSize: 8589934592" in mdb
    assert "olcDbIndex: memberOf eq" in mdb
    overlays = {p.name for p in slapd.config_dir.glob("cn=config/olcDatabase={1}mdb/*.ldif")}
    assert overlays == {"olcOverlay={0}memberof.ldif", "olcOverlay={1}refint.ldif"}
    assert any("syncd" in p.name for p in slapd.config_dir.glob("cn=config/cn=schema/*.ldif"))
    assert slapd.root_password not in config            # only its {SSHA} hash is written


@pytest.mark.slapd
def test_a_startup_failure_shows_slapds_own_words(slapd, tmp_path):
    other = DevSlapd(tmp_path / "clash", port=slapd.port)    # that port is taken
    with pytest.raises(DevSlapdError, match="slapd exited"):
        other.start()
    assert not other.is_running()


@pytest.mark.slapd
def test_bulk_load_adds_entries_offline_and_restarts_the_server(slapd, tmp_path):
    layout = sample_layout("dc=example,dc=org")
    people = names.branch_dn(layout, "people")
    lines = ["dn: dc=example,dc=org", "objectClass: domain", "dc: example", "",
             f"dn: {people}", "objectClass: organizationalUnit", "ou: people", ""]
    for i in range(50):
        lines += [f"dn: {names.person_dn(layout, f'b{i}')}", "objectClass: inetOrgPerson",
                  f"uid: b{i}", f"cn: b {i}", "sn: b", ""]
    ldif = tmp_path / "bulk.ldif"
    ldif.write_text("\n".join(lines))
    with DevSlapd(tmp_path / "bulk") as server:
        port = server.port
        server.bulk_load(ldif)
        assert server.is_running() and server.port == port
        d = Directory(server.ldap_settings(), layout)
        assert len(list(d.iter_entries(people, "(objectClass=inetOrgPerson)", ["uid"]))) == 50
        d.close()
    assert not server.is_running()
