"""A throwaway Samba 4 Active Directory domain controller for tests.

Samba's LDAP ports (389, 636) are fixed in its source, so each DC listens on a loopback address of
its own (``127.0.0.N``, ``interfaces`` + ``bind interfaces only``). It must run as root
(provisioning chowns files; port 389).

1. ``samba-tool domain provision`` into a work folder (``--targetdir``; nothing is written
   elsewhere), DNS off, RFC 2307 attributes on: 3.5-5 s on an idle machine.
2. ``etc/smb.conf`` edited: ``ldap server require strong auth = no`` (simple binds; given to
   ``provision --option`` it is not saved), ``server services = ldap`` (no smbd, KDC, DNS, RPC),
   and the pid, ncalrpc and log folders under the work folder.
3. ``samba -i -M single`` in the foreground as a child process (one process, ~53 MB), polled
   with a base search until it answers (0.2-0.5 s; the first start also generates the TLS key
   and a self-signed certificate for ``<HOST>.<realm>``: +2 s).

A test run provisions and starts one DC, stops it (its TLS key is made), and starts a copy of
its folder per test (``copy``: ~0.1 s, then ~0.2-1 s to start): every test gets an empty domain.

TLS uses that generated certificate: ``ca_file`` is ``private/tls/ca.pem`` and, since tests reach
the DC by address, ``tls.server_name`` names the host the certificate was issued to.

    with SambaAd(tmp_path) as dc:
        print(dc.url, dc.ldaps_url, dc.admin_dn, dc.admin_password)
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from ldap3 import Connection, Server

from syncd.settings import LdapSettings

SAMBA = Path(os.environ.get("SYNCD_SAMBA", "/usr/sbin/samba"))
SAMBA_TOOL = Path(os.environ.get("SYNCD_SAMBA_TOOL", "/usr/bin/samba-tool"))
INSTALL_HINT = "install it with: apt-get install -y samba"
REALM = "EXAMPLE.ORG"
DOMAIN = "EXAMPLE"
HOST = "dc1"
SUFFIX = "DC=example,DC=org"
SYNCD_OU = f"OU=syncd,{SUFFIX}"
# The delegation of deploy/activedirectory/README.md on SYNCD_OU, inherited by everything below:
# create and delete users, groups and OUs; read and write their properties; reset passwords.
_USER, _GROUP, _OU = ("bf967aba-0de6-11d0-a285-00aa003049e2", "bf967a9c-0de6-11d0-a285-00aa003049e2",
                      "bf967aa5-0de6-11d0-a285-00aa003049e2")
_RESET_PASSWORD = "00299570-246d-11d0-a768-00aa006e0529"
DELEGATION = tuple(
    [f"(OA;CI;CCDC;{cls};;{{sid}})" for cls in (_USER, _GROUP, _OU)]
    + [f"(OA;CIIO;RPWP;;{cls};{{sid}})" for cls in (_USER, _GROUP, _OU)]
    + [f"(OA;CIIO;CR;{_RESET_PASSWORD};{_USER};{{sid}})"])


# Sockets, locks and logs of a (stopped) DC that a copy must not inherit.
_NOT_COPIED = frozenset({"ldapi", "ldap_priv", "msg.sock", "msg.lock", "samba.out"})


class SambaNotAvailable(RuntimeError):
    """samba is not installed, or cannot run here (not root)."""


class SambaError(RuntimeError):
    """Provisioning failed, or the DC did not start."""


def free_loopback_address() -> str:
    """A 127.0.0.N (N in 20..250) on which nothing listens on port 389 right now."""
    for _ in range(200):
        address = f"127.0.0.{secrets.randbelow(230) + 20}"
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((address, 389)) != 0:
                return address
    raise SambaError("no free loopback address for a domain controller")


class SambaAd:
    """One Samba AD DC provisioned under ``workdir`` (see the module docstring)."""

    def __init__(self, workdir: Path, *, address: str | None = None):
        self.workdir = Path(workdir)
        self.address = address or free_loopback_address()
        # Complexity rules: upper, lower, digit, symbol; never a leading "-" (an option).
        self.admin_password = "Adm-" + secrets.token_hex(10) + "!Z9"
        self.admin_dn = f"CN=Administrator,CN=Users,{SUFFIX}"
        self.suffix = SUFFIX
        self.base_dn = SYNCD_OU                       # syncd's base_dn, delegated to it
        self.service_dn = f"CN=svc-syncd,CN=Users,{SUFFIX}"
        self.service_password = "Svc-" + secrets.token_hex(12) + "!Q7"
        self._process: subprocess.Popen | None = None
        self.timings: dict[str, float] = {}

    # -- paths and URLs ---------------------------------------------------------------------

    @property
    def smb_conf(self) -> Path:
        return self.workdir / "etc" / "smb.conf"

    @property
    def url(self) -> str:
        return f"ldap://{self.address}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.address}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "private" / "tls" / "ca.pem"

    @property
    def server_name(self) -> str:
        """The name the DC's generated certificate is issued to."""
        return f"{HOST}.{REALM.lower()}"

    def log_text(self) -> str:
        path = self.workdir / "samba.out"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    # -- life cycle -------------------------------------------------------------------------

    @staticmethod
    def check_available() -> None:
        for path in (SAMBA, SAMBA_TOOL):
            if not path.exists():
                raise SambaNotAvailable(f"{path} not found: {INSTALL_HINT}")
        if os.geteuid() != 0:
            raise SambaNotAvailable("a Samba domain controller runs as root only (it listens on port 389 "
                                    "and provisioning changes file owners); run the tests as root, as CI does")

    def provision(self) -> "SambaAd":
        self.check_available()
        started = time.monotonic()
        command = [str(SAMBA_TOOL), "domain", "provision", f"--realm={REALM}", f"--domain={DOMAIN}",
                   "--server-role=dc", "--dns-backend=NONE", "--use-rfc2307",
                   f"--adminpass={self.admin_password}", f"--targetdir={self.workdir}", f"--host-name={HOST}",
                   f"--option=interfaces={self.address}/8", "--option=bind interfaces only=yes"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:      # the command line holds the password: not in the message
            raise SambaError(f"samba-tool domain provision failed ({done.returncode}): {done.stderr[-3000:]}")
        self._edit_smb_conf()
        self.timings["provision"] = time.monotonic() - started
        return self

    def _edit_smb_conf(self) -> None:
        text = self.smb_conf.read_text()
        for folder in ("run", "ncalrpc", "log"):
            (self.workdir / folder).mkdir(exist_ok=True)
        extra = (f"\tserver services = ldap\n\tldap server require strong auth = no\n"
                 f"\tpid directory = {self.workdir / 'run'}\n\tncalrpc dir = {self.workdir / 'ncalrpc'}\n")
        text, n = re.subn(r"^\s*server services = .*\n", extra, text, count=1, flags=re.M)
        if n != 1:
            text = text.replace("[global]\n", "[global]\n" + extra, 1)
        text = re.sub(r"^\s*log file = .*$", f"\tlog file = {self.workdir / 'log' / 'log.%m'}", text, flags=re.M)
        self.smb_conf.write_text(text)

    def start(self) -> "SambaAd":
        """Start the DC (provisioned already) and wait until it answers an LDAP search."""
        started = time.monotonic()
        out = open(self.workdir / "samba.out", "ab")
        # A throwaway DC: no fsync per write (Samba's own test suite runs so).
        env = {**os.environ, "TDB_NO_FSYNC": "1"}
        self._process = subprocess.Popen([str(SAMBA), "-i", "-M", "single", "-s", str(self.smb_conf)],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, env=env)
        out.close()
        self._wait_ready(started)
        self.timings["start"] = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        from ldap3 import BASE, Connection, Server
        deadline = started + 60
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise SambaError(f"samba exited with {self._process.returncode}: {self.log_text()}")
            try:
                conn = Connection(Server(self.address, connect_timeout=1), self.admin_dn, self.admin_password,
                                  receive_timeout=5)
                if conn.bind() and conn.search("", "(objectClass=*)", BASE, attributes=["1.1"]):
                    conn.unbind()
                    # the TLS key is generated at the first start: LDAPS answers once it exists
                    if self.ca_file.exists() and self._ldaps_answers():
                        return
                else:
                    conn.unbind()
            except Exception:   # noqa: BLE001 - not up yet
                pass
            time.sleep(0.1)
        self.stop()
        raise SambaError(f"samba did not answer on {self.address}:389 within 60 s: {self.log_text()}")

    def _ldaps_answers(self) -> bool:
        try:
            socket.create_connection((self.address, 636), timeout=0.5).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; reap the process."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=10)
        self._process = None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> "SambaAd":
        return self.provision().start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def copy(self, workdir: Path, *, address: str | None = None) -> "SambaAd":
        """A DC of its own from this one's folder (stopped: its databases are copied as files),
        on another loopback address: the paths and the address in smb.conf are rewritten, the
        sockets and pid files left behind. ~0.1 s, and ~0.2-1 s to start (no key to generate)."""
        if self.is_running():
            raise SambaError("stop a domain controller before copying it")
        other = SambaAd(workdir, address=address)
        other.admin_password = self.admin_password
        other.service_password = self.service_password
        shutil.copytree(self.workdir, other.workdir, symlinks=True, dirs_exist_ok=True,
                        ignore=lambda folder, names: [n for n in names if n in _NOT_COPIED or n.endswith(".pid")])
        (other.workdir / "log").mkdir(exist_ok=True)
        text = self.smb_conf.read_text().replace(str(self.workdir), str(other.workdir))
        other.smb_conf.write_text(text.replace(f"interfaces = {self.address}/", f"interfaces = {other.address}/"))
        return other

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- syncd's service account ------------------------------------------------------------

    def delegate(self) -> "SambaAd":
        """Create ``SYNCD_OU`` and syncd's service account, and delegate that OU to it as
        deploy/activedirectory/README.md says (``samba-tool dsacl set``, the SDDL of ``dsacls``)."""
        from ldap3 import BASE
        conn = Connection(Server(self.address), self.admin_dn, self.admin_password, auto_bind=True)
        try:
            for dn, classes, attrs in (
                    (self.base_dn, ["organizationalUnit"], {}),
                    (self.service_dn, ["user"], {"sAMAccountName": "svc-syncd", "userAccountControl": "512"})):
                conn.add(dn, classes, attrs)
                if conn.result["result"] != 0:
                    raise SambaError(f"cannot add {dn}: {conn.result}")
            conn.extend.microsoft.modify_password(self.service_dn, self.service_password)
            conn.search(self.service_dn, "(objectClass=*)", BASE, attributes=["objectSid"])
            sid = _sid_text(conn.response[0]["raw_attributes"]["objectSid"][0])
        finally:
            conn.unbind()
        sddl = "".join(ace.format(sid=sid) for ace in DELEGATION)
        done = subprocess.run([str(SAMBA_TOOL), "dsacl", "set", "-s", str(self.smb_conf), "-H", self.url,
                               "-U", f"Administrator%{self.admin_password}", f"--objectdn={self.base_dn}",
                               f"--sddl={sddl}"], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise SambaError(f"samba-tool dsacl set failed ({done.returncode}): {done.stderr[-2000:]}")
        return self

    # -- settings ---------------------------------------------------------------------------

    def ldap_settings(self, *, tls: bool = True, **overrides: Any) -> LdapSettings:
        """Settings bound as syncd's service account (``delegate``), over LDAPS with the DC's
        certificate (``tls=False``: plain LDAP, on which syncd refuses to set passwords)."""
        values: dict[str, Any] = {"urls": [self.ldaps_url if tls else self.url], "bind_dn": self.service_dn,
                                  "bind_password": self.service_password, "timeout_seconds": 10}
        if tls:
            values["tls"] = {"mode": "ldaps", "ca_file": str(self.ca_file), "server_name": self.server_name}
        values.update(overrides)
        return LdapSettings(**values)

    def admin_settings(self, **overrides: Any) -> LdapSettings:
        """Settings bound as the domain's Administrator: for arranging and checking, never for syncd."""
        return self.ldap_settings(bind_dn=self.admin_dn, bind_password=self.admin_password, **overrides)

    def __repr__(self) -> str:
        return f"SambaAd({self.url}, {self.workdir})"


def _sid_text(raw: bytes) -> str:
    """A binary objectSid as S-1-5-21-…"""
    subs = [int.from_bytes(raw[8 + 4 * i:12 + 4 * i], "little") for i in range(raw[1])]
    return f"S-{raw[0]}-{int.from_bytes(raw[2:8], 'big')}-" + "-".join(map(str, subs))
