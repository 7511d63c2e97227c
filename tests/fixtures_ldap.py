"""LDAP fixtures: one real slapd per test session, a clean subtree per test.

* ``slapd`` (session): a slapd configured as production is: Debian's own ``slapd.init.ldif``
  (as ``apt-get install slapd`` leaves it), then syncd's schema and ``deploy/openldap/production``
  applied with ``ldapmodify`` by the README's own shell block (``tests/openldap_setup.py``), on a
  free loopback port in a temporary folder. ``slapd.ldap_settings()`` binds as syncd's
  **service account** under the shipped access rules, limits and indexes;
  ``slapd.root_settings()`` as the root DN, for seeding only. Without slapd installed the
  tests that need it are skipped with a loud reason — unless ``CI=true``, where that is a
  failure.
* ``ldap_layout`` (function): the sample directory layout with its own base
  ``ou=t<8 hex>,dc=example,dc=org``, so every test starts from an empty tree and no test
  needs cleaning up after itself. The base entry is added (root DN) and the access rules
  applied again for that base (``serve_base``): syncd's rules name the mappings' base.
* ``ldap_settings``: ``LdapSettings`` for that server, bound as the service account.
* ``application_account``: ``(dn, password)`` of the example application of
  ``60-service-accounts.ldif``, which reads (never writes) this test's people and groups.
* ``directory``: a ``Directory`` on the layout with ``ensure_branches()`` done.
* ``make_directory(**settings_overrides)``: more ``Directory`` objects on the same layout
  (e.g. ``permissive_modify="off"``), closed at teardown.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from syncd.devslapd import DevSlapd, SlapdNotInstalled
from syncd.mappings import AttributeMapping, BranchLayout, DirectoryLayout, GroupLayout, PeopleLayout
from syncd.settings import LdapSettings
from tests.factories import closing_factory
from tests.openldap_setup import APP_PASSWORD, app_dn, configure_as_documented, serve_base

if TYPE_CHECKING:
    from syncd.directory import Directory

SUFFIX = "dc=example,dc=org"


def sample_layout(base_dn: str) -> DirectoryLayout:
    """The sample layout of the docs, rooted at ``base_dn``."""
    attr = AttributeMapping
    return DirectoryLayout(
        base_dn=base_dn,
        people=PeopleLayout(
            branch="ou=people",
            rdn_attribute="uid",
            object_classes=("inetOrgPerson", "syncdAccount"),
            attributes={
                "given_name": attr(ldap="givenName"),
                "family_name": attr(ldap="sn"),
                "email": attr(ldap="mail"),
                "phone": attr(ldap="telephoneNumber"),
                "civility": attr(ldap="syncdCivility"),
                "birth_name": attr(ldap="syncdBirthName"),
                "contact_email": attr(ldap="syncdContactMail"),
                "internal": attr(ldap="syncdInternal"),
                "primary_organisation": attr(ldap="syncdPrimaryOrganisation"),
            },
        ),
        organisations=BranchLayout(
            branch="ou=organisations",
            rdn_attribute="o",
            object_classes=("organization", "syncdOrganisation"),
        ),
        groups=GroupLayout(
            branch="ou=groups",
            rdn_attribute="cn",
            object_classes=("groupOfNames", "syncdRoleGroup"),
            member_attribute="member",
            placeholder_member=f"cn=syncd-placeholder,{base_dn}",
        ),
    )


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevSlapd]:
    folder = tmp_path_factory.mktemp("slapd")
    server = DevSlapd(folder / "server", suffix=SUFFIX, initial="debian")
    try:
        server.start()
        configure_as_documented(server, folder / "secrets")
    except SlapdNotInstalled as exc:
        message = f"SKIPPING LDAP TESTS: no OpenLDAP slapd on this machine ({exc})"
        if _in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ldap_layout(slapd: DevSlapd) -> DirectoryLayout:
    base = f"ou=t{uuid.uuid4().hex[:8]},{slapd.suffix}"
    serve_base(slapd, base)
    return sample_layout(base)


@pytest.fixture
def application_account(slapd: DevSlapd, ldap_layout: DirectoryLayout) -> tuple[str, str]:
    return app_dn(slapd.suffix), APP_PASSWORD


@pytest.fixture
def ldap_settings(slapd: DevSlapd) -> LdapSettings:
    return slapd.ldap_settings()


@pytest.fixture
def make_directory(slapd: DevSlapd, ldap_layout: DirectoryLayout) -> Iterator[Callable[..., Directory]]:
    from syncd.directory import Directory

    yield from closing_factory(lambda **overrides: Directory(slapd.ldap_settings(**overrides), ldap_layout))


@pytest.fixture
def directory(make_directory) -> Directory:
    d = make_directory()
    d.ensure_branches()
    return d
