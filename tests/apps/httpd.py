"""A throwaway Apache httpd, a child process, serving a configuration snippet an operator would copy.

``ThrowawayHttpd(folder, snippet, locations)`` writes a whole server configuration around
``snippet`` (its own ServerRoot, PidFile, ErrorLog, runtime folder and a free loopback port;
the modules of Debian's ``apache2`` loaded by path), makes a page ``index.html`` in each of
``locations`` so that a request that passes its ``Require`` gets a 200, checks the file with
``apache2 -t`` and runs ``apache2 -DFOREGROUND``; ``stop()`` is SIGTERM to that process (and
removes the pages).
``SYNCD_APACHE2`` and ``SYNCD_APACHE2_MODULEDIR`` override where the binary and the modules are.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from syncd.devslapd import free_port

MODULES = ("mpm_event", "authn_core", "authz_core", "authz_user", "auth_basic", "ldap", "authnz_ldap", "dir")
_MODULE_FILES = {"ldap": "mod_ldap.so", "authnz_ldap": "mod_authnz_ldap.so"}


class HttpdNotInstalled(RuntimeError):
    """No apache2 binary, or none of its modules, on this machine."""


def _binary() -> Path:
    found = os.environ.get("SYNCD_APACHE2") or shutil.which("apache2") or shutil.which("httpd")
    for candidate in (found, "/usr/sbin/apache2", "/usr/sbin/httpd"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise HttpdNotInstalled("no apache2 binary: apt-get install -y apache2")


def _module_dir() -> Path:
    for candidate in (os.environ.get("SYNCD_APACHE2_MODULEDIR"), "/usr/lib/apache2/modules",
                      "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules"):
        if candidate and (Path(candidate) / "mod_authnz_ldap.so").is_file():
            return Path(candidate)
    raise HttpdNotInstalled("no mod_authnz_ldap.so: apt-get install -y apache2")


class ThrowawayHttpd:
    def __init__(self, folder: Path, snippet: str, locations: tuple[str, ...]):
        self.folder = Path(folder)
        self.snippet = snippet
        self.locations = locations
        self.port = free_port()
        self._process: subprocess.Popen | None = None
        # As root, Apache's children run as www-data, which cannot enter pytest's private
        # folders: the pages live in a folder of their own that anybody may read.
        self.htdocs = Path(tempfile.mkdtemp(prefix="syncd-httpd-"))
        self.htdocs.chmod(0o755)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def error_log(self) -> Path:
        return self.folder / "error.log"

    def config(self) -> str:
        modules = _module_dir()
        loads = "\n".join(f"LoadModule {name}_module {modules / _MODULE_FILES.get(name, f'mod_{name}.so')}"
                          for name in MODULES)
        # As root, Apache's children change to User/Group; as anyone else they stay who they are.
        user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        return (f'ServerRoot "{self.folder}"\nServerName 127.0.0.1\nListen 127.0.0.1:{self.port}\n'
                f'PidFile "{self.folder}/httpd.pid"\nDefaultRuntimeDir "{self.folder}"\n'
                f'ErrorLog "{self.error_log}"\nLogLevel warn ldap:info authnz_ldap:info\n{user}{loads}\n'
                f'DocumentRoot "{self.htdocs}"\nDirectoryIndex index.html\n\n{self.snippet}\n')

    def start(self) -> "ThrowawayHttpd":
        binary = _binary()
        for location in self.locations:
            page = self.htdocs / location.strip("/") / "index.html"
            page.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            page.write_text("ok\n")
            page.chmod(0o644)
        path = self.folder / "httpd.conf"
        path.write_text(self.config(), encoding="utf-8")
        checked = subprocess.run([binary, "-f", path, "-t"], capture_output=True, text=True, timeout=30)
        if checked.returncode != 0:
            raise RuntimeError(f"apache2 -t refused {path}: {checked.stderr}")
        self._process = subprocess.Popen([binary, "-f", path, "-DFOREGROUND"], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while self.status("/") is None:
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"apache2 did not start:\n{self.log_text()}")
            time.sleep(0.05)
        return self

    def status(self, path: str, login: str | None = None, password: str | None = None) -> int | None:
        """The HTTP status of a GET (with Basic credentials when given); None when nothing answers."""
        request = urllib.request.Request(self.url + path)
        if login is not None:
            token = base64.b64encode(f"{login}:{password or ''}".encode()).decode("ascii")
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as answer:
            return answer.code
        except OSError:
            return None

    def log_text(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def stop(self) -> None:
        shutil.rmtree(self.htdocs, ignore_errors=True)
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
