"""Samba Active Directory fixtures: a real domain controller per test, copied from one provisioned per run.

* ``samba_ad_template`` (session): a ``tests.samba_ad.SambaAd`` provisioned once into a temporary
  folder, started once (it makes its TLS key), given syncd's service account and ``OU=syncd``
  delegated to it as deploy/activedirectory/README.md says, and stopped. Not root, or no ``samba``: the tests
  that need it are skipped with a loud reason, unless ``CI=true``, where that is a failure.
* ``samba_ad`` (function): a copy of the template started on a loopback address of its own
  (``samba -i -M single``): every test gets an empty domain (AD's sAMAccountName and UPN are
  unique domain-wide, so tests could not share one by giving each its own OU).
* ``ad_layout``: the Active Directory layout syncd ships (deploy/activedirectory/directory.yaml,
  ``directory.kind: active_directory``) on ``OU=syncd,DC=example,DC=org``.
* ``ad_settings``: ``LdapSettings`` over LDAPS with the DC's generated certificate, bound as
  syncd's service account (its delegated rights only); ``ad_admin``: a raw ldap3 connection
  (LDAPS) as the domain's Administrator, to arrange and check behind syncd.
* ``make_ad_directory(**overrides)`` / ``ad_directory``: ``Directory`` objects on that layout
  (``ensure_branches()`` done for the latter).
* ``make_ad_runtime(mappings=None, **sections)``: a whole syncd on this test's database, the
  AD layout, and the in-process SMTP server.
* ``ad_bulk_template`` (session) / ``samba_ad_bulk`` (function): the template plus the role group
  ``BULK_GROUP`` of ``BULK_MEMBERS`` users, built once per run by the first test that asks for it,
  for reading members through range retrieval.

The terminal summary says how long the DC took to provision, start and copy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import yaml
from ldap3 import Connection

from syncd.directory import Directory, names
from syncd.devslapd import source_dir
from syncd.directory.connection import open_connection, safe_close
from syncd.runtime import Runtime
from syncd.mappings import DirectoryLayout, Mappings
from tests.factories import closing_factory
from tests.factories import mappings as sample_mappings
from tests.fixtures_runtime import build_runtime
from tests.samba_ad import SYNCD_OU, SambaAd, SambaError, SambaNotAvailable
from tests import run_summary

BULK_MEMBERS = 5000
BULK_GROUP = "app-bulk-readers"
timings: dict[str, float] = {}     # how long the DC took to start, said at the end of the run


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def ad_sample_layout(base_dn: str = SYNCD_OU) -> DirectoryLayout:
    """The Active Directory layout syncd ships (deploy/activedirectory/directory.yaml) on ``base_dn``."""
    data = yaml.safe_load((source_dir() / "deploy" / "activedirectory" / "directory.yaml").read_text())["directory"]
    data["base_dn"] = base_dn
    data["groups"]["placeholder_member"] = f"cn=syncd-placeholder,ou=groups,{base_dn}"
    return DirectoryLayout.model_validate(data)


def ad_mappings(mappings: Mappings, layout: DirectoryLayout) -> Mappings:
    """``mappings`` with the AD ``layout`` (an ``ad_layout``) as their directory."""
    data = mappings.model_dump(mode="json")
    data["directory"] = layout.model_dump(mode="json")
    return Mappings.model_validate(data)


@pytest.fixture(scope="session")
def samba_ad_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaAd]:
    """The DC provisioned once per run, started once (its TLS key is made then) and stopped."""
    dc = SambaAd(tmp_path_factory.mktemp("samba-ad-template"))
    try:
        dc.provision().start().delegate()
    except SambaNotAvailable as exc:
        dc.stop()
        message = f"ACTIVE DIRECTORY (SAMBA AD DC) TESTS NOT RUN: {exc}"
        if _in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        run_summary.tests_skipped("Active Directory (Samba) tests skipped", message)
        pytest.skip(message)
    finally:
        dc.stop()
    timings.update({f"template {k}": v for k, v in dc.timings.items()})
    _note_timings()
    yield dc


@contextmanager
def _started_copy(template: SambaAd, workdir) -> Iterator[SambaAd]:
    """A copy of ``template`` in ``workdir``, running for the block."""
    started = time.monotonic()
    dc = template.copy(workdir)
    try:
        dc.start()
        timings["copy and start (last)"] = time.monotonic() - started
        _note_timings()
        yield dc
    finally:
        dc.stop()


@pytest.fixture
def samba_ad(samba_ad_template: SambaAd, tmp_path) -> Iterator[SambaAd]:
    """A domain of this test's own: a copy of the template, started (~0.3-1.5 s)."""
    with _started_copy(samba_ad_template, tmp_path / "samba-ad") as dc:
        yield dc


@pytest.fixture
def ad_layout(samba_ad: SambaAd) -> DirectoryLayout:
    return ad_sample_layout(SYNCD_OU)


@pytest.fixture
def ad_settings(samba_ad: SambaAd):
    return samba_ad.ldap_settings()


@pytest.fixture
def ad_admin(samba_ad: SambaAd) -> Iterator[Connection]:
    """A raw ldap3 connection (LDAPS) as the domain's Administrator, to arrange and check."""
    conn = open_connection(samba_ad.admin_settings())
    yield conn
    safe_close(conn)


@pytest.fixture
def make_ad_directory(samba_ad: SambaAd, ad_layout: DirectoryLayout) -> Iterator[Callable[..., Directory]]:
    yield from closing_factory(lambda **overrides: Directory(samba_ad.ldap_settings(**overrides), ad_layout))


@pytest.fixture
def ad_directory(make_ad_directory) -> Directory:
    d = make_ad_directory()
    d.ensure_branches()
    return d


@pytest.fixture
def make_ad_runtime(db_url, samba_ad: SambaAd, ad_layout: DirectoryLayout, smtp_settings, clock):
    def make(mappings: Mappings | None = None, **sections) -> Runtime:
        ldap = dict(samba_ad.ldap_settings().model_dump(), bind_password=samba_ad.service_password)
        return build_runtime(db_url, ldap, ad_mappings(mappings or sample_mappings(), ad_layout),
                             smtp_settings, clock, **sections)

    yield from closing_factory(make)


@pytest.fixture(scope="session")
def ad_bulk_template(samba_ad_template: SambaAd, tmp_path_factory: pytest.TempPathFactory) -> SambaAd:
    """The template plus a role group of ``BULK_MEMBERS`` people (``BULK_GROUP`` of the sample
    layout), built once per run by the first test that needs it: AD refuses a member naming no
    object, so each member is a user (~10-50 ms each on Samba)."""
    with _started_copy(samba_ad_template, tmp_path_factory.mktemp("samba-ad-bulk")) as dc:
        started = time.monotonic()
        layout = ad_sample_layout(SYNCD_OU)
        with Directory(dc.admin_settings(), layout) as d:
            d.ensure_branches()
            d.ensure_group(BULK_GROUP, BULK_GROUP, "bulk")
            conn = open_connection(dc.admin_settings())
            try:
                for dn, account_id in bulk_members(layout):
                    conn.add(dn, ["user"], {"sAMAccountName": account_id[:20], "sn": "Bulk", "givenName": account_id})
                    if conn.result["result"] != 0:
                        raise SambaError(f"cannot add {dn}: {conn.result}")
            finally:
                safe_close(conn)
            d.add_members(BULK_GROUP, [dn for dn, _ in bulk_members(layout)])
    timings["bulk group"] = time.monotonic() - started
    _note_timings()
    return dc


def bulk_members(layout: DirectoryLayout) -> list[tuple[str, str]]:
    """(DN, account id) of the members of the bulk group."""
    ids = [f"{i:05x}{'b' * 27}" for i in range(BULK_MEMBERS)]     # the first 20 characters differ
    return [(names.person_dn(layout, i), i) for i in ids]


@pytest.fixture
def samba_ad_bulk(ad_bulk_template: SambaAd, tmp_path) -> Iterator[SambaAd]:
    """A domain of this test's own holding the bulk group."""
    with _started_copy(ad_bulk_template, tmp_path / "samba-ad-bulk") as dc:
        yield dc


def _note_timings() -> None:
    run_summary.note("Samba AD DC", ", ".join(f"{k} {v:.1f} s" for k, v in sorted(timings.items())))
