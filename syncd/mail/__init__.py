"""The mail adapter: a transactional outbox, Jinja2 templates, SMTP delivery.

- ``enqueue`` writes a mail in the caller's transaction (with the state change calling for it),
  through the outbox's queries in ``syncd.store.outbox``;
- ``deliver_pending`` (the outbox job) renders and sends due mails, with retries and backoff;
- ``render`` turns a template name, a language and a context into a ``RenderedMail``;
- ``SmtpSender`` talks to the SMTP server and sorts its errors into ``MailUnavailable``
  (retry) and ``MailRejected`` (give up).
"""

from syncd.mail.delivery import DeliveryReport, default_backoff, deliver_pending, exponential_backoff
from syncd.mail.outbox import enqueue
from syncd.mail.render import LANGUAGES, TEMPLATES, MailTemplateError, RenderedMail, render
from syncd.mail.smtp import SmtpSender

__all__ = [
    "LANGUAGES",
    "TEMPLATES",
    "DeliveryReport",
    "MailTemplateError",
    "RenderedMail",
    "SmtpSender",
    "default_backoff",
    "deliver_pending",
    "enqueue",
    "exponential_backoff",
    "render",
]
