"""Delivery: send the outbox's pending mails over SMTP (the mail adapter does the work)."""

from __future__ import annotations

from syncd.runtime import Runtime
from syncd.mail.delivery import deliver_pending
from syncd.mail.smtp import SmtpSender


def deliver(rt: Runtime) -> int:
    # The claim on a mail lasts as long as any other claim: a daemon that dies or loses the
    # database between sending and recording gets its mails retried after the same lease. Each
    # attempt renews its mail's lease from the runtime's clock (a batch's last mails are not sent
    # on the lease taken when the batch was claimed).
    with SmtpSender(rt.settings.smtp) as sender:
        report = deliver_pending(rt.engine, sender, now=rt.clock(), worker_id=rt.worker_id,
                                 lease_seconds=rt.settings.database.lease_seconds, clock=rt.clock)
    return report.sent
