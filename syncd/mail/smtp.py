"""Send a rendered mail over SMTP, translating ``smtplib`` errors into syncd's two kinds.

- ``MailUnavailable`` (retry later): the server cannot be reached, times out, drops the
  connection, answers 4xx, or refuses STARTTLS / our login (a configuration problem, not the
  mail's fault: the mail is kept and retried while someone fixes it);
- ``MailRejected`` (give up on this mail): a 5xx answer to this mail's sender, recipient or
  data, or a mail that cannot be written as a message at all.

Delivery is at-least-once: a crash between the server's "250 OK" and the outbox update sends
the mail again. The ``Message-ID`` is derived from the outbox id, and the ``X-Syncd-Outbox-Id``
header carries it, so such a duplicate is recognisably the same mail (and servers or clients
that deduplicate by Message-ID drop it).

One connection is kept open between sends of a batch (``close()`` ends it; the sender is also a
context manager). A reused connection the server has dropped in the meantime is reopened once.
"""

from __future__ import annotations

import smtplib
import ssl
from contextlib import suppress
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, parseaddr

import structlog

from syncd.errors import MailRejected, MailUnavailable
from syncd.mail.render import RenderedMail
from syncd.settings import SmtpSettings

log = structlog.get_logger(__name__)


class _ConnectionLost(MailUnavailable):
    """The connection broke (or never worked); a fresh one may succeed at once."""


def message_id(outbox_id: int, sender: str) -> str:
    """``<outbox-<id>.syncd@<sender domain>>``: the same for every attempt at one outbox row."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return f"<outbox-{int(outbox_id)}.syncd@{domain}>"


def build_message(outbox_id: int, sender: str, recipient: str, rendered: RenderedMail) -> EmailMessage:
    """The MIME message: text body, optional HTML alternative, our headers.

    Raises ``MailRejected`` when a header value would hold a line break (header injection) or
    the recipient is not one plain address.
    """
    _check_recipient(recipient)
    msg = EmailMessage(policy=SMTP_POLICY)
    try:
        msg["From"] = sender
        msg["To"] = recipient
        _set_subject(msg, rendered.subject)
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = message_id(outbox_id, sender)
        msg["X-Syncd-Outbox-Id"] = str(int(outbox_id))
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
        msg.set_content(rendered.text, cte="quoted-printable")
        if rendered.html is not None:
            msg.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    except (ValueError, TypeError, UnicodeError) as exc:
        raise MailRejected(f"cannot build the message: {exc}") from exc
    return msg


def _set_subject(msg: EmailMessage, subject: str) -> None:
    """Plain ASCII as it is; anything else wholly RFC 2047-encoded by us.

    The ``email`` package's own folding loses the space between two encoded words when it
    folds a line there, and decodes any "=?…?=" typed in a name; encoding the whole subject in
    base64/Q words (folded at 76 characters, so it is not refolded) keeps it exactly as rendered.
    """
    if any(c in subject for c in "\r\n"):
        raise ValueError("Header values may not contain linefeed or carriage return characters")
    if subject.isascii() and subject.isprintable() and "=?" not in subject:
        msg["Subject"] = subject
    else:
        msg.set_raw("Subject", Header(subject, "utf-8", header_name="Subject").encode(linesep="\r\n"))


def _check_recipient(recipient: str) -> None:
    if (not recipient or recipient.count("@") != 1
            or any(c.isspace() or ord(c) < 32 or c in "<>,;\"()" for c in recipient) or parseaddr(recipient)[1] != recipient):
        raise MailRejected(f"not a single e-mail address: {recipient!r}")


# Authentication or TLS required: our set-up is wrong, not this mail (keep it, retry later).
_SETUP_CODES = frozenset({530, 534, 535, 538})


def _by_code(code: int | None, text: object, stage: str) -> MailUnavailable | MailRejected:
    """4xx → temporary; 5xx → permanent, except set-up problems, which are not the mail's."""
    message = f"{stage}: {code} {_text(text)}".strip()
    if code is None or not 500 <= code < 600 or code in _SETUP_CODES:
        return MailUnavailable(message)
    if stage == "sender" and code != 552:
        # MAIL FROM carries our configured sender, the same for every mail: a refusal is a
        # configuration problem. 552 is the one about this mail (its SIZE is too large).
        return MailUnavailable(message + " (check smtp.sender)")
    return MailRejected(message)


class SmtpSender:
    """Sends mails with ``smtplib`` as ``settings`` say (STARTTLS, login, timeout).

    ``ssl_context`` overrides the default (system CAs, hostname checked) for STARTTLS, e.g. to
    trust a private CA.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ):
        self.settings = settings
        self._ssl_context = ssl_context
        self._local_hostname = local_hostname
        self._envelope_from = parseaddr(settings.sender)[1]
        self._conn: smtplib.SMTP | None = None
        self._log = log.bind(smtp_host=settings.host, smtp_port=settings.port)

    # -- public -------------------------------------------------------------------------------

    def send(self, outbox_id: int, recipient: str, rendered: RenderedMail) -> str:
        """Send one mail; return its Message-ID. Raises ``MailUnavailable`` or ``MailRejected``."""
        msg = build_message(outbox_id, self.settings.sender, recipient, rendered)
        reused = self._conn is not None
        try:
            self._send_once(msg, recipient)
        except _ConnectionLost:
            if not reused:
                raise
            self._log.info("smtp_reconnecting", outbox_id=outbox_id)
            self._send_once(msg, recipient)
        return msg["Message-ID"]

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        _close_quietly(conn)

    def _connection(self) -> smtplib.SMTP:
        if self._conn is not None:
            return self._conn
        s = self.settings
        conn: smtplib.SMTP | None = None
        stage = "connect"
        try:
            # Connecting in the constructor also records the host that STARTTLS checks the
            # certificate against, and raises SMTPConnectError on a greeting other than 220.
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds, local_hostname=self._local_hostname)
            stage = "ehlo"
            conn.ehlo()
            if s.starttls:
                stage = "starttls"
                conn.starttls(context=self._ssl_context or ssl.create_default_context())
                conn.ehlo()
            if s.username:
                stage = "login"
                password = s.password.get_secret_value() if s.password is not None else ""
                conn.login(s.username, password)
        except smtplib.SMTPResponseException as exc:
            _close_quietly(conn)
            self._log.warning("smtp_unavailable", stage=stage, code=exc.smtp_code)
            raise _ConnectionLost(f"{stage}: {exc.smtp_code} {_text(exc.smtp_error)}") from exc
        except (smtplib.SMTPException, OSError, ValueError) as exc:  # ValueError: bad TLS set-up
            _close_quietly(conn)
            self._log.warning("smtp_unavailable", stage=stage, error=type(exc).__name__)
            raise _ConnectionLost(f"{stage}: {type(exc).__name__}: {exc}") from exc
        self._conn = conn
        return conn

    def _send_once(self, msg: EmailMessage, recipient: str) -> None:
        conn = self._connection()
        try:
            conn.send_message(msg, from_addr=self._envelope_from, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (None, b"recipient refused"))
            raise _by_code(code, text, "recipient") from exc
        except smtplib.SMTPSenderRefused as exc:
            raise _by_code(exc.smtp_code, exc.smtp_error, "sender") from exc
        except smtplib.SMTPDataError as exc:
            raise _by_code(exc.smtp_code, exc.smtp_error, "data") from exc
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise _ConnectionLost(f"server disconnected: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421:  # the server is closing the connection
                self._drop()
                raise _ConnectionLost(f"421 {_text(exc.smtp_error)}") from exc
            raise _by_code(exc.smtp_code, exc.smtp_error, "send") from exc
        except smtplib.SMTPNotSupportedError as exc:  # e.g. an address that needs SMTPUTF8
            raise MailRejected(f"not supported by the server: {exc}") from exc
        except smtplib.SMTPException as exc:
            self._drop()
            raise MailUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except OSError as exc:  # timeouts, resets, TLS errors
            self._drop()
            raise _ConnectionLost(f"{type(exc).__name__}: {exc}") from exc


def _close_quietly(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        with suppress(OSError):
            conn.close()


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
