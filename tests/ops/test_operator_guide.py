"""docs/operator-guide.md run from top to bottom, so the guide cannot drift from the code.

Every ``sh`` block after a ``<!-- tested: guide NAME … -->`` line is run in order, as the operator
would type it, against a throwaway slapd brought up as the guide's step 1 says (Debian's own
configuration, then deploy/openldap/README.md's block), with SQLite and the configuration in a
temporary folder and the guide's own mail catcher (``python -m aiosmtpd``) in the background.
The example values the markers name (folders, the server's URL, the catcher's port, the TLS line)
are replaced by the test's; every block after the first runs with the variables the previous
ones exported. After each block the test checks what it should have done, in LDAP, in the
database and in the catcher's output.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
from ldap3 import NONE, SAFE_SYNC, Connection, Server

from syncd.devslapd import DevSlapd, SlapdNotInstalled
from syncd.operator import NO_CENTRAL_ADMINISTRATOR
from syncd.settings import TlsSettings
from tests.apps.docblocks import substitute
from tests.fixtures_ldap import _in_ci
from tests.fixtures_smtp import free_port
from tests.openldap_setup import app_dn, configure_as_documented, syncd_dn

pytestmark = pytest.mark.long(35)

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "operator-guide.md"
SUFFIX = "dc=example,dc=org"
LEGACY_EMAIL = "claire.legacy@example.org"


def guide_blocks() -> list[tuple[str, str]]:
    text = GUIDE.read_text(encoding="utf-8")
    return re.findall(r"^<!-- tested: guide (\S+).*?-->\n```sh\n(.*?)^```$", text, re.M | re.S)


def test_the_guide_lists_exactly_the_tls_modes_the_settings_accept():
    text = GUIDE.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(\w+)`(?: \(the default\))? \| `ldaps?://` \|", text, re.M))
    assert documented == set(typing.get_args(TlsSettings.model_fields["mode"].annotation))


class Operator:
    """A shell session: each block sees what the previous ones exported."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.env = {**os.environ, "PATH": f"{folder / 'bin'}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
        for name in [n for n in self.env if n.startswith("SYNCD_")]:
            del self.env[name]
        bin_dir = folder / "bin"
        bin_dir.mkdir()
        # syncd's virtualenv, as an installed syncd has it (a symlink would lose the virtualenv)
        for name, command in (("syncd", f'"{sys.executable}" -m syncd'), ("python", f'"{sys.executable}"')):
            (bin_dir / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n', encoding="utf-8")
            (bin_dir / name).chmod(0o755)

    def block(self, block: str, values: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run ``block`` with the doc's example ``values`` replaced by the test's."""
        dump = self.folder / "env.dump"
        script = substitute(block, values or {}) + f'\nenv -0 > "{dump}"\n'
        done = subprocess.run(["sh", "-e", "-c", script], cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"the guide's block failed (exit {done.returncode}):\n{script}\n{done.stdout}\n{done.stderr}"
        self.env = dict(item.split("=", 1) for item in dump.read_text(encoding="utf-8").split("\0") if "=" in item)
        return done


def wait_for(predicate, what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {what}")
        time.sleep(0.1)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def root_connection(server: DevSlapd) -> Connection:
    return Connection(Server(server.url, get_info=NONE), server.root_dn, server.root_password,
                      client_strategy=SAFE_SYNC, auto_bind=True)


def seed_a_previous_tools_person(server: DevSlapd) -> None:
    """What a directory filled by another tool holds: its people, here one person (syncd's other
    branches, its organisations and role groups are left for its provision job to create)."""
    conn = root_connection(server)
    try:
        conn.add(f"ou=people,{SUFFIX}", ["organizationalUnit"], {"ou": "people"})
        _, result, _, _ = conn.add(
            f"uid=legacy-1,ou=people,{SUFFIX}", ["inetOrgPerson", "syncdAccount"],
            {"uid": "legacy-1", "cn": "Claire Legacy", "givenName": "Claire", "sn": "Legacy", "mail": LEGACY_EMAIL,
             "syncdPrimaryOrganisation": f"o=CPAM-75,ou=organisations,{SUFFIX}", "syncdAccountStatus": "active"})
        assert result["result"] == 0, result
    finally:
        conn.unbind()


def creator(server: DevSlapd, base: str, search: str) -> str | None:
    """Who created the entry ``search`` finds under ``base`` (lower case), None when none does."""
    conn = root_connection(server)
    try:
        _, _, found, _ = conn.search(base, search, attributes=["creatorsName"])
        return found[0]["attributes"]["creatorsName"][0].lower() if found else None
    finally:
        conn.unbind()


def drift_seen(env: dict[str, str]) -> dict:
    """The totals of ``syncd reconcile --dry-run`` run with these settings."""
    done = subprocess.run(["syncd", "reconcile", "--dry-run", "--json"], cwd=REPO, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["totals"]


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def directory_server(tmp_path: Path):
    try:
        server = DevSlapd(tmp_path / "slapd", suffix=SUFFIX, initial="debian").start()
    except SlapdNotInstalled as exc:
        message = f"SKIPPING THE OPERATOR'S GUIDE: no OpenLDAP slapd on this machine ({exc})"
        if _in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    try:
        configure_as_documented(server, tmp_path / "secrets")    # step 1: the README's block
        yield server
    finally:
        server.stop()


def test_the_operator_guide_works_from_top_to_bottom(tmp_path: Path, directory_server: DevSlapd):
    server, secrets = directory_server, tmp_path / "secrets"
    blocks = guide_blocks()
    assert [name for name, _ in blocks] == ["accounts", "config", "adopt", "catcher", "staging-mail", "deciders",
                                           "service-account"], "the guide's tested blocks changed: update the test"
    code = dict(blocks)
    etc, var, port = tmp_path / "etc", tmp_path / "var", free_port()
    url = {"ldap://ldap1.example.org": server.url}
    op = Operator(tmp_path)

    # 2. the service account and the application account bind with the README's password files
    done = op.block(code["accounts"], {**url, "/root/syncd-ldap.pw": str(secrets / "syncd_pw_file"),
                                       "/root/example-app-ldap.pw": str(secrets / "app_pw_file")})
    assert f"dn:{syncd_dn(SUFFIX)}" in done.stdout and f"dn:{app_dn(SUFFIX)}" in done.stdout

    # 3. the configuration, the secret from a file, the schema
    done = op.block(code["config"], {
        **url, "/etc/syncd": str(etc), "/var/lib/syncd": str(var), "/root/syncd-ldap.pw": str(secrets / "syncd_pw_file"),
        "tls: {mode: starttls, ca_file: /etc/ssl/certs/ca-certificates.crt, verify: true}": "tls: {mode: none}"})
    db = var / "syncd.db"
    assert rows(db, "SELECT version_num FROM alembic_version"), "syncd db upgrade made no schema"
    assert "bind_password" not in (etc / "syncd.yaml").read_text(encoding="utf-8")
    assert op.env.get("SYNCD_LDAP__BIND_PASSWORD_FILE") == str(etc / "credentials" / "ldap-bind-password")

    # 4. an existing directory: the dry run records nothing, adopt records the person
    seed_a_previous_tools_person(server)
    dry = subprocess.run(["syncd", "adopt", "--dry-run"], cwd=REPO, env=op.env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert "would be recorded" in dry.stdout
    assert rows(db, "SELECT count(*) FROM accounts") == [(0,)]
    op.block(code["adopt"])
    assert rows(db, f"SELECT status FROM accounts WHERE email = '{LEGACY_EMAIL}'") == [("active",)]

    # 5. the catcher, as the guide starts it, and syncd pointed at it
    catcher_out = tmp_path / "catcher.out"
    catcher = subprocess.Popen(["sh", "-c", substitute(code["catcher"], {"1025": str(port)})], cwd=REPO,
                               env={**op.env, "PYTHONUNBUFFERED": "1"}, stdout=catcher_out.open("w"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: listening(port), "the guide's mail catcher to listen")
        op.block(code["staging-mail"], {"1025": str(port)})
        assert op.env["SYNCD_SMTP__STARTTLS"] == "false"

        # 6. the first central administrator and a correspondent
        done = op.block(code["deciders"])
        deciders = rows(db, "SELECT a.email, d.scope, d.organisation_code FROM deciders d JOIN accounts a ON a.id = d.account_id")
        assert sorted(deciders) == [("alice.martin@example.org", "central", None),
                                    ("bruno.petit@example.org", "correspondent", "CPAM-75")]
        service = syncd_dn(SUFFIX).lower()
        for email in ("alice.martin@example.org", "bruno.petit@example.org"):
            assert creator(server, f"ou=people,{SUFFIX}", f"(mail={email})") == service, email
        assert creator(server, SUFFIX, "(o=CPAM-75)") == service, "the provision job made no organisation"
        assert creator(server, SUFFIX, "(ou=groups)") == service, "the provision job made no branch"
        wait_for(lambda: catcher_out.read_text().count("---------- MESSAGE FOLLOWS ----------") >= 2,
                 "the two password links at the catcher")
        received = catcher_out.read_text()
        assert "To: alice.martin@example.org" in received and "To: bruno.petit@example.org" in received
        assert "https://habilitations.example.org/" in received, "the links do not point to web.base_url"
        assert NO_CENTRAL_ADMINISTRATOR not in done.stdout and "deliver" in done.stdout
    finally:
        os.killpg(catcher.pid, 15)
        catcher.wait(timeout=10)

    # 9. a deployment that bound as the root DN moves to the service account
    config = etc / "syncd.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace(f"bind_dn: {syncd_dn(SUFFIX)}",
                                                                 f"bind_dn: {server.root_dn}"), encoding="utf-8")
    (etc / "credentials" / "ldap-bind-password").write_text(server.root_password, encoding="utf-8")
    as_root = drift_seen(op.env)
    done = op.block(code["service-account"], {**url, "/etc/syncd": str(etc),
                                              "/root/syncd-ldap.pw": str(secrets / "syncd_pw_file")})
    assert f"bind_dn: {syncd_dn(SUFFIX)}" in config.read_text(encoding="utf-8")
    assert f"dn:{syncd_dn(SUFFIX)}" in done.stdout
    # the service account sees everything the root DN saw: the same people, groups and drift
    assert drift_seen(op.env) == as_root
    assert as_root["people_in_ldap"] == 3 and as_root["groups_checked"] == 7
