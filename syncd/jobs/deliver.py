"""Delivery: send the outbox's pending mails over SMTP (the mail adapter does the work)."""

from __future__ import annotations

from syncd.jobs.runtime import Runtime
from syncd.mail.delivery import deliver_pending
from syncd.mail.smtp import SmtpSender


def deliver(rt: Runtime) -> int:
    report = deliver_pending(rt.engine, SmtpSender(rt.settings.smtp), now=rt.clock(), worker_id=rt.worker_id)
    return report.sent
