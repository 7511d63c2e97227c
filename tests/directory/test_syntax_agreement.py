"""syncd's validators and a real directory agree on every attribute syncd writes (issue #11, Deliver 1).

The properties are in syntax_agreement.py, written for any directory: here they run on each server
of ``server_kind`` (tests/fixtures_kinds.py) — slapd configured as deploy/openldap ships it,
389 Directory Server as deploy/389ds ships it, a Samba AD DC with syncd's delegation of
deploy/activedirectory — bound as syncd's service account, with that kind's syntax profile, in
the test's own people branch.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
from ldap3 import Connection

from syncd.core.model import DirectoryKind
from syncd.directory import names
from syncd.directory.connection import open_connection, safe_close
from tests.directory.syntax_agreement import check_door_validators, check_syntax_profile

pytestmark = pytest.mark.slapd


class Target(NamedTuple):
    connection: Connection
    base_dn: str
    kind: DirectoryKind


@pytest.fixture
def target(server_kind, request):
    request.getfixturevalue("directory")           # the test's branches exist
    ldap_layout = request.getfixturevalue("ldap_layout")
    if server_kind == "389ds":
        endpoint = request.getfixturevalue("ds389_endpoint")
        conn, base = endpoint.connect(), endpoint.base_dn
    elif server_kind == "active_directory":          # syncd's service account, over LDAPS
        conn = open_connection(request.getfixturevalue("samba_ad").ldap_settings())
        base = names.branch_dn(ldap_layout, "people")
    else:
        conn = open_connection(request.getfixturevalue("slapd").ldap_settings())
        base = names.branch_dn(ldap_layout, "people")
    yield Target(conn, base, DirectoryKind(server_kind))
    safe_close(conn)


def test_every_value_the_syntax_profile_accepts_the_server_takes_and_what_it_refuses_the_server_refuses(target):
    check_syntax_profile(target.connection, target.base_dn, target.kind)


def test_every_value_intake_and_the_profile_check_accept_reaches_the_server_in_its_mapped_attribute(target):
    check_door_validators(target.connection, target.base_dn, target.kind)
