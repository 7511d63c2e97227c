"""Rate limits that hold across every web process: counted in the database (``used_tokens``).

The per-client token buckets of ``syncd.web.auth`` live in one process's memory; a limit that
must hold whatever process a call reaches (the forgotten-password form: mails sent to a person,
guesses from one address) is counted here instead. A fixed window of ``window`` seconds allows
``limit`` calls: each call claims the first free slot ``limit:<key>:<window number>:<n>`` (n < limit)
as a ``used_tokens`` row. The row's primary key makes two processes claiming the same slot at
once take two different slots or fail; the slots expire with their window and the nonce purge
removes them. Keys are hashed by the caller when they hold personal data.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from syncd.store import tokens
from syncd.store.db import Connection


def take(conn: Connection, key: str, limit: int, window: int, now: datetime) -> float:
    """Claim one call of ``limit`` per ``window`` seconds for ``key`` in ``conn``'s transaction:
    0 if it is allowed, else the seconds until the window ends (for ``Retry-After``)."""
    number = math.floor(now.timestamp() / window)
    ends = datetime.fromtimestamp((number + 1) * window, tz=timezone.utc)
    # The window's slots by name, each found by the primary key: a LIKE on their prefix read every
    # marker held (each signed call's nonce, until it expires).
    slots = [f"limit:{key}:{number}:{n}" for n in range(limit)]
    taken = tokens.existing(conn, slots)
    for slot in slots:
        if slot not in taken and tokens.claim(conn, slot, now, ends + timedelta(seconds=1)):
            return 0.0
    return max(1.0, (ends - now).total_seconds())
