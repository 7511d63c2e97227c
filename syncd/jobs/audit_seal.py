"""Seal new audit rows into the hash chain (``syncd.store.audit``), a batch per transaction."""

from __future__ import annotations

from syncd.runtime import Runtime
from syncd.store import audit
from syncd.store.db import transaction

BATCH = 10_000   # rows per transaction: a big apply pass writes a few thousand


def seal_audit(rt: Runtime) -> int:
    """Seal every row waiting; return how many were sealed."""
    total = 0
    while True:
        with transaction(rt.engine) as conn:
            sealed = audit.seal(conn, limit=BATCH)
        total += sealed
        if sealed < BATCH:
            return total
