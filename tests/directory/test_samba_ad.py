"""The Samba Active Directory domain controller of the tests, and what AD does that syncd relies on."""

from __future__ import annotations

import pytest
from ldap3 import BASE

from syncd.directory.connection import open_connection, safe_close
from syncd.errors import DirectoryRejected

pytestmark = pytest.mark.samba_ad


def test_the_dc_answers_over_ldaps_with_the_certificate_it_generated(samba_ad):
    conn = open_connection(samba_ad.ldap_settings())
    try:
        _, result, response, _ = conn.search("", "(objectClass=*)", BASE, attributes=["defaultNamingContext"])
        assert result["result"] == 0
        assert response[0]["attributes"]["defaultNamingContext"] == [samba_ad.suffix]
    finally:
        safe_close(conn)


def test_a_certificate_for_another_name_is_refused(samba_ad):
    settings = samba_ad.ldap_settings()
    wrong = settings.model_copy(update={"tls": settings.tls.model_copy(update={"server_name": "elsewhere.example.org"})})
    with pytest.raises(DirectoryRejected, match="TLS"):
        open_connection(wrong)
