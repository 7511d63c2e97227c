"""An application in front of the directory, as production runs them.

* ``app_directory`` (session, one per directory kind): a directory server configured from
  ``deploy/`` (production access rules, syncd's service account, the example application
  account), as an ``AppDirectory``. Parametrised by kind: ``openldap`` today; the 389-DS fixture
  adds ``389ds`` here, and every test of this folder runs on it too.
* ``apache`` (session): Apache httpd with mod_authnz_ldap serving the Apache example of
  docs/applications.md, its caches down to 1 s, bound as the application account.
* ``app_rt`` / ``app_daemon`` (function): syncd bound as its **service account** on that
  directory, with the shipped mappings and a fresh SQLite database; ``app_world`` gives a
  correspondent for CARSAT-RA and the ``Steps`` the tests take through syncd's workflow.

Every test shares the directory's base (the production rules name one base), so each test makes
people with e-mails of its own: Apache finds people by e-mail and must find one entry.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncd.core.model import DirectoryKind
from syncd.daemon import Daemon
from syncd.devslapd import DevSlapd, SlapdNotInstalled, ssha_hash
from syncd.jobs.runtime import Runtime
from syncd.settings import LdapSettings, Settings
from syncd.store.db import make_engine
from syncd.store.migrate import upgrade
from tests.apps.docblocks import doc_block, substitute
from tests.apps.httpd import HttpdNotInstalled, ThrowawayHttpd
from tests.apps.steps import Steps
from tests.fixtures_ldap import _in_ci
from tests.fixtures_runtime import WEB_BASE_URL
from tests.scenarios.shipped_mappings import SHIPPED_BASE, shipped_mappings

PRODUCTION = Path(__file__).resolve().parents[2] / "deploy" / "openldap" / "production"
SUFFIX = "dc=example,dc=org"
SERVICES = f"ou=services,{SUFFIX}"
APP_PASSWORD = "example-app-password-for-tests"
SYNCD_PASSWORD = "syncd-service-password-for-tests"
TEST_CACHE_TTL = "1"   # seconds: mod_ldap's 600 s default would hide every change for 10 minutes


@dataclass(frozen=True)
class AppDirectory:
    """A directory server as an application meets it."""
    kind: str                   # mappings' directory.kind: openldap | 389ds
    url: str                    # ldap://127.0.0.1:<port>
    suffix: str                 # syncd's base_dn too
    syncd: LdapSettings         # syncd's service account, never the root DN
    app_dn: str
    app_password: str


def _skip_or_fail(message: str) -> None:
    if _in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def _production_openldap(folder: Path) -> DevSlapd:
    """slapd with the production indexes, limits and access rules, and the service accounts."""
    def render(name: str, **values: str) -> str:
        text = (PRODUCTION / name).read_text(encoding="utf-8")
        for key, value in {"SUFFIX": SUFFIX, "BASE": SUFFIX, **values}.items():
            text = text.replace(f"@{key}@", value)
        return text

    server = DevSlapd(folder, suffix=SUFFIX,
                      config_changes=[render("30-database.ldif"), render("50-acls.ldif")])
    server.start()
    # The suffix entry, then the service accounts the way the operator adds them (ldapadd as root).
    seed = folder / "60-service-accounts.ldif"
    seed.write_text("dn: " + SUFFIX + "\nobjectClass: domain\ndc: example\n\n" + render(
        "60-service-accounts.ldif", SYNCD_PASSWORD_HASH=ssha_hash(SYNCD_PASSWORD),
        APP_PASSWORD_HASH=ssha_hash(APP_PASSWORD)), encoding="utf-8")
    added = subprocess.run(["ldapadd", "-x", "-H", server.url, "-D", server.root_dn, "-w", server.root_password,
                            "-f", str(seed)], capture_output=True, text=True, timeout=30)
    if added.returncode != 0:
        server.stop()
        raise RuntimeError(f"ldapadd of the service accounts failed: {added.stderr}")
    return server


@pytest.fixture(scope="session", params=["openldap"])
def app_directory(request, tmp_path_factory) -> Iterator[AppDirectory]:
    if request.param == "openldap":
        try:
            server = _production_openldap(tmp_path_factory.mktemp("app-slapd"))
        except SlapdNotInstalled as exc:
            _skip_or_fail(f"SKIPPING APPLICATION TESTS: no OpenLDAP slapd on this machine ({exc})")
        try:
            yield AppDirectory(
                kind="openldap", url=server.url, suffix=SUFFIX,
                syncd=server.ldap_settings(bind_dn=f"cn=syncd,{SERVICES}", bind_password=SYNCD_PASSWORD),
                app_dn=f"cn=example-app,ou=applications,{SERVICES}", app_password=APP_PASSWORD)
        finally:
            server.stop()


def apache_snippet(directory: AppDirectory, password_file: Path) -> str:
    """docs/applications.md's Apache example pointed at ``directory``, plus ``/bare/``: the
    ``/intranet/`` block without the status filter, as an application that knows nothing of
    syncd would be configured, so that only the directory's own lock turns a disabled account away."""
    text = substitute(doc_block("apache"), {
        "ldap://ldap.example.org/": f"{directory.url}/",
        "/etc/apache2/ldap-example-app.password": str(password_file),
        "LDAPCacheTTL 60\n": f"LDAPCacheTTL {TEST_CACHE_TTL}\n",
        "LDAPOpCacheTTL 60\n": f"LDAPOpCacheTTL {TEST_CACHE_TTL}\n",
        SHIPPED_BASE: directory.suffix,
    })
    intranet = re.search(r'<Location "/intranet/">.*?</Location>', text, re.S).group(0)
    bare = substitute(intranet, {'"/intranet/"': '"/bare/"', "?one?(syncdAccountStatus=active)": "?one"})
    return f"{text}\n{bare}\n"


@pytest.fixture(scope="session")
def apache(app_directory: AppDirectory, tmp_path_factory) -> Iterator[ThrowawayHttpd]:
    folder = tmp_path_factory.mktemp("httpd")
    password_file = folder / "ldap-example-app.password"
    password_file.write_text(app_directory.app_password + "\n")
    password_file.chmod(0o600)
    httpd = ThrowawayHttpd(folder, apache_snippet(app_directory, password_file),
                           ("/accords-locaux/", "/intranet/", "/bare/"))
    try:
        httpd.start()
    except HttpdNotInstalled as exc:
        _skip_or_fail(f"SKIPPING APACHE TESTS: {exc}")
    try:
        yield httpd
    finally:
        httpd.stop()


@pytest.fixture
def app_rt(app_directory: AppDirectory, smtp_settings, clock, tmp_path) -> Iterator[Runtime]:
    url = f"sqlite:///{tmp_path / 'syncd.db'}"
    upgrade(url)
    settings = Settings(database={"url": url}, ldap=app_directory.syncd.model_dump(),
                        smtp=smtp_settings.model_dump(), web={"base_url": WEB_BASE_URL})
    mappings = shipped_mappings(tmp_path, app_directory.suffix)
    mappings = mappings.model_copy(update={"directory": mappings.directory.model_copy(
        update={"kind": DirectoryKind(app_directory.kind)})})
    rt = Runtime(settings, mappings, make_engine(url), clock=clock, worker_id="app-tests")
    yield rt
    rt.close()


@pytest.fixture
def app_daemon(app_rt: Runtime) -> Daemon:
    daemon = Daemon(app_rt)
    assert daemon.run_job("provision") is not None, "syncd provisions the directory as its service account"
    return daemon


@pytest.fixture
def app_world(app_rt, app_daemon, smtp_server) -> Steps:
    return Steps(app_rt, app_daemon, smtp_server)
