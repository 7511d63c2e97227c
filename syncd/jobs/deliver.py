"""Delivery: send the outbox's pending mails over SMTP (the mail adapter does the work)."""

from __future__ import annotations

from syncd.jobs.runtime import Runtime
from syncd.mail.delivery import deliver_pending
from syncd.mail.smtp import SmtpSender


def deliver(rt: Runtime) -> int:
    # The claim on a mail lasts as long as any other claim: a daemon that dies or loses the
    # database between sending and recording gets its mails retried after the same lease.
    with SmtpSender(rt.settings.smtp) as sender:
        report = deliver_pending(rt.engine, sender, now=rt.clock(), worker_id=rt.worker_id,
                                 lease_seconds=rt.settings.database.lease_seconds)
    return report.sent
