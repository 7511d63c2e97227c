"""Retention: what syncd keeps only for a while.

Mails sent or given up on more than ``smtp.keep_content_days`` ago lose what was written into
them: the names, the refusal comment and the links in their context, and the reason a send
failed (it may quote an address). Who was written to, which mail, when, and its dedupe key stay:
they show that the mail went out, and the key still stops the same mail from being queued again.
The history of each request (``request_events``) and the audit trail are kept for good
(docs/operations.md, "What is kept"): they are the record; the outbox is a means of delivery.

Password-link rows are not removed: they hold only a hash, and their ids name their mails'
dedupe keys (``password:<id>``), which a reused id would silently match.
"""

from __future__ import annotations

from datetime import timedelta

from syncd.jobs.runtime import Runtime
from syncd.store import outbox
from syncd.store.db import transaction

BATCH = 5000   # mails per transaction: short, so that SQLite's one writer is not held long


def erase_old_mail_content(rt: Runtime) -> int:
    """Erase the content of every mail past the retention period; return how many."""
    now = rt.clock()
    before = now - timedelta(days=rt.settings.smtp.keep_content_days)
    total = 0
    while True:
        with transaction(rt.engine) as conn:
            done = outbox.erase_old_content(conn, created_before=before, now=now, limit=BATCH)
        total += done
        if done < BATCH:
            return total
