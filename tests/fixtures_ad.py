"""Samba Active Directory fixtures: one real domain controller per test session, an OU per test.

* ``samba_ad`` (session): a ``tests.samba_ad.SambaAd`` provisioned once into a temporary folder
  on a loopback address of its own and started (``samba -i -M single``). Not root, or no
  ``samba``: the tests that need it are skipped with a loud reason, unless ``CI=true``, where
  that is a failure.
* ``ad_layout`` (function): the Active Directory sample layout (``directory.kind:
  active_directory``, ``mappings/README.md``) whose three branches are ``OU=t<8 hex>`` inside
  ``OU=people``, ``OU=organisations`` and ``OU=groups``: every test gets an empty tree.
* ``ad_settings``: ``LdapSettings`` over LDAPS with the DC's generated certificate;
  ``ad_admin``: a raw ldap3 connection (LDAPS) to arrange and check behind syncd.
* ``make_ad_directory(**overrides)`` / ``ad_directory``: ``Directory`` objects on that layout
  (``ensure_branches()`` done for the latter).
* ``make_ad_runtime(mappings=None, **sections)``: a whole syncd on this test's database, the
  AD branches, and the in-process SMTP server.
* ``ad_bulk_group`` (session): a group of ``BULK_MEMBERS`` users, built once per session
  (the first test that asks for it pays for it), for reading members through range retrieval.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import yaml
from ldap3 import Connection

from syncd.core.model import DirectoryKind
from syncd.directory import Directory, names
from syncd.directory.connection import open_connection, safe_close
from syncd.jobs.runtime import Runtime
from syncd.devslapd import source_dir
from syncd.mappings import DirectoryLayout, Mappings
from syncd.settings import Settings
from syncd.store.db import make_engine
from tests.factories import mappings as sample_mappings
from tests.fixtures_runtime import WEB_BASE_URL
from tests.samba_ad import SUFFIX, SambaAd, SambaError, SambaNotAvailable

BULK_MEMBERS = 5000
_problem: list[str] = []    # why the AD tests were skipped, for the terminal summary
timings: dict[str, float] = {}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def ad_sample_layout(base_dn: str = SUFFIX) -> DirectoryLayout:
    """The Active Directory layout syncd ships (deploy/activedirectory/directory.yaml) on ``base_dn``."""
    data = yaml.safe_load((source_dir() / "deploy" / "activedirectory" / "directory.yaml").read_text())["directory"]
    data["base_dn"] = base_dn
    data["groups"]["placeholder_member"] = f"cn=syncd-placeholder,ou=groups,{base_dn}"
    return DirectoryLayout.model_validate(data)


def nest_directory(directory: dict, tag: str) -> dict:
    """A directory mapping (``model_dump`` form) whose branches are ``ou=<tag>`` under each branch."""
    out = dict(directory, base_dn=SUFFIX, kind=DirectoryKind.ACTIVE_DIRECTORY.value)
    for which in ("people", "organisations", "groups"):
        out[which] = dict(directory[which], branch=f"ou={tag},{directory[which]['branch']}")
    out["groups"]["placeholder_member"] = f"cn=syncd-placeholder,ou={tag},{directory['groups']['branch']},{SUFFIX}"
    return out


def ad_mappings(mappings: Mappings, layout: DirectoryLayout) -> Mappings:
    """``mappings`` with the AD ``layout`` (an ``ad_layout``) as their directory."""
    data = mappings.model_dump(mode="json")
    data["directory"] = layout.model_dump(mode="json")
    return Mappings.model_validate(data)


@pytest.fixture(scope="session")
def samba_ad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaAd]:
    dc = SambaAd(tmp_path_factory.mktemp("samba-ad"))
    try:
        dc.provision().start()
    except SambaNotAvailable as exc:
        dc.stop()
        message = f"ACTIVE DIRECTORY (SAMBA AD DC) TESTS NOT RUN: {exc}"
        if _in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        if not _problem:
            _problem.append(message)
        pytest.skip(message)
    except BaseException:
        dc.stop()
        raise
    timings.update(dc.timings)
    try:
        yield dc
    finally:
        dc.stop()


@pytest.fixture
def ad_layout(samba_ad: SambaAd) -> DirectoryLayout:
    base = ad_sample_layout(SUFFIX).model_dump(mode="json")
    return DirectoryLayout.model_validate(nest_directory(base, f"t{uuid.uuid4().hex[:8]}"))


@pytest.fixture
def ad_settings(samba_ad: SambaAd):
    return samba_ad.ldap_settings()


@pytest.fixture
def ad_admin(samba_ad: SambaAd) -> Iterator[Connection]:
    """A raw ldap3 connection (LDAPS) as the domain's Administrator, to arrange and check."""
    conn = open_connection(samba_ad.ldap_settings())
    yield conn
    safe_close(conn)


@pytest.fixture
def make_ad_directory(samba_ad: SambaAd, ad_layout: DirectoryLayout) -> Iterator[Callable[..., Directory]]:
    made: list[Directory] = []

    def make(**overrides) -> Directory:
        d = Directory(samba_ad.ldap_settings(**overrides), ad_layout)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


@pytest.fixture
def ad_directory(make_ad_directory) -> Directory:
    d = make_ad_directory()
    d.ensure_branches()
    return d


@pytest.fixture
def make_ad_runtime(db_url, samba_ad: SambaAd, ad_layout: DirectoryLayout, smtp_settings, clock):
    made: list[Runtime] = []

    def make(mappings: Mappings | None = None, **sections) -> Runtime:
        values = {"database": {"url": db_url}, "ldap": samba_ad.ldap_settings().model_dump(),
                  "smtp": smtp_settings.model_dump(), "web": {"base_url": WEB_BASE_URL},
                  "jobs": {"max_backoff_seconds": 60}, **sections}
        values["ldap"]["bind_password"] = samba_ad.admin_password
        settings = Settings(**values)
        runtime = Runtime(settings, ad_mappings(mappings or sample_mappings(), ad_layout),
                          make_engine(db_url, pool_size=settings.database.pool_size),
                          clock=clock, worker_id="test-worker")
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close()


@pytest.fixture(scope="session")
def ad_bulk_group(samba_ad: SambaAd) -> tuple[DirectoryLayout, str, set[str]]:
    """(layout, group name, member DNs): a role group of ``BULK_MEMBERS`` people, built once."""
    layout = DirectoryLayout.model_validate(nest_directory(ad_sample_layout(SUFFIX).model_dump(mode="json"), "bulk"))
    started = time.monotonic()
    with Directory(samba_ad.ldap_settings(), layout) as d:
        d.ensure_branches()
        d.ensure_group("bulk-readers", "bulk-readers", "bulk")
        conn = open_connection(samba_ad.ldap_settings())
        try:
            members = []
            for i in range(BULK_MEMBERS):
                account_id = f"{i:032x}"
                dn = names.person_dn(layout, account_id)
                conn.add(dn, ["user"], {"sAMAccountName": f"b{i:019x}"[:20], "sn": "Bulk"})
                if conn.result["result"] not in (0, 68):
                    raise SambaError(f"cannot add {dn}: {conn.result}")
                members.append(dn)
        finally:
            safe_close(conn)
        d.add_members("bulk-readers", members)
    timings["bulk_group"] = time.monotonic() - started
    return layout, "bulk-readers", {names.normalise_dn(m) for m in members}


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _problem:
        terminalreporter.section("Active Directory (Samba) tests skipped", sep="!", red=True, bold=True)
        terminalreporter.line(_problem[0], red=True)
    if timings:
        terminalreporter.line("Samba AD DC: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(timings.items())))
