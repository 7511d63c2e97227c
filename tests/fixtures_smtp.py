"""A real SMTP server in-process (aiosmtpd) on a free loopback port, for the mail tests.

``smtp_server`` collects what it receives as parsed ``email.message.EmailMessage`` objects
(``smtp_server.messages``, with envelopes in ``smtp_server.envelopes``) and can be told to
refuse: one recipient or all of them at RCPT (``refuse_recipient``, ``refuse_all_recipients``,
e.g. ``"451 4.3.0 Try again later"`` or ``"550 5.1.1 No such user"``), the sender at MAIL
(``refuse_sender``) or the data (``refuse_data``); ``accept_all()`` undoes them. ``stop()``
closes the port (an SMTP outage); ``start()`` opens it again on the same port.
``smtp_settings`` points ``SmtpSettings`` at it.

``smtp_tls_server`` is the same server with STARTTLS required (a throwaway self-signed
certificate made with the ``openssl`` command) and AUTH accepting ``TLS_USER`` /
``TLS_PASSWORD``; ``client_ssl_context`` trusts its certificate.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from syncd.settings import SmtpSettings

HOST = "127.0.0.1"
TLS_USER = "syncd"
TLS_PASSWORD = "s3cret-Passw0rd-for-tests"


@dataclass
class Envelope:
    mail_from: str
    rcpt_tos: list[str]


@dataclass
class RecordingHandler:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)
    recipient_replies: dict[str, str] = field(default_factory=dict)
    all_recipients_reply: str | None = None
    data_reply: str | None = None
    sender_reply: str | None = None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.sender_reply:
            return self.sender_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.recipient_replies.get(address.lower()) or self.all_recipients_reply
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        self.messages.append(BytesParser(policy=default_policy).parsebytes(raw))
        self.envelopes.append(Envelope(envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 Message accepted for delivery"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class SmtpTestServer:
    def __init__(self, port: int | None = None, *, tls_context: ssl.SSLContext | None = None,
                 authenticator=None, client_ssl_context: ssl.SSLContext | None = None):
        self.host = HOST
        self.port = port or free_port()
        self.handler = RecordingHandler()
        self.client_ssl_context = client_ssl_context
        self._smtp_kwargs = {}
        if tls_context is not None:
            self._smtp_kwargs.update(tls_context=tls_context, require_starttls=True)
        if authenticator is not None:
            self._smtp_kwargs.update(authenticator=authenticator, auth_require_tls=True)
        self._controller: Controller | None = None

    # -- what it received ----------------------------------------------------------------------

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages

    @property
    def envelopes(self) -> list[Envelope]:
        return self.handler.envelopes

    # -- how it answers ------------------------------------------------------------------------

    def refuse_recipient(self, address: str, reply: str = "550 5.1.1 No such user here") -> None:
        self.handler.recipient_replies[address.lower()] = reply

    def refuse_all_recipients(self, reply: str = "451 4.3.0 Try again later") -> None:
        self.handler.all_recipients_reply = reply

    def refuse_data(self, reply: str = "554 5.6.0 Message refused") -> None:
        self.handler.data_reply = reply

    def refuse_sender(self, reply: str = "553 5.7.1 Sender address rejected") -> None:
        self.handler.sender_reply = reply

    def accept_all(self) -> None:
        self.handler.recipient_replies.clear()
        self.handler.all_recipients_reply = None
        self.handler.data_reply = None
        self.handler.sender_reply = None

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is not None:
            return
        # A stopped Controller's loop is closed: make a new one, on the same port.
        controller = Controller(self.handler, hostname=self.host, port=self.port,
                                server_hostname="localhost", ready_timeout=10, **self._smtp_kwargs)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def settings(self, **overrides) -> SmtpSettings:
        values = dict(host=self.host, port=self.port, sender="Habilitations <no-reply@habilitations.example.org>",
                      timeout_seconds=5)
        values.update(overrides)
        return SmtpSettings(**values)


@pytest.fixture
def smtp_server():
    server = SmtpTestServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_settings(smtp_server) -> SmtpSettings:
    return smtp_server.settings()


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == TLS_USER.encode()
        and auth_data.password == TLS_PASSWORD.encode()
    )
    # handled=False: let aiosmtpd answer (235 or 535); a handled failure would answer nothing.
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="session")
def smtp_certificate(tmp_path_factory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate for STARTTLS")
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", f"subjectAltName=IP:{HOST},DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def smtp_tls_server(smtp_certificate):
    cert, key = smtp_certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    server = SmtpTestServer(tls_context=server_context, authenticator=_authenticator,
                            client_ssl_context=client_context)
    server.start()
    try:
        yield server
    finally:
        server.stop()
