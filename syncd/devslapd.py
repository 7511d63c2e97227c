"""A throwaway real OpenLDAP slapd for tests, ``syncd demo`` and benchmarks.

Like python-ldap's ``slapdtest``: the configuration is the one syncd ships
(``deploy/openldap/slapd.ldif.in`` with ``schema/openldap/syncd.ldif``), rendered into a
work folder, loaded with ``slapadd -n0``, and slapd is started on a free loopback port in
the foreground (``-d 0``) as a child process, so stopping it is stopping that process.

    with DevSlapd(tmp_path) as slapd:
        print(slapd.url, slapd.root_dn, slapd.root_password)

The ``deploy/`` and ``schema/`` folders are read from the source tree syncd is installed
from (an editable install, the usual case for development), or, from a wheel, from the copies
it installs under ``<prefix>/share/syncd``; ``SYNCD_SOURCE_DIR`` names another folder.

Options (all off by default, for the operations tests):

* ``initial="debian"``: instead of syncd's template, the Debian package's own
  ``/usr/share/slapd/slapd.init.ldif``, rendered as its postinst renders it (with its suffix
  entry, or ``initial_data``: another server's ``slapcat``), to be configured live as an
  operator does (``tests/openldap_setup.py`` runs deploy/openldap/README.md's block);
* ``ldapi=True`` (always, for ``debian``): a local ``ldapi://`` socket too (``ldapi_url``), on
  which the user running slapd manages ``cn=config`` with ``ldapmodify -Y EXTERNAL``
  (``ldap_tool``);
* ``enable_ldaps()``: an ``ldaps://`` listener too from the next start (``ldaps_url``), once TLS
  is set in ``cn=config`` (e.g. by ``deploy/openldap/production/80-tls.ldif``);
* ``service_account = (dn, password)``: ``ldap_settings()`` binds as it (``root_settings()``
  as the root DN);
* ``kill()``: SIGKILL, as a crash (``stop()`` is a clean SIGTERM).

Binaries and system folders are found on their usual Debian/RHEL/source-build paths and can
be overridden with ``SYNCD_SLAPD`` (the slapd binary; slapadd is looked up next to it),
``SYNCD_SLAPD_MODULEDIR`` and ``SYNCD_SLAPD_SCHEMADIR``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import shutil
import site
import socket
import subprocess
import sysconfig
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog

log = structlog.get_logger(__name__)

INSTALL_HINT = "install it with: apt-get install -y slapd ldap-utils"
DEBIAN_INIT = Path("/usr/share/slapd/slapd.init.ldif")   # what the Debian package's postinst loads

_BIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/usr/local/libexec", "/opt/openldap/libexec")
_MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/libexec/openldap",
                "/usr/local/libexec/openldap", "/usr/local/lib/openldap")
_SCHEMA_DIRS = ("/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema")


class DevSlapdError(RuntimeError):
    """slapd is missing, its configuration cannot be loaded, or it does not start."""


class SlapdNotInstalled(DevSlapdError):
    """The slapd / slapadd binaries cannot be found."""


def ssha_hash(password: str) -> str:
    """``{SSHA}`` hash of ``password`` (as ``slappasswd`` makes it)."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode("utf-8") + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def source_dir() -> Path:
    """The folder holding ``deploy/`` and ``schema/`` (the syncd source tree)."""
    candidates = []
    env = os.environ.get("SYNCD_SOURCE_DIR")
    if env:
        candidates.append(Path(env))
    candidates.append(Path(__file__).resolve().parent.parent)
    # A wheel installs them as data files under <prefix>/share/syncd (pyproject.toml).
    candidates += [Path(sysconfig.get_path("data")) / "share" / "syncd",
                   Path(site.getuserbase()) / "share" / "syncd"]
    for c in candidates:
        if (c / "deploy" / "openldap" / "slapd.ldif.in").is_file() and (c / "schema" / "openldap" / "syncd.ldif").is_file():
            return c
    raise DevSlapdError(
        "cannot find deploy/openldap/slapd.ldif.in and schema/openldap/syncd.ldif (looked in: "
        f"{', '.join(str(c) for c in candidates)}): reinstall syncd from its wheel or its source "
        "tree, or set SYNCD_SOURCE_DIR to a syncd checkout."
    )


def _find_binary(name: str, near: Path | None = None) -> Path:
    env = os.environ.get("SYNCD_SLAPD") if name == "slapd" else None
    if env:
        p = Path(env)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise SlapdNotInstalled(f"SYNCD_SLAPD={env!r} is not an executable file")
    if near and (near / name).is_file() and os.access(near / name, os.X_OK):
        return near / name      # slapadd from the same build as slapd
    found = shutil.which(name)
    if found:
        return Path(found)
    for d in map(Path, _BIN_DIRS):
        if (d / name).is_file() and os.access(d / name, os.X_OK):
            return d / name
    raise SlapdNotInstalled(f"OpenLDAP {name} was not found on PATH nor in {', '.join(_BIN_DIRS)}; {INSTALL_HINT}")


def _find_dir(env_name: str, candidates: tuple[str, ...], markers: tuple[str, ...], what: str) -> Path:
    env = os.environ.get(env_name)
    if env:
        if any((Path(env) / m).exists() for m in markers):
            return Path(env)
        raise DevSlapdError(f"{env_name}={env!r} holds none of {', '.join(markers)}")
    for c in candidates:
        if any((Path(c) / m).exists() for m in markers):
            return Path(c)
    raise SlapdNotInstalled(f"cannot find the OpenLDAP {what} (none of {', '.join(markers)} in "
                            f"{', '.join(candidates)}; set {env_name}); {INSTALL_HINT}")


def _module_dir() -> Path:
    return _find_dir("SYNCD_SLAPD_MODULEDIR", _MODULE_DIRS, ("back_mdb.la", "back_mdb.so"), "module folder")


def _schema_dir() -> Path:
    return _find_dir("SYNCD_SLAPD_SCHEMADIR", _SCHEMA_DIRS, ("core.ldif",), "schema folder").resolve()


def _finished(config: str, source: str) -> str:
    """A rendered configuration, refused if a placeholder is left; when slapd does not run as root,
    the identity that manages ``cn=config`` over ``ldapi://`` becomes that of the user running it."""
    leftover = sorted({m for line in config.splitlines() if not line.startswith("#")
                       for m in re.findall(r"@[A-Z_]+@", line)})
    if leftover:
        raise DevSlapdError(f"{source} has placeholders DevSlapd does not fill: {leftover}")
    if os.geteuid() != 0:
        config = config.replace("gidNumber=0+uidNumber=0,", f"gidNumber={os.getegid()}+uidNumber={os.geteuid()},")
    return config


def _run(command: list, failure: str, timeout: float) -> None:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise DevSlapdError(f"{failure} (exit {done.returncode}):\n"
                            f"{(done.stderr.strip() or done.stdout.strip())[-4000:]}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevSlapd:
    """A private slapd on 127.0.0.1, configured from ``deploy/`` (see the module docstring)."""

    START_TIMEOUT = 20.0

    def __init__(self, workdir: Path, suffix: str = "dc=example,dc=org", port: int | None = None, *,
                 root_password: str | None = None, ldapi: bool = False, initial: str = "template",
                 initial_data: Path | str | None = None):
        if initial not in ("template", "debian"):
            raise DevSlapdError(f"initial={initial!r}: expected 'template' (slapd.ldif.in) or 'debian'")
        self.initial = initial
        # debian only: an LDIF (another server's slapcat) loaded instead of the postinst's suffix
        # entry, as a second provider is seeded from the first
        self.initial_data = Path(initial_data) if initial_data else None
        self.workdir = Path(workdir)
        self.suffix = suffix
        self._fixed_port = port
        self.port: int | None = port
        self.root_dn = f"cn=admin,{suffix}"
        self.root_password = root_password or secrets.token_urlsafe(18)
        self._fixed_ldaps_port: int | None = None
        self._wants_ldaps = False
        self.ldaps_port: int | None = None
        self.ldapi = ldapi or initial == "debian"
        # syncd's own account, once the caller has added it: ldap_settings() then binds as it
        self.service_account: tuple[str, str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._configured = False
        self._slapd: Path | None = None
        self._slapadd: Path | None = None

    # -- paths ------------------------------------------------------------------------------

    @property
    def config_dir(self) -> Path:
        return self.workdir / "slapd.d"

    @property
    def db_dir(self) -> Path:
        return self.workdir / "db"

    @property
    def log_path(self) -> Path:
        return self.workdir / "slapd.log"

    @property
    def url(self) -> str:
        if self.port is None:
            raise DevSlapdError("slapd has not been started: no port yet")
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        if self.ldaps_port is None:
            raise DevSlapdError("no ldaps:// listener: set TLS in cn=config, then enable_ldaps() and start")
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    @property
    def ldapi_path(self) -> Path:
        return (self.workdir / "ldapi").resolve()

    @property
    def ldapi_url(self) -> str:
        if not self.ldapi:
            raise DevSlapdError("no ldapi:// listener: create the DevSlapd with ldapi=True")
        return "ldapi://" + quote(str(self.ldapi_path), safe="")

    def _listeners(self) -> str:
        urls = [self.url + "/"]
        if self.ldaps_port is not None:
            urls.append(self.ldaps_url + "/")
        if self.ldapi:
            urls.append(self.ldapi_url)
        return " ".join(urls)

    # -- lifecycle --------------------------------------------------------------------------

    def _binaries(self) -> tuple[Path, Path]:
        if self._slapd is None or self._slapadd is None:
            self._slapd = _find_binary("slapd")
            self._slapadd = _find_binary("slapadd", near=self._slapd.parent)
        return self._slapd, self._slapadd

    def render_config(self) -> str:
        """The shipped ``slapd.ldif.in`` with every placeholder filled for this instance."""
        src = source_dir()
        template = (src / "deploy" / "openldap" / "slapd.ldif.in").read_text(encoding="utf-8")
        values = {
            "@SUFFIX@": self.suffix,
            "@ROOTDN@": self.root_dn,
            "@ROOTPW@": ssha_hash(self.root_password),
            "@DBDIR@": str(self.db_dir.resolve()),
            "@MODULEDIR@": str(_module_dir()),
            "@SCHEMADIR@": quote(str(_schema_dir())),
            # a copy in the work folder: the source tree's path may hold characters slapd's
            # config parser does not take
            "@SYNCD_SCHEMA@": quote(str((self.workdir / "syncd.ldif").resolve())),
            "@PIDFILE@": str((self.workdir / "slapd.pid").resolve()),
            "@ARGSFILE@": str((self.workdir / "slapd.args").resolve()),
        }
        for key, value in values.items():
            template = template.replace(key, value)
        return _finished(template, "slapd.ldif.in")

    def render_debian_config(self) -> str:
        """Debian's ``slapd.init.ldif`` filled the way the package's postinst fills it.

        ``@SUFFIX@`` and ``@PASSWORD@`` (the root DN's hash) as the postinst does; the folders a
        system slapd uses (pid and args files, ``/var/lib/ldap``, the module and schema folders)
        become this work folder's; and when slapd does not run as root, the identity that may
        manage ``cn=config`` over ``ldapi://`` (root's, ``uidNumber=0``) becomes the one of the user
        running it. Nothing else is changed: indexes, limits, access rules and map size are
        Debian's, as on a server where ``apt-get install slapd`` has just run.
        """
        path = Path(os.environ.get("SYNCD_SLAPD_DEBIAN_INIT", DEBIAN_INIT))
        if not path.is_file():
            raise SlapdNotInstalled(f"Debian's initial configuration {path} is missing (set "
                                    f"SYNCD_SLAPD_DEBIAN_INIT); {INSTALL_HINT}")
        text = path.read_text(encoding="utf-8")
        # what older packages (2.4) left as placeholders for the backend; 2.5's file names mdb itself
        for key, value in {"@SUFFIX@": self.suffix, "@PASSWORD@": ssha_hash(self.root_password),
                           "@BACKEND@": "mdb", "@BACKENDOBJECTCLASS@": "olcMdbConfig",
                           "@BACKENDOPTIONS@": "", "@INDEXES@": ""}.items():
            text = text.replace(key, value)
        text = re.sub(r"(?m)^olcPidFile: .*$", f"olcPidFile: {(self.workdir / 'slapd.pid').resolve()}", text)
        text = re.sub(r"(?m)^olcArgsFile: .*$", f"olcArgsFile: {(self.workdir / 'slapd.args').resolve()}", text)
        text = re.sub(r"(?m)^olcDbDirectory: .*$", f"olcDbDirectory: {self.db_dir.resolve()}", text)
        text = re.sub(r"(?m)^olcModulePath: .*$", f"olcModulePath: {_module_dir()}", text)
        text = re.sub(r"(?m)^include: file://\S*/schema/", f"include: file://{quote(str(_schema_dir()))}/", text)
        return _finished(text, str(path))

    def _configure(self) -> None:
        _, slapadd = self._binaries()
        for d in (self.config_dir, self.db_dir):
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
        shutil.copyfile(source_dir() / "schema" / "openldap" / "syncd.ldif", self.workdir / "syncd.ldif")
        config = self.workdir / "config.ldif"
        rendered = self.render_debian_config() if self.initial == "debian" else self.render_config()
        config.write_text(rendered, encoding="utf-8")
        _run([slapadd, "-n0", "-F", self.config_dir, "-l", config], f"slapadd -n0 could not load {config}", 60)
        if self.initial == "debian":
            self._add_debian_suffix_entry(slapadd)
        self._configured = True

    def _add_debian_suffix_entry(self, slapadd: Path) -> None:
        """The suffix entry, as the postinst's ``create_new_directory`` adds it with slapadd."""
        first = self.suffix.split(",", 1)[0]
        if not first.lower().startswith("dc="):
            raise DevSlapdError(f"Debian's postinst makes a dc= suffix; {self.suffix!r} is not one")
        entry = self.workdir / "suffix.ldif"
        entry.write_text(f"dn: {self.suffix}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n"
                         f"o: {first[3:]}\ndc: {first[3:]}\n", encoding="utf-8")
        if self.initial_data is not None:
            entry = self.initial_data
        _run([slapadd, "-F", self.config_dir, "-b", self.suffix, "-l", entry],
             "slapadd could not add the suffix entry", 60)

    def start(self) -> "DevSlapd":
        """Configure (first time), start slapd and wait until it answers a bind."""
        if self.is_running():
            return self
        if any(ch.isspace() for ch in str(self.workdir.resolve())):
            raise DevSlapdError(f"the work folder {str(self.workdir)!r} contains whitespace, which slapd's "
                                "configuration parser does not accept in paths: choose another folder")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self._configured:
            self._configure()
        attempts = 1 if self._fixed_port or self.port else 3
        last_error: DevSlapdError | None = None
        for _ in range(attempts):
            if self.port is None:
                self.port = free_port()
            if self._wants_ldaps and self.ldaps_port is None:
                self.ldaps_port = free_port()
            try:
                self._launch()
                log.info("devslapd_started", url=self.url, workdir=str(self.workdir))
                return self
            except DevSlapdError as exc:
                last_error = exc
                if self._fixed_port:
                    break
                self.port = None   # maybe the port was taken in between: try another
                self.ldaps_port = self._fixed_ldaps_port
        assert last_error is not None
        raise last_error

    def _launch(self) -> None:
        slapd, _ = self._binaries()
        logf = open(self.log_path, "ab")
        try:
            self._proc = subprocess.Popen(
                [str(slapd), "-h", self._listeners(), "-F", str(self.config_dir), "-d", "0"],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=str(self.workdir),
            )
        finally:
            logf.close()
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise DevSlapdError(f"slapd exited with code {code} on start ({self.url}); its output:\n"
                                    f"{self.log_text()[-4000:]}")
            if self._answers_bind():
                return
            time.sleep(0.05)
        self.stop()
        raise DevSlapdError(f"slapd did not answer a bind on {self.url} within {self.START_TIMEOUT:.0f} s; "
                            f"its output:\n{self.log_text()[-4000:]}")

    def _answers_bind(self) -> bool:
        from ldap3 import NONE, SAFE_SYNC, Connection, Server

        try:
            conn = Connection(Server(self.url, get_info=NONE, connect_timeout=1), user=self.root_dn,
                              password=self.root_password, client_strategy=SAFE_SYNC,
                              receive_timeout=2, raise_exceptions=False)
            ok, _, _, _ = conn.bind()
            conn.unbind()
            return bool(ok)
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def stop(self) -> None:
        """Stop slapd (SIGTERM, then SIGKILL after 10 s). The work folder is kept."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.info("devslapd_stopped", url=self.url)

    def kill(self) -> None:
        """Kill slapd with SIGKILL, as a crash would (the work folder and the port are kept)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait(timeout=10)
        log.info("devslapd_killed", url=self.url)

    def enable_ldaps(self, port: int | None = None) -> None:
        """Listen on ``ldaps://`` too from the next start; TLS must be set in ``cn=config`` first
        (``80-tls.ldif``), or slapd refuses to start."""
        self._wants_ldaps = True
        self._fixed_ldaps_port = port
        self.ldaps_port = port

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def bulk_load(self, ldif_path: Path | str) -> None:
        """Load an LDIF file into the database offline with ``slapadd -q -n1``.

        slapd is stopped for the load and started again (same port) if it was running.
        slapadd does not run overlays: memberOf values are not computed for groups loaded
        this way (write them in the LDIF if you need them), and refint does not apply.
        """
        _, slapadd = self._binaries()
        if not self._configured:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._configure()
        was_running = self.is_running()
        self.stop()
        try:
            _run([slapadd, "-q", "-n1", "-F", self.config_dir, "-l", ldif_path],
                 f"slapadd -n1 could not load {ldif_path}", 3600)
        finally:
            if was_running:
                self.start()

    def ldap_settings(self, **overrides: Any):
        """``LdapSettings`` pointing at this server, bound as syncd's ``service_account`` when one
        is set (as in production), as the root DN otherwise."""
        from syncd.settings import LdapSettings

        dn, password = self.service_account or (self.root_dn, self.root_password)
        values: dict[str, Any] = {"urls": [self.url], "bind_dn": dn, "bind_password": password,
                                  "timeout_seconds": 10}
        values.update(overrides)
        return LdapSettings(**values)

    def slapcat(self) -> str:
        """The database as LDIF (``slapcat -n1``, operational attributes included)."""
        _, slapadd = self._binaries()
        slapcat = slapadd.parent / "slapcat"
        done = subprocess.run([str(slapcat if slapcat.exists() else "slapcat"), "-n1", "-F", str(self.config_dir)],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise DevSlapdError(f"slapcat failed (exit {done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def root_settings(self, **overrides: Any):
        """``LdapSettings`` bound as the root DN, which bypasses every access rule: for seeding."""
        return self.ldap_settings(**{"bind_dn": self.root_dn, "bind_password": self.root_password, **overrides})

    def ldap_tool(self, tool: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        """Run an OpenLDAP client (``ldapmodify``, ``ldapadd``, ``ldapsearch``) as root over
        ``ldapi://`` with SASL EXTERNAL, as an operator on the server does."""
        found = shutil.which(tool)
        if found is None:
            raise SlapdNotInstalled(f"the {tool} command is missing; {INSTALL_HINT}")
        return subprocess.run([found, "-Q", "-Y", "EXTERNAL", "-H", self.ldapi_url, *args], input=input,
                              capture_output=True, text=True, timeout=120)

    def __enter__(self) -> "DevSlapd":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"DevSlapd({str(self.workdir)!r}, suffix={self.suffix!r}, port={self.port!r}, {state})"
