"""A throwaway real 389 Directory Server for tests, configured as ``deploy/389ds/README.md`` says.

``dscreate`` cannot run here (it calls ``systemctl`` whatever the .inf says), so the instance
is made the way ``dscreate`` makes it underneath: the server's own template
``template-dse.ldif`` with its ``%key%`` placeholders filled in (every folder under a work
folder, a free loopback port, the current user, ``cn=Directory Manager`` with a hashed
password), then ``ns-slapd -D <config folder> -d 0`` started in the foreground as a child
process (a daemonised ns-slapd is not ours to stop), then the backend and the suffix entry
added over LDAP (what ``dscreate``'s ``create_suffix_entry`` does).

From there the operator's steps of the README run unchanged, with the client tools of
``ldap-utils`` (``ldapmodify`` / ``ldapadd``) bound as the Directory Manager:

1. ``schema/389ds/99syncd.ldif`` copied into the instance's schema folder, then a restart;
2. ``10-plugins.ldif`` (MemberOf, Referential Integrity), then a restart;
3. ``20-indexes.ldif`` with ``ldapadd -c`` (a new backend already has some of them);
4. ``30-entries.ldif`` (branches and the service accounts), 5. ``40-aci.ldif``.

Both restarts are one: the schema file is in place before the first start. A restart is a
SIGKILL (0.01 s; SIGTERM takes 2-3 s) and a new start (~0.5 s): the database recovers, and
``dse.ldif`` was written when the configuration changed. ns-slapd leaves the POSIX semaphore
``/dev/shm/sem.<config folder name>.stats`` behind when killed, and a leftover owned by another
user stops a later start with no log at all: every instance gets a config folder name of its
own and the semaphore is removed when it stops.

    with Ds389(tmp_path) as ds:
        print(ds.url, ds.service_dn, ds.service_password)
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from syncd.devslapd import free_port, source_dir
from syncd.settings import LdapSettings

NS_SLAPD = Path(os.environ.get("SYNCD_NS_SLAPD", "/usr/sbin/ns-slapd"))
TEMPLATE = Path("/usr/share/dirsrv/data/template-dse.ldif")
PWDHASH = Path("/usr/bin/pwdhash")
SYSTEM_CONFIG = Path("/etc/dirsrv/config")
INSTALL_HINT = "install it with: apt-get install -y 389-ds-base ldap-utils"
ROOT_DN = "cn=Directory Manager"


class Ds389NotInstalled(RuntimeError):
    """ns-slapd, its template or the LDAP client tools are missing."""


class Ds389Error(RuntimeError):
    """The server did not start, or a deploy file was refused."""


def _render(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


class Ds389:
    """One 389-DS instance under ``workdir`` (see the module docstring)."""

    def __init__(self, workdir: Path, suffix: str = "dc=example,dc=org", *, backend: str = "userRoot"):
        self.workdir = Path(workdir)
        self.suffix = suffix
        self.backend = backend
        self.port = free_port()
        self.name = f"slapd-syncd{secrets.token_hex(6)}"   # unique: it names the semaphore
        # hex: a password that begins with "-" would be an option to pwdhash
        self.root_password = secrets.token_hex(16)
        self.service_dn = f"cn=syncd,ou=services,{suffix}"
        self.service_password = secrets.token_hex(16)
        self.app_dn = f"cn=example-app,ou=applications,ou=services,{suffix}"
        self.app_password = secrets.token_hex(16)
        self._process: subprocess.Popen | None = None

    # -- paths and URLs ---------------------------------------------------------------------

    @property
    def config_dir(self) -> Path:
        return self.workdir / self.name

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def deploy_dir(self) -> Path:
        return source_dir() / "deploy" / "389ds"

    def _path(self, which: str) -> Path:
        return self.workdir / which

    def log_text(self) -> str:
        path = self._path("log") / "errors"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    # -- life cycle -------------------------------------------------------------------------

    def _check_installed(self) -> None:
        for path in (NS_SLAPD, TEMPLATE, PWDHASH):
            if not path.exists():
                raise Ds389NotInstalled(f"{path} not found: {INSTALL_HINT}")
        for tool in ("ldapmodify", "ldapadd"):
            if shutil.which(tool) is None:
                raise Ds389NotInstalled(f"{tool} not found: {INSTALL_HINT}")

    def _render_dse(self) -> str:
        done = subprocess.run([str(PWDHASH), "-s", "SSHA512", self.root_password], capture_output=True, text=True)
        if done.returncode != 0:     # (the command line holds the password: not in the message)
            raise Ds389Error(f"pwdhash failed ({done.returncode}): {done.stderr.strip()}")
        hashed = done.stdout.strip()
        w = self.workdir
        values = {
            "config_dir": self.config_dir, "schema_dir": self.config_dir / "schema",
            "lock_dir": w / "lock", "tmp_dir": w / "tmp", "cert_dir": self.config_dir,
            "ldif_dir": w / "ldif", "bak_dir": w / "bak", "run_dir": w / "run", "inst_dir": w / "inst",
            "log_dir": w / "log", "db_dir": w / "db", "db_home_dir": w / "dbhome", "db_lib": "bdb",
            "fqdn": "localhost", "ds_port": self.port, "ds_user": _user_name(),
            "rootdn": ROOT_DN, "ds_passwd": hashed, "ds_suffix": self.suffix,
            "ldapi_enabled": "off", "ldapi": w / "run" / "ldapi", "ldapi_autobind": "off",
        }
        text = TEMPLATE.read_text()
        for key, value in values.items():
            text = text.replace(f"%{key}%", str(value))
        # Loopback only; a small fixed cache instead of a share of the machine's memory; and no
        # fsync per write (a throwaway server: 2,500 adds take 13 s with it).
        text = text.replace(f"nsslapd-port: {self.port}\n",
                            f"nsslapd-port: {self.port}\nnsslapd-listenhost: 127.0.0.1\n", 1)
        text = text.replace("nsslapd-backend-implement: bdb\n",
                            "nsslapd-backend-implement: bdb\nnsslapd-cache-autosize: 0\n"
                            "nsslapd-dbcachesize: 8388608\nnsslapd-db-durable-transaction: off\n", 1)
        return text

    def _create(self) -> None:
        for which in ("lock", "tmp", "ldif", "bak", "run", "inst", "log", "db", "dbhome"):
            self._path(which).mkdir(parents=True, exist_ok=True)
        (self.config_dir / "schema").mkdir(parents=True)
        (self.config_dir / "dse.ldif").write_text(self._render_dse())
        for name in ("slapd-collations.conf", "certmap.conf"):
            if (SYSTEM_CONFIG / name).exists():
                shutil.copy(SYSTEM_CONFIG / name, self.config_dir / name)
        # An empty user schema file, or ns-slapd exits; then the README's step 1, done before
        # the first start (copying the file and restarting).
        (self.config_dir / "schema" / "99user.ldif").write_text("dn: cn=schema\n")
        shutil.copy(source_dir() / "schema" / "389ds" / "99syncd.ldif", self.config_dir / "schema" / "99syncd.ldif")
        (self.workdir / "root.pw").write_text(self.root_password)
        (self.workdir / "root.pw").chmod(0o600)

    def start(self) -> "Ds389":
        """Create the instance and configure it from ``deploy/389ds`` as its README says."""
        self._check_installed()
        self._create()
        self._launch()
        self._add_suffix()
        self.apply("10-plugins.ldif")
        self.restart()      # plugin changes take effect at start
        self.apply("20-indexes.ldif", add=True, continue_on_error=True)
        self.apply("30-entries.ldif", add=True)
        self.apply("40-aci.ldif")
        return self

    def _launch(self) -> None:
        out = open(self.workdir / "ns-slapd.out", "ab")
        self._process = subprocess.Popen(
            [str(NS_SLAPD), "-D", str(self.config_dir), "-i", str(self.workdir / "run" / "ns-slapd.pid"), "-d", "0"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise Ds389Error(f"ns-slapd exited with {self._process.returncode}: {self.log_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise Ds389Error(f"ns-slapd did not listen on {self.port} within 30 s: {self.log_text()}")

    def _add_suffix(self) -> None:
        rdn_attr, rdn_value = self.suffix.split(",", 1)[0].split("=", 1)
        classes = {"dc": "domain", "o": "organization", "ou": "organizationalUnit"}[rdn_attr.lower()]
        self.ldapmodify(f"""\
dn: cn={self.backend},cn=ldbm database,cn=plugins,cn=config
changetype: add
objectClass: top
objectClass: extensibleObject
objectClass: nsBackendInstance
cn: {self.backend}
nsslapd-suffix: {self.suffix}
nsslapd-cachememsize: 16777216

dn: cn="{self.suffix}",cn=mapping tree,cn=config
changetype: add
objectClass: top
objectClass: extensibleObject
objectClass: nsMappingTree
cn: {self.suffix}
nsslapd-state: backend
nsslapd-backend: {self.backend}

dn: {self.suffix}
changetype: add
objectClass: top
objectClass: {classes}
{rdn_attr}: {rdn_value}
""")

    def restart(self) -> None:
        self.kill()
        self._launch()

    def kill(self) -> None:
        """SIGKILL the server (0.01 s), reap it, and remove the semaphore it leaves."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
        self._process = None
        try:
            os.unlink(f"/dev/shm/sem.{self.name}.stats")
        except FileNotFoundError:
            pass

    stop = kill

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> "Ds389":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()

    # -- the operator's tools ---------------------------------------------------------------

    def placeholders(self) -> dict[str, str]:
        return {"SUFFIX": self.suffix, "BASE": self.suffix, "SYNCD_PASSWORD": self.service_password,
                "APP_PASSWORD": self.app_password}

    def render(self, name: str) -> str:
        """One file of ``deploy/389ds`` with the README's placeholders filled in."""
        return _render((self.deploy_dir / name).read_text(encoding="utf-8"), self.placeholders())

    def ldapmodify(self, ldif: str, *, add: bool = False, continue_on_error: bool = False) -> str:
        """``ldapmodify`` (``ldapadd`` with ``add``) as the Directory Manager; raise on failure."""
        command = ["ldapadd" if add else "ldapmodify", "-x", "-H", self.url, "-D", ROOT_DN,
                   "-y", str(self.workdir / "root.pw")]
        if continue_on_error:
            command.append("-c")
        done = subprocess.run(command, input=ldif, capture_output=True, text=True, timeout=60)
        if done.returncode != 0 and not continue_on_error:
            raise Ds389Error(f"{' '.join(command[:2])} failed ({done.returncode}): {done.stderr.strip()}")
        unexpected = [line for line in done.stderr.splitlines()
                      if line.startswith("ldap_") and "Already exists (68)" not in line]
        if continue_on_error and unexpected:
            raise Ds389Error(f"{command[0]} -c: {unexpected}")
        return done.stdout

    def apply(self, name: str, *, add: bool = False, continue_on_error: bool = False) -> str:
        return self.ldapmodify(self.render(name), add=add, continue_on_error=continue_on_error)

    # -- settings ---------------------------------------------------------------------------

    def ldap_settings(self, **overrides: Any) -> LdapSettings:
        """Settings for syncd bound as its service account (``30-entries.ldif``)."""
        values: dict[str, Any] = {"urls": [self.url], "bind_dn": self.service_dn,
                                  "bind_password": self.service_password, "timeout_seconds": 5}
        values.update(overrides)
        return LdapSettings(**values)

    def admin_settings(self, **overrides: Any) -> LdapSettings:
        """Settings bound as the Directory Manager: for seeding and checking, never for syncd."""
        return self.ldap_settings(bind_dn=ROOT_DN, bind_password=self.root_password, **overrides)

    def __repr__(self) -> str:
        return f"Ds389({self.url}, {self.config_dir})"


def _user_name() -> str:
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name
