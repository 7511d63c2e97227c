from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from syncd.errors import MailRejected, MailUnavailable
from syncd.mail.render import RenderedMail, render
from syncd.mail.smtp import SmtpSender
from tests.fixtures_smtp import TLS_PASSWORD, TLS_USER, SmtpTestServer, free_port

from .samples import SAMPLE_CONTEXTS

RECIPIENT = "a.charenne@lassuranceretraite.fr"


@pytest.fixture
def mail() -> RenderedMail:
    return render("request_accepted", "fr", SAMPLE_CONTEXTS["request_accepted"])


def test_a_mail_arrives_with_its_subject_both_bodies_and_a_message_id_from_the_outbox_id(smtp_server, mail):
    with SmtpSender(smtp_server.settings()) as sender:
        message_id = sender.send(42, RECIPIENT, mail)

    [received] = smtp_server.messages
    assert received["Subject"] == mail.subject
    assert received["To"] == RECIPIENT
    assert received["From"] == "Habilitations <no-reply@habilitations.example.org>"
    assert received["Message-ID"] == message_id == "<outbox-42.syncd@habilitations.example.org>"
    assert received["X-Syncd-Outbox-Id"] == "42"
    assert received["Auto-Submitted"] == "auto-generated"
    assert received.get_body(("plain",)).get_content().replace("\r\n", "\n") == mail.text
    assert received.get_body(("html",)).get_content().replace("\r\n", "\n") == mail.html
    assert smtp_server.envelopes[0].mail_from == "no-reply@habilitations.example.org"
    assert smtp_server.envelopes[0].rcpt_tos == [RECIPIENT]


def test_a_second_send_of_the_same_outbox_row_is_recognisably_the_same_mail(smtp_server, mail):
    with SmtpSender(smtp_server.settings()) as sender:
        sender.send(7, RECIPIENT, mail)
        sender.send(7, RECIPIENT, mail)
        sender.send(8, RECIPIENT, mail)

    ids = [m["Message-ID"] for m in smtp_server.messages]
    assert ids[0] == ids[1] != ids[2]


def test_a_closed_port_is_a_temporary_failure(mail):
    sender = SmtpSender(SmtpTestServer().settings(port=free_port(), timeout_seconds=2))
    with pytest.raises(MailUnavailable, match="connect"):
        sender.send(1, RECIPIENT, mail)


def test_a_451_to_the_recipient_is_a_temporary_failure(smtp_server, mail):
    smtp_server.refuse_all_recipients("451 4.3.0 Try again later")
    with SmtpSender(smtp_server.settings()) as sender, pytest.raises(MailUnavailable, match="451"):
        sender.send(1, RECIPIENT, mail)


def test_a_550_to_the_recipient_is_a_permanent_failure_and_the_connection_goes_on(smtp_server, mail):
    smtp_server.refuse_recipient("nobody@example.org", "550 5.1.1 No such user here")
    with SmtpSender(smtp_server.settings()) as sender:
        with pytest.raises(MailRejected, match="550 5.1.1 No such user here"):
            sender.send(1, "nobody@example.org", mail)
        sender.send(2, RECIPIENT, mail)
    assert [m["X-Syncd-Outbox-Id"] for m in smtp_server.messages] == ["2"]


def test_a_refused_sender_address_is_a_set_up_problem_kept_for_later(smtp_server, mail):
    smtp_server.refuse_sender("553 5.7.1 Sender address rejected: not owned by user")
    with SmtpSender(smtp_server.settings()) as sender, pytest.raises(MailUnavailable, match="smtp.sender"):
        sender.send(1, RECIPIENT, mail)


def test_a_5xx_to_the_data_is_a_permanent_failure(smtp_server, mail):
    smtp_server.refuse_data("554 5.6.0 Message refused")
    with SmtpSender(smtp_server.settings()) as sender, pytest.raises(MailRejected, match="554"):
        sender.send(1, RECIPIENT, mail)


def test_a_header_injection_through_the_recipient_is_refused_before_sending(smtp_server, mail):
    with SmtpSender(smtp_server.settings()) as sender, pytest.raises(MailRejected):
        sender.send(1, "a@b.fr\r\nBcc: victim@example.org", mail)
    assert smtp_server.messages == []


def test_a_subject_with_a_line_break_never_becomes_a_header(smtp_server, mail):
    forged = RenderedMail(subject="Hello\r\nBcc: victim@example.org", text="x\n", html=None)
    with SmtpSender(smtp_server.settings()) as sender, pytest.raises(MailRejected):
        sender.send(1, RECIPIENT, forged)
    assert smtp_server.messages == []


def test_a_connection_the_server_dropped_between_mails_is_reopened(smtp_server, mail):
    with SmtpSender(smtp_server.settings()) as sender:
        sender.send(1, RECIPIENT, mail)
        smtp_server.stop()
        smtp_server.start()  # the kept connection is now dead
        with capture_logs() as logs:
            sender.send(2, RECIPIENT, mail)
    assert [m["X-Syncd-Outbox-Id"] for m in smtp_server.messages] == ["1", "2"]
    assert "smtp_reconnecting" in [e["event"] for e in logs]


def test_starttls_and_login_are_used_when_configured(smtp_tls_server, mail):
    settings = smtp_tls_server.settings(starttls=True, username=TLS_USER, password=TLS_PASSWORD)
    with SmtpSender(settings, ssl_context=smtp_tls_server.client_ssl_context) as sender:
        sender.send(5, RECIPIENT, mail)
    assert [m["X-Syncd-Outbox-Id"] for m in smtp_tls_server.messages] == ["5"]


def test_a_wrong_password_is_temporary_and_never_logged(smtp_tls_server, mail):
    settings = smtp_tls_server.settings(starttls=True, username=TLS_USER, password="wrong-Passw0rd-xyz")
    with capture_logs() as logs, pytest.raises(MailUnavailable, match="login: 535") as caught:
        SmtpSender(settings, ssl_context=smtp_tls_server.client_ssl_context).send(5, RECIPIENT, mail)
    assert "wrong-Passw0rd-xyz" not in repr(logs) + str(caught.value)
    assert [e["stage"] for e in logs if e["event"] == "smtp_unavailable"] == ["login"]


def test_a_server_that_requires_starttls_refuses_a_plain_client_temporarily(smtp_tls_server, mail):
    with pytest.raises(MailUnavailable, match="530"):
        SmtpSender(smtp_tls_server.settings()).send(5, RECIPIENT, mail)
    assert smtp_tls_server.messages == []


def test_an_untrusted_certificate_is_a_temporary_failure(smtp_tls_server, mail):
    settings = smtp_tls_server.settings(starttls=True, username=TLS_USER, password=TLS_PASSWORD)
    with pytest.raises(MailUnavailable, match="starttls"):
        SmtpSender(settings).send(5, RECIPIENT, mail)  # default context: system CAs only


@pytest.mark.parametrize("subject", [
    "Changing your password",
    "Demande d'habilitation « Egap - Guides d'administration du personnel » à valider – Aristide Charenne" * 2,
    "Eve =?utf-8?q?=41?= et  deux  espaces",
])
def test_the_subject_arrives_exactly_as_rendered_ascii_long_or_tricky(smtp_server, subject):
    with SmtpSender(smtp_server.settings()) as sender:
        sender.send(1, RECIPIENT, RenderedMail(subject=subject, text="x\n"))
    assert smtp_server.messages[0]["Subject"] == subject


def test_an_internationalised_address_is_delivered_with_smtputf8(smtp_server, mail):
    with SmtpSender(smtp_server.settings()) as sender:
        sender.send(1, "jérôme@exemple.fr", mail)
    assert smtp_server.envelopes[0].rcpt_tos == ["jérôme@exemple.fr"]
    assert smtp_server.messages[0]["To"] == "jérôme@exemple.fr"
