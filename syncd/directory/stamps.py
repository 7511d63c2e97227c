"""Change stamps: the operational attribute that changes whenever an entry changes, per server.

The reconciliation (``docs/reconcile.md``) trusts an entry whose stamp is the one syncd recorded
when it last wrote or verified it, and reads again only the others; its incremental runs ask the
server for the entries whose stamp is at or after a cursor. Which attribute, how the server hands
it back with a write, and how a cursor is taken depend on the server: ``stamp_profile(kind)`` is
the one place that knows.

* **OpenLDAP: ``entryCSN``.** Changed by every modify of the entry (a password change, a status
  change), not by the memberof overlay adding ``memberOf`` (measured on 2.5: a group add left the
  person's ``entryCSN`` as it was), nor by a failed bind. Returned with the write by the post-read
  control (RFC 4527). Ordered (``csnOrderingMatch``) and indexed (``olcDbIndex: entryCSN eq``
  serves ``>=``, as syncprov uses it). A CSN starts with the time its write began, so the next
  run's cursor is the later of two bounds below anything the run may have missed: the newest
  stamp it saw less the run's duration and a write's margin (5 s), and syncd's clock at the
  start less that margin and 30 s for the clocks' difference.
* **389 Directory Server: ``entryUSN``** (the USN plugin, which must be enabled:
  ``dsconf INSTANCE plugin usn enable``; ``modifyTimestamp`` has a one-second resolution, too
  coarse to tell syncd's write from another made in the same second). An integer counter per
  backend, ordered (``integerOrderingMatch``), indexed by the plugin; 389-DS offers the post-read
  control. A counter is no clock: the cursor is ``lastusn`` read from the root DSE before the run.
  deploy/389ds/10-plugins.ldif enables the plugin; the MemberOf plugin writes ``memberOf`` into
  the person, which moves its ``entryUSN`` (tests/reconcile/test_every_server.py).
* **Active Directory: ``uSNChanged``**, which is per domain controller, the cursor from the root
  DSE's ``highestCommittedUSN``. A cursor is only valid on the DC whose database counted it: the
  run reads that DC's ``invocationId`` (the root DSE's ``dsServiceName`` names the DC's NTDS
  Settings object, which holds it; it changes too when the DC's database is restored from a
  backup, when its USNs go back) and the cursor is stored with it. A cursor taken on another DC,
  or stored with no DC (before this), is not trusted: the incremental run is a full one, which
  stores a cursor of this DC. The stamps a run records are tied to the DC the same way
  (``server_fingerprint``), so a run on another DC trusts none of them. No post-read control: a
  write returns no stamp, so an entry syncd wrote is compared once at the next run, then trusted.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from syncd.core.model import DirectoryKind
from syncd.directory import names

POST_READ_OID = "1.3.6.1.1.13.2"
# A CSN is taken when a write starts and becomes visible when it commits: a margin for that.
WRITE_MARGIN_SECONDS = 5.0
# When syncd's clock stands in for the server's (NTP keeps them within a second; a margin for worse).
CLOCK_MARGIN_SECONDS = 30.0


@dataclass(frozen=True)
class StampProfile:
    kind: str
    attribute: str                        # read with every entry compared
    post_read: bool                       # returned with a write through the post-read control
    # (newest stamp seen, seconds the run took) -> the next run's cursor; None when the cursor is
    # read from the server before the run instead (``root_dse_cursor``).
    cursor_from_seen: Callable[[str, float], str] | None = None
    # syncd's clock (epoch seconds) when the run started -> a cursor, for stamps that are times.
    cursor_from_clock: Callable[[float], str] | None = None
    root_dse_cursor: str | None = None    # root DSE attribute (prefix) holding the server's last stamp
    # Stamps counted per server (AD): (root DSE attribute naming the server's own entry, that
    # entry's binary GUID identifying the database that counts); a cursor is trusted on it only.
    server_identity: tuple[str, str] | None = None

    def since_filter(self, cursor: str) -> str:
        """The entries changed at or after ``cursor``."""
        return names.filter_ge(self.attribute, cursor)

    def newest(self, stamps: Iterable[str]) -> str | None:
        key = _csn_key if self.kind == DirectoryKind.OPENLDAP.value else _int_key
        return max(stamps, key=key, default=None)

    def later(self, *cursors: str | None) -> str | None:
        """The latest of these cursors (None: unknown)."""
        return self.newest(c for c in cursors if c is not None)


def _csn_key(csn: str) -> str:
    return csn                             # CSNs compare as strings: time first, fixed width


def _int_key(usn: str) -> int:
    try:
        return int(usn)
    except ValueError:
        return -1


def _csn(at: datetime) -> str:
    return at.strftime("%Y%m%d%H%M%S.%fZ") + "#000000#000#000000"


def csn_cursor(newest: str, run_seconds: float) -> str:
    """The run's duration and a write's margin before the newest CSN it saw: whatever changed
    during the run, even an entry read before a later change to another, is at or after it."""
    stamp = datetime.strptime(newest[:22], "%Y%m%d%H%M%S.%fZ").replace(tzinfo=timezone.utc)
    return _csn(stamp - timedelta(seconds=run_seconds + WRITE_MARGIN_SECONDS))


def csn_at(epoch_seconds: float) -> str:
    """The CSN of syncd's clock at the run's start, less the clock and write margins."""
    return _csn(datetime.fromtimestamp(epoch_seconds - CLOCK_MARGIN_SECONDS - WRITE_MARGIN_SECONDS, timezone.utc))


_PROFILES = {
    DirectoryKind.OPENLDAP: StampProfile(DirectoryKind.OPENLDAP.value, "entryCSN", post_read=True,
                                         cursor_from_seen=csn_cursor, cursor_from_clock=csn_at),
    DirectoryKind.DS389: StampProfile(DirectoryKind.DS389.value, "entryUSN", post_read=True,
                                      root_dse_cursor="lastusn"),
    # uSNChanged is per domain controller: the cursor is trusted on the DC whose invocationId it
    # was stored with only (see the module's docstring).
    DirectoryKind.ACTIVE_DIRECTORY: StampProfile(DirectoryKind.ACTIVE_DIRECTORY.value, "uSNChanged",
                                                 post_read=False, root_dse_cursor="highestCommittedUSN",
                                                 server_identity=("dsServiceName", "invocationId")),
}


def server_fingerprint(fingerprint: str, server: str) -> str:
    """``fingerprint`` (``layout_fingerprint``) for stamps counted by ``server`` only: a stamp AD's
    DC gave (uSNChanged) means nothing on another DC, so it is recorded, and trusted, with it."""
    return hashlib.blake2b(f"{fingerprint}\n{server}".encode(), digest_size=12).hexdigest()


def guid_text(raw: bytes) -> str:
    """A binary GUID as AD writes it (its first three fields little-endian): 6f2c…-…"""
    return str(uuid.UUID(bytes_le=raw)) if len(raw) == 16 else raw.hex()


def stamp_profile(kind: DirectoryKind | str) -> StampProfile:
    """How the directory of ``kind`` (``Mappings.directory.kind``) stamps its entries."""
    return _PROFILES[DirectoryKind(kind)]


def post_read_stamp(result: dict | None, attribute: str) -> tuple[str | None, dict[str, list[str]]]:
    """(stamp, attributes) from a write's post-read control, as ldap3 decodes it; (None, {}) without it."""
    controls = (result or {}).get("controls") or {}
    values = ((controls.get(POST_READ_OID) or {}).get("value") or {}).get("result") or {}
    attrs = {k: [str(v) for v in (vs if isinstance(vs, list) else [vs])] for k, vs in values.items()}
    stamp = next((v[0] for k, v in attrs.items() if k.lower() == attribute.lower() and v), None)
    return stamp, attrs


_FINGERPRINTS: dict[int, tuple[object, str]] = {}


def layout_fingerprint(layout: object) -> str:
    """What a recorded equality depends on besides the account's version: the directory layout
    (its mapped attributes, branches, kind) and syncd's release (how attributes are computed).
    A stamp recorded under another fingerprint is not trusted."""
    known = _FINGERPRINTS.get(id(layout))
    if known is not None and known[0] is layout:
        return known[1]
    from syncd import __version__
    dump = layout.model_dump_json() if hasattr(layout, "model_dump_json") else repr(layout)
    fingerprint = hashlib.blake2b(f"{__version__}\n{dump}".encode(), digest_size=12).hexdigest()
    _FINGERPRINTS[id(layout)] = (layout, fingerprint)
    return fingerprint
