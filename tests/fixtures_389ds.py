"""389 Directory Server fixtures: one real ns-slapd per test session, a branch of its own per test.

* ``ds389`` (session): a ``tests.ds389.Ds389`` configured from ``deploy/389ds`` exactly as its
  README tells an operator (schema, plugins with memberOf on, indexes, service accounts, ACIs),
  on a free loopback port in a temporary folder, ~2 s. Without 389-DS installed the tests that
  need it are skipped with a loud reason, unless ``CI=true``, where that is a failure.
* ``ds389_layout`` (function): the sample directory layout (``directory.kind: 389ds``) whose
  three branches are ``ou=t<8 hex>`` entries *inside* the deployed ``ou=people``,
  ``ou=organisations`` and ``ou=groups``: the ACIs, the memberOf scope and the referential
  integrity scope of ``deploy/389ds`` are set on those three branches, so every test gets an
  empty tree under the real configuration, and no test needs cleaning up after itself.
* ``ds389_settings``: ``LdapSettings`` bound as syncd's **service account**
  (``cn=syncd,ou=services,…`` of ``30-entries.ldif``); the Directory Manager only seeds and checks
  (``ds389_admin``, a raw ldap3 connection).
* ``make_ds389_directory(**overrides)`` / ``ds389_directory``: ``Directory`` objects on that layout
  (``ensure_branches()`` done for the latter).
* ``ds389_endpoint``: ``(url, bind_dn, password, base_dn)`` plus ``connect()``, for tests that take
  a plain connection and a base DN (the syntax property tests): the service account and this
  test's (created, empty) people branch.
* ``nest_mappings(mappings, layout)``: shipped-style ``Mappings`` moved onto a ``ds389_layout``.
* ``make_ds389_runtime(mappings=None, **sections)``: a whole syncd (``Runtime``) on this test's
  database, the 389-DS branches as the service account, and the in-process SMTP server, like
  ``make_runtime`` of ``tests/fixtures_runtime.py``; ``mappings`` default to ``tests.factories``'.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import NamedTuple

import pytest
from ldap3 import Connection

from syncd.core.model import DirectoryKind
from syncd.directory import Directory, names
from syncd.directory.connection import open_connection, safe_close
from syncd.runtime import Runtime
from syncd.mappings import DirectoryLayout, Mappings
from syncd.settings import LdapSettings
from tests.ds389 import Ds389, Ds389NotInstalled
from tests.factories import closing_factory
from tests.factories import mappings as sample_mappings
from tests.fixtures_ldap import sample_layout
from tests.fixtures_runtime import build_runtime
from tests import run_summary

SUFFIX = "dc=example,dc=org"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def nest_directory(directory: dict, tag: str) -> dict:
    """A directory mapping (``model_dump`` form) whose branches live under ``ou=<tag>`` of each
    deployed branch, on the 389-DS suffix, with ``kind: 389ds``."""
    out = dict(directory, base_dn=SUFFIX, kind=DirectoryKind.DS389.value)
    for which in ("people", "organisations", "groups"):
        out[which] = dict(directory[which], branch=f"ou={tag},{directory[which]['branch']}")
    out["groups"]["placeholder_member"] = f"cn=syncd-placeholder,ou={tag},{directory['groups']['branch']},{SUFFIX}"
    return out


def nest_mappings(mappings: Mappings, layout: DirectoryLayout) -> Mappings:
    """``mappings`` with the branches, placeholder and kind of ``layout`` (a ``ds389_layout``)."""
    data = mappings.model_dump(mode="json")
    tag = names.parse_dn(layout.people.branch)[0][0][1]
    data["directory"] = nest_directory(data["directory"], tag)
    return Mappings.model_validate(data)


@pytest.fixture(scope="session")
def ds389(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ds389]:
    server = Ds389(tmp_path_factory.mktemp("ds389"), suffix=SUFFIX)
    try:
        server.start()
    except Ds389NotInstalled as exc:
        server.kill()
        message = f"389 DIRECTORY SERVER TESTS NOT RUN: {exc}"
        if _in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        run_summary.tests_skipped("389 Directory Server tests skipped", message)
        pytest.skip(message)
    except BaseException:
        server.kill()
        raise
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def ds389_layout(ds389: Ds389) -> DirectoryLayout:
    base = sample_layout(SUFFIX).model_dump(mode="json")
    return DirectoryLayout.model_validate(nest_directory(base, f"t{uuid.uuid4().hex[:8]}"))


@pytest.fixture
def ds389_settings(ds389: Ds389) -> LdapSettings:
    return ds389.ldap_settings()


@pytest.fixture
def ds389_admin(ds389: Ds389) -> Iterator[Connection]:
    """A raw ldap3 connection as the Directory Manager, to arrange and check behind syncd."""
    conn = open_connection(ds389.admin_settings())
    yield conn
    safe_close(conn)


@pytest.fixture
def make_ds389_directory(ds389: Ds389, ds389_layout: DirectoryLayout) -> Iterator[Callable[..., Directory]]:
    yield from closing_factory(lambda **overrides: Directory(ds389.ldap_settings(**overrides), ds389_layout))


@pytest.fixture
def ds389_directory(make_ds389_directory) -> Directory:
    d = make_ds389_directory()
    d.ensure_branches()
    return d


@pytest.fixture
def make_ds389_runtime(db_url, ds389: Ds389, ds389_layout: DirectoryLayout, smtp_settings, clock):
    def make(mappings: Mappings | None = None, **sections) -> Runtime:
        return build_runtime(db_url, ds389.ldap_settings().model_dump(),
                             nest_mappings(mappings or sample_mappings(), ds389_layout), smtp_settings, clock, **sections)

    yield from closing_factory(make)


class Endpoint(NamedTuple):
    """Where a test that takes a plain connection may write: bound as syncd's service account."""

    url: str
    bind_dn: str
    password: str
    base_dn: str

    def connect(self) -> Connection:
        return open_connection(LdapSettings(urls=[self.url], bind_dn=self.bind_dn, bind_password=self.password))


@pytest.fixture
def ds389_endpoint(ds389: Ds389, ds389_directory: Directory) -> Endpoint:
    return Endpoint(ds389.url, ds389.service_dn, ds389.service_password,
                    names.branch_dn(ds389_directory.layout, "people"))
