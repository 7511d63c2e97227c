"""Connection factory and the translation of ldap3 errors into syncd's two classes."""

from __future__ import annotations

import socket
import ssl
import time

import pytest
from ldap3 import FIRST
from ldap3.core import exceptions as lx

from syncd.devslapd import free_port
from syncd.directory import Directory, NoSuchEntry
from syncd.directory.connection import (
    error_for_exception,
    error_for_result,
    open_connection,
    raise_for_result,
    server_pool,
    tls_config,
    translated,
)
from syncd.errors import DirectoryRejected, DirectoryUnavailable
from syncd.settings import LdapSettings
from tests.fixtures_ldap import sample_layout


def result(code: int, description: str = "x", message: str = "server says no") -> dict:
    return {"result": code, "description": description, "message": message, "dn": "", "type": "modifyResponse"}


# -- result codes ------------------------------------------------------------------------------

@pytest.mark.parametrize("code", [3, 51, 52, 80])
def test_busy_unavailable_time_limit_and_other_are_temporary(code):
    err = error_for_result(result(code), operation="modify", dn="cn=g,dc=x")
    assert isinstance(err, DirectoryUnavailable)
    assert err.result_code == code
    assert err.dn == "cn=g,dc=x"


@pytest.mark.parametrize("code", [16, 17, 19, 20, 21, 34, 49, 50, 53, 64, 65, 68])
def test_every_other_result_code_is_a_permanent_rejection(code):
    err = error_for_result(result(code), operation="modify", dn="cn=g,dc=x")
    assert isinstance(err, DirectoryRejected)
    assert err.result_code == code


def test_unwilling_to_perform_is_a_rejection_because_waiting_does_not_change_a_policy():
    assert isinstance(error_for_result(result(53, "unwillingToPerform"), operation="add"), DirectoryRejected)


def test_no_such_object_is_a_no_such_entry_rejection():
    err = error_for_result(result(32, "noSuchObject"), operation="read", dn="uid=a,dc=x")
    assert isinstance(err, NoSuchEntry) and isinstance(err, DirectoryRejected)


def test_a_missing_response_is_temporary():
    assert isinstance(error_for_result(None, operation="search"), DirectoryUnavailable)


def test_the_message_names_the_operation_the_dn_the_code_and_the_servers_words():
    text = str(error_for_result(result(20, "attributeOrValueExists", "value #0 already exists"),
                                operation="modify", dn="cn=g,dc=x"))
    assert "modify" in text and "cn=g,dc=x" in text and "attributeOrValueExists (20)" in text
    assert "value #0 already exists" in text


def test_raise_for_result_passes_success_and_the_codes_allowed():
    raise_for_result(result(0), operation="modify")
    raise_for_result(result(20), operation="modify", ok={0, 20})
    with pytest.raises(DirectoryRejected):
        raise_for_result(result(20), operation="modify")


# -- exceptions --------------------------------------------------------------------------------

@pytest.mark.parametrize("exc", [
    lx.LDAPSocketOpenError("unable to open socket"),
    lx.LDAPSocketReceiveError("connection reset"),
    lx.LDAPSocketSendError("broken pipe"),
    lx.LDAPSessionTerminatedByServerError("session terminated by server"),
    lx.LDAPResponseTimeoutError("no response from server"),
    lx.LDAPServerPoolExhaustedError("no active server available in server pool"),
    socket.timeout("timed out"),
    ConnectionRefusedError(111, "Connection refused"),
])
def test_socket_level_failures_are_temporary(exc):
    err = error_for_exception(exc, operation="search", dn="dc=x")
    assert isinstance(err, DirectoryUnavailable)
    assert err.result_code is None


@pytest.mark.parametrize("exc", [
    lx.LDAPInvalidFilterError("malformed filter"),
    lx.LDAPInvalidDnError("bad dn"),
    lx.LDAPSSLConfigurationError("invalid CA public key file"),
])
def test_other_ldap3_errors_are_rejections(exc):
    assert isinstance(error_for_exception(exc, operation="search"), DirectoryRejected)


def test_an_untrusted_certificate_is_a_rejection_not_a_retry():
    exc = lx.LDAPSocketOpenError("socket ssl wrapping error: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    assert isinstance(error_for_exception(exc, operation="connect"), DirectoryRejected)


def test_an_ldap3_result_exception_is_translated_by_its_code():
    exc = lx.LDAPBusyResult(result=51, description="busy", message="try later")
    assert isinstance(error_for_exception(exc, operation="modify"), DirectoryUnavailable)


def test_the_translated_block_converts_and_chains_the_driver_exception():
    with pytest.raises(DirectoryUnavailable) as info:
        with translated("search", "dc=x"):
            raise lx.LDAPSocketReceiveError("reset")
    assert isinstance(info.value.__cause__, lx.LDAPSocketReceiveError)


# -- servers, TLS ------------------------------------------------------------------------------

def test_the_pool_tries_every_url_in_order_once():
    pool = server_pool(LdapSettings(urls=["ldap://ldap1.example:389/", "ldap://ldap2.example:389"]))
    assert pool.strategy == FIRST
    assert [s.host for s in pool.servers] == ["ldap1.example", "ldap2.example"]
    assert pool.active == 1 and pool.exhaust is True


def test_plain_ldap_uses_no_tls():
    assert tls_config(LdapSettings(urls=["ldap://h"])) is None


def test_ldaps_verifies_the_certificate_by_default():
    settings = LdapSettings(urls=["ldaps://h"], tls={"mode": "ldaps"})
    pool = server_pool(settings)
    assert pool.servers[0].ssl is True
    assert pool.servers[0].tls.validate == ssl.CERT_REQUIRED


def test_an_ldaps_url_gets_verified_tls_even_with_mode_none():
    assert server_pool(LdapSettings(urls=["ldaps://h"])).servers[0].tls.validate == ssl.CERT_REQUIRED


def test_verification_can_be_turned_off_explicitly():
    assert tls_config(LdapSettings(tls={"mode": "starttls", "verify": False})).validate == ssl.CERT_NONE


def test_a_missing_ca_file_is_a_rejection():
    with pytest.raises(DirectoryRejected):
        tls_config(LdapSettings(tls={"mode": "ldaps", "ca_file": "no/such/ca.pem"}))


def test_starttls_over_an_ldaps_url_is_refused():
    with pytest.raises(DirectoryRejected):
        server_pool(LdapSettings(urls=["ldaps://h"], tls={"mode": "starttls"}))


# -- against a closed port and a real slapd ----------------------------------------------------

def test_a_directory_on_a_closed_port_is_unavailable_quickly():
    settings = LdapSettings(urls=[f"ldap://127.0.0.1:{free_port()}"], bind_password="x", timeout_seconds=2)
    directory = Directory(settings, sample_layout("dc=example,dc=org"))
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable):
        directory.ping()
    assert time.monotonic() - started < 5


@pytest.mark.slapd
def test_the_second_url_is_used_when_the_first_is_down(slapd):
    settings = slapd.ldap_settings(urls=[f"ldap://127.0.0.1:{free_port()}", slapd.url])
    with Directory(settings, sample_layout(slapd.suffix)) as directory:
        directory.ping()


@pytest.mark.slapd
def test_a_wrong_bind_password_is_a_rejection_that_does_not_show_the_password(slapd):
    settings = slapd.ldap_settings(bind_password="not-the-password-1234")
    with pytest.raises(DirectoryRejected) as info:
        open_connection(settings)
    assert info.value.result_code == 49
    assert "not-the-password-1234" not in str(info.value)
