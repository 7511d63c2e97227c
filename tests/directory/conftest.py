"""The directory adapter's tests run on every server syncd supports.

``server_kind`` (tests/fixtures_kinds.py) is ``openldap`` (the slapd of ``tests/fixtures_ldap.py``), ``389ds`` (the 389
Directory Server of ``tests/fixtures_389ds.py``, bound as syncd's service account) or
``active_directory`` (the Samba AD domain controller of ``tests/fixtures_ad.py``, over LDAPS). Any
test here that takes ``ldap_layout``, ``make_directory``, ``directory`` or ``admin`` runs on each;
``skip_on(server_kind, "active_directory", reason)`` skips, with the reason stated, what a server
truly does not do.
"""

from __future__ import annotations

import pytest

from syncd.directory.connection import open_connection, safe_close

_FIXTURES = {  # server kind -> (layout, make_directory, admin connection)
    "389ds": ("ds389_layout", "make_ds389_directory", "ds389_admin"),
    "active_directory": ("ad_layout", "make_ad_directory", "ad_admin"),
}


def skip_on(server_kind: str, kind: str, reason: str) -> None:
    """Skip the running test on ``kind``, for ``reason`` (what that server does not do)."""
    if server_kind == kind:
        pytest.skip(f"not on {kind}: {reason}")


@pytest.fixture
def ldap_layout(ldap_layout, server_kind, request):
    return request.getfixturevalue(_FIXTURES[server_kind][0]) if server_kind in _FIXTURES else ldap_layout


@pytest.fixture
def make_directory(make_directory, server_kind, request):
    return request.getfixturevalue(_FIXTURES[server_kind][1]) if server_kind in _FIXTURES else make_directory


@pytest.fixture
def admin(server_kind, request):
    """A raw ldap3 connection as the root DN / Directory Manager / domain Administrator, for
    arranging and checking behind the adapter."""
    if server_kind in _FIXTURES:
        yield request.getfixturevalue(_FIXTURES[server_kind][2])
        return
    conn = open_connection(request.getfixturevalue("slapd").root_settings())
    yield conn
    safe_close(conn)
