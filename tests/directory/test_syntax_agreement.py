"""syncd's validators and a real slapd agree on every attribute syncd writes (issue #11, Deliver 1).

The properties are in syntax_agreement.py, written for any directory: here they run against the
session's slapd, configured as deploy/openldap ships it, with the OpenLDAP syntax profile.
"""

from __future__ import annotations

import pytest

from syncd.core.model import DirectoryKind
from syncd.directory.connection import open_connection
from tests.directory.conftest import skip_on
from tests.directory.syntax_agreement import check_door_validators, check_syntax_profile

pytestmark = pytest.mark.slapd


@pytest.fixture
def connection(directory, ldap_settings, server_kind):
    # the slapd of the session, whatever server_kind says; the 389-DS tests are below
    skip_on(server_kind, "active_directory", "these check the OpenLDAP profile against slapd; AD's profile "
            "is not property-tested against a DC yet")
    conn = open_connection(ldap_settings)
    yield conn
    conn.unbind()


def test_every_value_the_openldap_syntax_profile_accepts_slapd_takes_and_what_it_refuses_slapd_refuses(
        connection, ldap_layout):
    check_syntax_profile(connection, ldap_layout.base_dn, DirectoryKind.OPENLDAP)


def test_every_value_intake_and_the_profile_check_accept_reaches_slapd_in_its_mapped_attribute(
        connection, ldap_layout):
    check_door_validators(connection, ldap_layout.base_dn, DirectoryKind.OPENLDAP)


@pytest.fixture
def ds389_connection(ds389_endpoint):
    conn = ds389_endpoint.connect()
    yield conn
    conn.unbind()


@pytest.mark.ds389
def test_every_value_the_389ds_syntax_profile_accepts_389_directory_server_takes_and_what_it_refuses_it_refuses(
        ds389_connection, ds389_endpoint):
    check_syntax_profile(ds389_connection, ds389_endpoint.base_dn, DirectoryKind.DS389)


@pytest.mark.ds389
def test_every_value_intake_and_the_profile_check_accept_reaches_389_directory_server_in_its_mapped_attribute(
        ds389_connection, ds389_endpoint):
    check_door_validators(ds389_connection, ds389_endpoint.base_dn, DirectoryKind.DS389)
