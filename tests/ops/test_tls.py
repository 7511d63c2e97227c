"""TLS to the directory and to the mail server, with a throwaway CA.

slapd (stock Debian, configured by deploy/openldap/README.md's block, then ``80-tls.ldif``
applied with ldapmodify and an ``ldaps://`` listener added) serves StartTLS on its plain port and
LDAPS on a second one; syncd binds as its service account. With ``tls.verify`` on
(the default) and ``tls.ca_file`` naming the CA, both modes work end to end (a request goes
from the queue table to LDAP); an unknown CA or a certificate for another host name is a
*permanent* error that says so (waiting does not fix a certificate).
"""

from __future__ import annotations

import secrets
import time

import pytest

from syncd.core.model import Verdict
from syncd.daemon import Daemon
from syncd.devslapd import DevSlapd, SlapdNotInstalled
from syncd.directory import Directory
from syncd.errors import DirectoryRejected
from syncd.jobs.decisions import decide_request
from syncd.store.db import transaction
from syncd.store.tables import outbox
from tests.fixtures_ldap import sample_layout
from tests.fixtures_smtp import TLS_PASSWORD, TLS_USER
from tests.openldap_setup import serve_base, tls_server
from tests.scenarios.helpers import CORRESPONDENT, REQUESTER, habilitation, member_dns, people, person, request_row

pytestmark = pytest.mark.slapd


def _server(workdir, cert, key, ca) -> DevSlapd:
    try:
        return tls_server(workdir, cert, key, ca)
    except SlapdNotInstalled as exc:
        pytest.skip(f"no OpenLDAP slapd: {exc}")


@pytest.fixture(scope="module")
def tls_slapd(pki, tmp_path_factory):
    cert, key = pki["server"]
    server = _server(tmp_path_factory.mktemp("tls-slapd"), cert, key, pki["ca"].cert)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def wrong_host_slapd(pki, tmp_path_factory):
    cert, key = pki["wrong_host"]
    server = _server(tmp_path_factory.mktemp("tls-wrong-host"), cert, key, pki["ca"].cert)
    yield server
    server.stop()


def _base(server) -> str:
    """A test's own base, named in the server's access rules."""
    base = f"ou=t{secrets.token_hex(4)},{server.suffix}"
    serve_base(server, base)
    return base


def _settings(server: DevSlapd, mode: str, ca_file, **more):
    url = server.ldaps_url if mode == "ldaps" else server.url
    return server.ldap_settings(urls=[url], tls={"mode": mode, "ca_file": str(ca_file), **more}, timeout_seconds=3)


def _refused(server, mode, ca_file) -> DirectoryRejected:
    started = time.monotonic()
    with Directory(_settings(server, mode, ca_file), sample_layout(server.suffix)) as directory:
        with pytest.raises(DirectoryRejected) as info:
            directory.ping()
    assert time.monotonic() - started < 3, "refused at once, not after timeouts"
    return info.value


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
def test_a_request_reaches_ldap_over_verified_tls(mode, tls_slapd, pki, make_rt, smtp_server):
    rt = make_rt(_settings(tls_slapd, mode, pki["ca"].cert), smtp_server.settings(), base_dn=_base(tls_slapd))
    daemon = Daemon(rt)
    assert daemon.run_job("provision")
    ids = people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    assert daemon.run_job("apply") == 1
    assert request_row(rt, request_id)["applied_at"] is not None
    assert person(rt, ids["requester"]) in member_dns(rt, "accords-locaux-acces")


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
def test_an_unknown_ca_is_a_permanent_error_that_names_the_certificate(mode, tls_slapd, pki):
    error = _refused(tls_slapd, mode, pki["unknown_ca"].cert)
    assert "certificate verify failed" in str(error).lower()
    assert error.result_code is None


def test_a_wrong_host_name_over_starttls_is_a_permanent_error(wrong_host_slapd, pki):
    error = _refused(wrong_host_slapd, "starttls", pki["ca"].cert)
    assert "ldap.elsewhere.example" in str(error) and "match" in str(error)


def test_a_wrong_host_name_over_ldaps_is_a_permanent_error(wrong_host_slapd, pki):
    error = _refused(wrong_host_slapd, "ldaps", pki["ca"].cert)
    assert "match" in str(error)


def test_the_wrong_host_is_accepted_only_with_verification_explicitly_off(wrong_host_slapd, pki):
    settings = _settings(wrong_host_slapd, "ldaps", pki["unknown_ca"].cert, verify=False)
    with Directory(settings, sample_layout(wrong_host_slapd.suffix)) as directory:
        directory.ping()


def test_a_server_without_tls_on_that_port_is_temporary_not_a_hang(tls_slapd, pki):
    from syncd.errors import DirectoryUnavailable
    settings = tls_slapd.ldap_settings(urls=[tls_slapd.url.replace("ldap://", "ldaps://")],
                                       tls={"mode": "ldaps", "ca_file": str(pki["ca"].cert)}, timeout_seconds=2)
    started = time.monotonic()
    with Directory(settings, sample_layout(tls_slapd.suffix)) as directory:
        with pytest.raises(DirectoryUnavailable):
            directory.ping()
    assert time.monotonic() - started < 5


# -- SMTP with STARTTLS and AUTH ---------------------------------------------------------------

def _tls_smtp_settings(server):
    return server.settings(starttls=True, username=TLS_USER, password=TLS_PASSWORD)


def _outbox(rt):
    with transaction(rt.engine) as conn:
        return [dict(r) for r in conn.execute(outbox.select().order_by(outbox.c.id)).mappings()]


def test_mail_goes_out_over_starttls_when_the_ca_is_trusted(tls_slapd, pki, make_rt, smtp_tls_server,
                                                             smtp_certificate, monkeypatch):
    # SmtpSettings has no ca_file: a private CA is trusted the OpenSSL way, with SSL_CERT_FILE
    # (or by adding it to the system store). docs/operations.md says so.
    rt = make_rt(_settings(tls_slapd, "starttls", pki["ca"].cert), _tls_smtp_settings(smtp_tls_server),
                 base_dn=_base(tls_slapd))
    daemon = Daemon(rt)
    daemon.run_job("provision")
    people(rt)
    habilitation(rt)
    daemon.run_job("intake")

    assert daemon.run_job("deliver") == 0, "the test CA is not trusted yet"
    rows = _outbox(rt)
    assert rows and all(r["status"] == "pending" for r in rows), "an untrusted server keeps the mail"
    assert "certificate" in rows[0]["last_error"].lower()

    cert, _ = smtp_certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with transaction(rt.engine) as conn:   # the retry is due (instead of waiting out the backoff)
        conn.execute(outbox.update().values(next_attempt_at=None))
    assert daemon.run_job("deliver") == len(rows)
    assert [m["To"] for m in smtp_tls_server.messages] == [CORRESPONDENT]
    assert all(r["status"] == "sent" for r in _outbox(rt))


def test_a_mail_server_that_refuses_our_login_keeps_the_mail(tls_slapd, pki, make_rt, smtp_tls_server,
                                                             smtp_certificate, monkeypatch):
    cert, _ = smtp_certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    smtp = smtp_tls_server.settings(starttls=True, username=TLS_USER, password="wrong-password-000")
    rt = make_rt(_settings(tls_slapd, "starttls", pki["ca"].cert), smtp, base_dn=_base(tls_slapd))
    daemon = Daemon(rt)
    daemon.run_job("provision")
    people(rt)
    habilitation(rt)
    daemon.run_job("intake")
    daemon.run_job("deliver")
    rows = _outbox(rt)
    assert rows and all(r["status"] == "pending" for r in rows)
    assert "535" in rows[0]["last_error"]
    assert smtp_tls_server.messages == []
    assert REQUESTER not in str(rows[0]["last_error"])
