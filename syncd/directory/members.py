"""Membership writes to one group: batches bounded by count and bytes, conflicts resolved.

``change_members`` adds values to, or removes them from, a group's member attribute in
batches of at most ``max_values`` values and about ``max_bytes`` bytes; a value already there
(add) or already gone (remove) is success. When the server does not skip those values
itself (no permissive-modify control, or a removal on OpenLDAP), a batch refused with
attributeOrValueExists (20) / noSuchAttribute (16) is split in halves and each half
retried, recursively, so only the values really in conflict are dropped
(k conflicts in a batch of n cost between k and about 2·k·log2(n) extra modifies: each
conflict ends up alone in a refused modify). That is cheap for a few conflicts and
ruinous for many (24,500 scattered conflicts in a 50k group: ~50,000 modifies, 10
minutes), so a refused batch of more than ``SPLIT_LIMIT`` values is instead filtered
against one read of the group's members (once per call; later batches of the same call
are pre-filtered too), and only what still conflicts after that (a race) is split.

It sends nothing itself: it is given one callable that sends a modify of one batch, one that
reads the group's members and one that restores the placeholder, so it knows no connection
and no layout. ``Directory.add_members`` / ``remove_members`` supply them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import structlog

from syncd.directory import names
from syncd.directory.connection import OBJECT_CLASS_VIOLATION, error_for_result

log = structlog.get_logger(__name__)

# A refused batch larger than this is filtered against one read of the group's members;
# a smaller one is split in halves.
SPLIT_LIMIT = 16

# Rough BER size of a modify request around its values, and per value.
_REQUEST_OVERHEAD = 96
_VALUE_OVERHEAD = 6


@dataclass(frozen=True)
class MemberChange:
    """What ``add_members`` / ``remove_members`` did to one group."""

    group_dn: str
    action: Literal["add", "remove"]
    requested: int      # distinct DNs asked for (the placeholder left out)
    conflicts: int      # values the server reported already present (add) / absent (remove)
    operations: int     # modify requests sent, split retries included
    permissive: bool    # sent with the permissive-modify control
    member_reads: int = 0   # reads of the group's members (done when a big batch conflicts)

    @property
    def changed(self) -> int | None:
        """Values actually changed; None when permissive modify hid the conflicts from us.

        (OpenLDAP 2.5 honours the control for adds only: removals always report conflicts.)
        """
        return None if self.permissive and self.action == "add" else self.requested - self.conflicts


def _chunks(values: list[str], max_values: int, max_bytes: int, fixed: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = fixed
    for v in values:
        cost = len(v.encode("utf-8")) + _VALUE_OVERHEAD
        if chunk and (len(chunk) >= max_values or size + cost > max_bytes):
            yield chunk
            chunk, size = [], fixed
        chunk.append(v)
        size += cost
    if chunk:
        yield chunk


def change_members(dn: str, attr: str, values: list[str], *, adding: bool, permissive: bool,
                   conflict: Callable[[dict], bool], modify: Callable[[list[str]], dict], read_members: Callable[[], set[str]],
                   restore_placeholder: Callable[[], object],
                   max_values: int, max_bytes: int) -> MemberChange:
    """Add (``adding``) or remove ``values`` (distinct, placeholder left out) of group ``dn``.

    ``modify(chunk)`` sends one modify of ``attr`` carrying ``chunk`` and returns ldap3's
    result dict; ``read_members()`` returns the group's members as normalised DNs;
    ``restore_placeholder()`` adds the placeholder back to a group that lost it. Batches hold
    at most ``max_values`` values and about ``max_bytes`` bytes. ``conflict(result)``: whether a
    refused modify means "a value of the batch is already there" (add) / "already gone"
    (remove): ``servers.ServerTraits.member_conflict``.
    """
    fixed = _REQUEST_OVERHEAD + len(dn.encode("utf-8")) + len(attr)
    operations = conflicts = reads = 0
    current: set[str] | None = None    # the group's members, read once if conflicts pile up

    def settled(value: str) -> bool:
        """Already in the wanted state, as far as the members read say."""
        assert current is not None
        return (names.normalise_dn(value) in current) == adding

    def apply(chunk: list[str], *, filtered: bool = False, placeholder_retry: bool = True) -> None:
        nonlocal operations, conflicts, reads, current
        result = modify(chunk)
        operations += 1
        code = result.get("result")
        if code == 0:
            return
        if conflict(result):
            if len(chunk) == 1:
                conflicts += 1
                return
            if len(chunk) > SPLIT_LIMIT and not filtered:
                # Halving costs about two modifies per conflict and level, each one a
                # rewrite of the group: with many conflicts one read of the members is
                # far cheaper (measured: 24,500 scattered conflicts in a 50k group took
                # ~50,000 modifies and 10 minutes by halving alone).
                if current is None:
                    current = read_members()
                    reads += 1
                rest = [v for v in chunk if not settled(v)]
                conflicts += len(chunk) - len(rest)
                if rest:
                    apply(rest, filtered=True)
                return
            log.debug("ldap_member_batch_split", dn=dn, size=len(chunk))
            mid = len(chunk) // 2
            apply(chunk[:mid], filtered=filtered)
            apply(chunk[mid:], filtered=filtered)
            return
        if code == OBJECT_CLASS_VIOLATION and not adding and placeholder_retry:
            # the group lost its placeholder: removing its last member would empty it
            restore_placeholder()
            operations += 1
            apply(chunk, filtered=filtered, placeholder_retry=False)
            return
        raise error_for_result(result, operation="add members" if adding else "remove members", dn=dn)

    for chunk in _chunks(values, max_values, max_bytes, fixed):
        if current is not None:     # conflicts seen already: skip what is known settled
            rest = [v for v in chunk if not settled(v)]
            conflicts += len(chunk) - len(rest)
            chunk = rest
        if chunk:
            apply(chunk, filtered=current is not None)
    change = MemberChange(dn, "add" if adding else "remove", len(values), conflicts,
                          operations, permissive, reads)
    if values:
        log.info("ldap_members_added" if adding else "ldap_members_removed", dn=dn,
                 requested=change.requested, conflicts=conflicts, operations=operations,
                 member_reads=reads, permissive=permissive)
    return change
