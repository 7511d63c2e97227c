"""An application in front of the directory, as production runs them.

* ``app_directory`` (session, one per directory kind): a directory server configured from
  ``deploy/`` (production access rules, syncd's service account, the example application
  account), as an ``AppDirectory``. Parametrised by kind: ``openldap`` and ``389ds``; every test
  of this folder runs on each.
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncd.core.model import DirectoryKind
from syncd.daemon import Daemon
from syncd.devslapd import DevSlapd, SlapdNotInstalled
from syncd.runtime import Runtime
from syncd.settings import LdapSettings, Settings
from syncd.store.db import make_engine
from syncd.store.migrate import upgrade
from tests.apps.docblocks import doc_block, substitute
from tests.apps.httpd import HttpdNotInstalled, ThrowawayHttpd
from tests.apps.steps import Steps
from tests.fixtures_ldap import _in_ci
from tests.fixtures_runtime import WEB_BASE_URL
from tests.openldap_setup import APP_PASSWORD, app_dn, configure_as_documented
from tests.scenarios.shipped_mappings import SHIPPED_BASE, shipped_mappings

SUFFIX = "dc=example,dc=org"
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
    """A stock Debian slapd configured by deploy/openldap/README.md's block, as the tests' own
    ``slapd`` is (tests/openldap_setup.py), serving the whole suffix as syncd's base."""
    server = DevSlapd(folder / "server", suffix=SUFFIX, initial="debian")
    server.start()
    try:
        configure_as_documented(server, folder / "secrets")
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session", params=["openldap", pytest.param("389ds", marks=pytest.mark.ds389)])
def app_directory(request, tmp_path_factory) -> Iterator[AppDirectory]:
    if request.param == "389ds":
        # The session's 389-DS (tests/fixtures_389ds.py), configured from deploy/389ds: other
        # tests work in subtrees of its branches, these in the branches themselves.
        server = request.getfixturevalue("ds389")
        yield AppDirectory(kind="389ds", url=server.url, suffix=server.suffix, syncd=server.ldap_settings(),
                           app_dn=server.app_dn, app_password=server.app_password)
        return
    if request.param == "openldap":
        try:
            server = _production_openldap(tmp_path_factory.mktemp("app-slapd"))
        except SlapdNotInstalled as exc:
            _skip_or_fail(f"SKIPPING APPLICATION TESTS: no OpenLDAP slapd on this machine ({exc})")
        try:
            yield AppDirectory(
                kind="openldap", url=server.url, suffix=SUFFIX,
                syncd=server.ldap_settings(), app_dn=app_dn(SUFFIX), app_password=APP_PASSWORD)
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
