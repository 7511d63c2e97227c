"""deploy/openldap as an operator applies it: a stock Debian slapd, and a server from slapd.ldif.in.

slapd starts from the Debian package's own ``/usr/share/slapd/slapd.init.ldif`` (rendered as its
postinst renders it: the indexes ``cn,uid`` and ``member,memberUid`` combined, a 1 GiB map, "everyone
reads everything"), then the README's shell block runs against it, twice. ``cn=config`` is read
back: every index, limit, access rule, the map size, the modules, overlays and schema are what
the production files say, once each. The same block on a server made from ``slapd.ldif.in`` ends
in the same configuration.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from ldap3 import NONE, SAFE_SYNC, Connection, Server
from ldap3.core.exceptions import LDAPSocketOpenError

from syncd.devslapd import DevSlapd, SlapdNotInstalled
from tests.openldap_setup import (APP_PASSWORD, MDB, SYNCD_PASSWORD, app_dn, changes_of, read_config, render,
                                  run_documented_sequence, strip_order, syncd_dn)

pytestmark = pytest.mark.slapd

SUFFIX = "dc=example,dc=org"


def _started(server: DevSlapd) -> DevSlapd:
    try:
        return server.start()
    except SlapdNotInstalled as exc:
        pytest.skip(f"no OpenLDAP slapd: {exc}")


def _ran(server, folder):
    done = run_documented_sequence(server, folder)
    assert done.returncode == 0, f"the README's block failed (exit {done.returncode}):\n{done.stderr}"
    return done


def _binds(server, dn, password) -> bool:
    conn = Connection(Server(server.url, get_info=NONE, connect_timeout=2), dn, password,
                      client_strategy=SAFE_SYNC, raise_exceptions=False)
    try:
        return conn.bind()[0]
    except LDAPSocketOpenError:
        return False
    finally:
        conn.unbind()


def _one_line(values):
    return [" ".join(v.split()) for v in values]


def assert_configured_as_shipped(server: DevSlapd) -> dict:
    config = read_config(server)
    database = changes_of(render("30-database.ldif", SUFFIX, SUFFIX))
    acls = changes_of(render("50-acls.ldif", SUFFIX, SUFFIX))
    mdb = config[MDB]
    want = database[MDB]
    assert sorted(mdb["olcdbindex"]) == sorted(want["olcdbindex"]), "every index, Debian's and syncd's"
    indexed = [a for v in mdb["olcdbindex"] for a in v.split()[0].split(",")]
    assert len(indexed) == len(set(indexed)), "one index definition per attribute"
    assert strip_order(mdb["olcdblimits" if "olcdblimits" in mdb else "olclimits"]) == strip_order(want["olclimits"])
    assert mdb["olcdbmaxsize"] == ["8589934592"]
    assert mdb["olcdbmultival"] == want["olcdbmultival"]
    assert config["olcDatabase={-1}frontend,cn=config"]["olcsortvals"] == ["member"]
    assert _one_line(strip_order(mdb["olcaccess"])) == _one_line(strip_order(acls[MDB]["olcaccess"]))
    overlays = sorted(dn.split(",")[0] for dn in config if dn.endswith("," + MDB))
    assert overlays == ["olcOverlay={0}memberof", "olcOverlay={1}refint"], "each overlay once"
    modules = strip_order(config["cn=module{0},cn=config"]["olcmoduleload"])
    assert sorted(modules) == ["back_mdb", "memberof", "refint"]
    assert [dn for dn in config if "syncd,cn=schema" in dn] and \
        len([dn for dn in config if "syncd,cn=schema" in dn]) == 1
    assert _binds(server, syncd_dn(SUFFIX), SYNCD_PASSWORD) and _binds(server, app_dn(SUFFIX), APP_PASSWORD)
    return config


def test_the_readme_sequence_configures_a_stock_debian_slapd_completely_and_again_changes_nothing(tmp_path):
    server = _started(DevSlapd(tmp_path / "debian", suffix=SUFFIX, initial="debian"))
    try:
        before = read_config(server)[MDB]
        assert "cn,uid eq" in before["olcdbindex"] and before["olcdbmaxsize"] == ["1073741824"], \
            "Debian's own configuration, not ours"
        _ran(server, tmp_path / "secrets")
        first = assert_configured_as_shipped(server)
        _ran(server, tmp_path / "secrets")
        assert assert_configured_as_shipped(server) == first, "applied again: nothing changes"
    finally:
        server.stop()


def test_the_readme_sequence_on_a_server_made_from_slapd_ldif_in_ends_the_same(tmp_path):
    server = _started(DevSlapd(tmp_path / "template", suffix=SUFFIX, ldapi=True))
    try:
        conn = Connection(Server(server.url, get_info=NONE), server.root_dn, server.root_password,
                          client_strategy=SAFE_SYNC, auto_bind=True)
        conn.add(SUFFIX, ["dcObject", "organization"], {"dc": "example", "o": "example"})
        conn.unbind()
        _ran(server, tmp_path / "secrets")
        assert_configured_as_shipped(server)
    finally:
        server.stop()


def _share_as_the_image_copies_it(share):
    """/usr/share/syncd as the Containerfile's COPY lines make it."""
    import shutil
    from tests.openldap_setup import REPO
    containerfile = (REPO / "deploy" / "openldap" / "container" / "Containerfile").read_text()
    for source, target in re.findall(r"(?m)^COPY (\S+) /usr/share/syncd/(\S+)$", containerfile):
        destination = share / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, destination)
        else:
            shutil.copyfile(REPO / source, destination)


def test_the_container_entrypoint_configures_slapd_as_the_readme_says(tmp_path):
    import subprocess
    import time
    from syncd.devslapd import free_port
    from tests.openldap_setup import REPO
    entrypoint = REPO / "deploy" / "openldap" / "container" / "entrypoint.sh"
    if not shutil.which("slapd") and not Path("/usr/sbin/slapd").exists():
        pytest.skip("no OpenLDAP slapd")
    share = tmp_path / "share"
    _share_as_the_image_copies_it(share)
    secrets = {"LDAP_ADMIN_PASSWORD_FILE": "admin-password", "LDAP_SYNCD_PASSWORD_FILE": SYNCD_PASSWORD,
               "LDAP_APP_PASSWORD_FILE": APP_PASSWORD}
    env = {**os.environ, "PATH": f"{os.environ['PATH']}:/usr/sbin", "LDAP_SUFFIX": SUFFIX,
           "SLAPD_CONF": str(tmp_path / "slapd.d"), "SLAPD_DBDIR": str(tmp_path / "db"),
           "SLAPD_RUN": str(tmp_path / "run"), "SYNCD_SHARE": str(share), "SLAPD_USER": ""}
    for name, secret in secrets.items():
        (tmp_path / name).write_text(secret)
        env[name] = str(tmp_path / name)
    # a DevSlapd object that only names this server (not started by it): the URLs and the root DN
    server = DevSlapd(tmp_path / "run", suffix=SUFFIX, port=free_port(), root_password="admin-password", ldapi=True)
    env["SLAPD_URLS"] = server.url + "/"
    for start in ("first", "again"):      # the second start finds its configuration and just runs
        proc = subprocess.Popen(["sh", str(entrypoint)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not _binds(server, server.root_dn, server.root_password):
                assert proc.poll() is None, f"the entrypoint stopped ({start}):\n{proc.stdout.read().decode()}"
                assert time.monotonic() < deadline, f"slapd did not answer ({start})"
                time.sleep(0.2)
            assert_configured_as_shipped(server)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_80_tls_ldif_applied_live_serves_starttls_with_the_tests_ca_and_applies_again(tmp_path, pki):
    from syncd.directory import Directory
    from tests.fixtures_ldap import sample_layout
    from tests.openldap_setup import apply_tls, configure_as_documented
    server = _started(DevSlapd(tmp_path / "debian", suffix=SUFFIX, initial="debian"))
    try:
        configure_as_documented(server, tmp_path / "secrets")
        cert, key = pki["server"]
        for _ in range(2):
            apply_tls(server, cert, key, pki["ca"].cert)          # refused: an exception
        settings = server.ldap_settings(tls={"mode": "starttls", "ca_file": str(pki["ca"].cert)}, timeout_seconds=3)
        with Directory(settings, sample_layout(SUFFIX)) as directory:
            directory.ping()                       # as syncd's service account, over verified TLS
        config = read_config(server)["cn=config"]
        assert config["olctlsprotocolmin"] == ["3.3"] and config["olctlscertificatefile"] == [str(cert)]
    finally:
        server.stop()
