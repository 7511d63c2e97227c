"""The directory adapter's tests run on both servers syncd supports.

``server_kind`` is ``openldap`` (the slapd of ``tests/fixtures_ldap.py``) or ``389ds`` (the
389 Directory Server of ``tests/fixtures_389ds.py``, bound as syncd's service account). Any test
here that takes ``ldap_layout``, ``make_directory``, ``directory`` or ``admin`` runs on each.
"""

from __future__ import annotations

import pytest

from syncd.directory.connection import open_connection, safe_close


@pytest.fixture(params=["openldap", pytest.param("389ds", marks=pytest.mark.ds389)])
def server_kind(request) -> str:
    return request.param


@pytest.fixture
def ldap_layout(ldap_layout, server_kind, request):
    return request.getfixturevalue("ds389_layout") if server_kind == "389ds" else ldap_layout


@pytest.fixture
def make_directory(make_directory, server_kind, request):
    return request.getfixturevalue("make_ds389_directory") if server_kind == "389ds" else make_directory


@pytest.fixture
def admin(server_kind, request):
    """A raw ldap3 connection as the root DN / Directory Manager, for arranging and checking
    behind the adapter."""
    if server_kind == "389ds":
        yield request.getfixturevalue("ds389_admin")
        return
    conn = open_connection(request.getfixturevalue("slapd").root_settings())
    yield conn
    safe_close(conn)
