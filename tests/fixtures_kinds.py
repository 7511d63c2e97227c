"""One fixture for every directory server syncd supports: the suites that exercise directory
behaviour (tests/scenarios/test_every_server.py, tests/reconcile/test_every_server.py, the
directory adapter's suite of tests/directory) run once per kind through it, instead of a copy
of each test per server.

* ``server_kind`` (parametrised): ``openldap`` (the session's slapd, tests/fixtures_ldap.py),
  ``389ds`` (marker ``ds389``: the session's 389 Directory Server, tests/fixtures_389ds.py) and
  ``active_directory`` (marker ``samba_ad``: a copy of the session's provisioned Samba AD DC,
  tests/fixtures_ad.py). ``-m "not samba_ad"`` leaves a kind out as for its own tests.
* ``kind_server``: a ``KindServer``: the kind, its ``servers.ServerTraits`` (what the adapter
  does differently, which is also what a test expects differently), the settings of an account
  that arranges and checks behind syncd (root DN / Directory Manager / domain Administrator),
  those of an application's read-only account where the deployment files make one, and the few
  facts of the test server that are no trait of syncd's (its password policy…).
* ``shows_locked(directory, dn)``: whether an entry is locked the way its server locks accounts.
* ``make_kind_runtime(mappings=None, **sections)``: a whole syncd (``Runtime``) on that server,
  this test's database and the in-process SMTP server. ``mappings`` is a function of a base DN
  (``tests.factories.mappings`` by default): each kind moves them onto its own layout (a base
  of the test's own on slapd, nested branches on 389-DS, deploy/activedirectory's layout on AD).

Each server is started once per session (slapd, 389-DS, and the DC's template); AD tests get a
copy of the provisioned DC (~1 s each, measured in the terminal summary).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from syncd.core.model import DirectoryKind
from syncd.directory import Directory
from syncd.directory.servers import ServerTraits, traits
from syncd.mappings import DirectoryLayout, Mappings
from syncd.settings import LdapSettings
from tests.factories import closing_factory
from tests.factories import mappings as sample_mappings
from tests.fixtures_runtime import build_runtime

SUFFIX = "dc=example,dc=org"

SERVER_KINDS = ["openldap", pytest.param("389ds", marks=pytest.mark.ds389),
                pytest.param("active_directory", marks=pytest.mark.samba_ad)]


@dataclass(frozen=True)
class KindServer:
    """The directory server of one ``server_kind``, as the kind-neutral tests see it."""

    kind: DirectoryKind
    traits: ServerTraits
    admin_settings: LdapSettings               # arranges and checks behind syncd, never syncd's
    application_settings: LdapSettings | None  # an application's read-only account, if deployed
    # The domain's default policy refuses simple passwords (AD); the others take any.
    password_policy: bool = False
    # The server writes memberOf into the person's entry, moving its change stamp (389-DS's
    # MemberOf plugin); OpenLDAP's overlay does not move entryCSN, AD's memberOf is a back link.
    member_of_moves_stamp: bool = False



def status_attribute(layout: DirectoryLayout) -> str:
    """Where the account status is written: its mapped attribute, else the disabled attribute."""
    people = layout.people
    return people.attributes["status"].ldap if "status" in people.attributes else people.disabled_attribute


def shows_locked(directory: Directory, dn: str) -> bool:
    """Whether the entry ``dn`` is locked the way its server locks an account: its lock
    attribute (389-DS's nsAccountLock, AD's disable bit) or, on OpenLDAP, the status the shipped
    access rules read."""
    t = traits(directory.layout.kind)
    if t.lock_attribute is None:
        status = status_attribute(directory.layout)      # the rules let "active" bind, nothing else
        return [v.lower() for v in directory.read_entry(dn, [status])[status]] != ["active"]
    values = directory.read_entry(dn, [t.lock_attribute])[t.lock_attribute]
    return t.lock_canonical(values) == (["locked"] if t.lock_bit else [t.lock_value])


@pytest.fixture(params=SERVER_KINDS)
def server_kind(request) -> str:
    return request.param


@pytest.fixture
def kind_server(server_kind, request) -> KindServer:
    kind = DirectoryKind(server_kind)
    if kind is DirectoryKind.DS389:
        ds = request.getfixturevalue("ds389")
        return KindServer(kind, traits(kind), ds.admin_settings(),
                          LdapSettings(urls=[ds.url], bind_dn=ds.app_dn, bind_password=ds.app_password),
                          member_of_moves_stamp=True)
    if kind is DirectoryKind.ACTIVE_DIRECTORY:
        dc = request.getfixturevalue("samba_ad")
        return KindServer(kind, traits(kind), dc.admin_settings(), None, password_policy=True)
    slapd = request.getfixturevalue("slapd")
    app_dn, app_password = request.getfixturevalue("application_account")
    return KindServer(kind, traits(kind), slapd.root_settings(),
                      LdapSettings(urls=[slapd.url], bind_dn=app_dn, bind_password=app_password))


@pytest.fixture
def make_kind_runtime(server_kind, request, db_url, smtp_settings, clock):
    """``make(mappings=None, **sections)``: a ``Runtime`` on the server of ``server_kind``."""
    def of_base(mappings: Callable[[str], Mappings] | None) -> Callable[[str], Mappings]:
        return mappings or (lambda base_dn: sample_mappings(base_dn=base_dn))

    if server_kind != DirectoryKind.OPENLDAP.value:      # those factories close what they make
        other = request.getfixturevalue("make_ds389_runtime" if server_kind == DirectoryKind.DS389.value
                                        else "make_ad_runtime")
        yield lambda mappings=None, **sections: other(of_base(mappings)(SUFFIX), **sections)
        return
    slapd, layout = request.getfixturevalue("slapd"), request.getfixturevalue("ldap_layout")
    yield from closing_factory(lambda mappings=None, **sections: build_runtime(
        db_url, slapd.ldap_settings().model_dump(), of_base(mappings)(layout.base_dn), smtp_settings, clock,
        **sections))
