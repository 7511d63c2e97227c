"""Range retrieval of big multi-valued attributes (``member;range=0-1499``), as AD serves them.

A Windows domain controller returns at most MaxValRange (1,500 by default) values of one
attribute per read: a bigger ``member`` comes back as ``member;range=0-1499`` and the client asks
for ``member;range=1500-2999``… until the server answers a range ending in ``*``. A server
without the cap (OpenLDAP, Samba 4.17 whatever its query policy says: measured, it returns
5,000 members to a plain read) still honours an explicit range, which is how the adapter reads
member lists on ``directory.kind: active_directory`` (``servers.ServerTraits.ranged_members``)
so the path is the same on both.

Pure helpers: ``ranged_part`` reads one answer, ``read_ranges`` drives the reads through a
callable that does one base search, so paged reads (``reconcile.ldapread``) and the adapter
share the loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from syncd.errors import DirectoryRejected

RANGE_WINDOW = 1500          # AD's default MaxValRange: the window asked for
_RANGE = re.compile(r"^(?P<attr>[^;]+);range=(?P<start>\d+)-(?P<end>\d+|\*)$", re.I)


def ranged(attribute: str, start: int = 0, window: int = RANGE_WINDOW) -> str:
    """The attribute description that asks for ``window`` values from ``start``."""
    return f"{attribute};range={start}-{start + window - 1}"


def attribute_of(description: str) -> str:
    """The attribute type of a description that may ask for a range (``member;range=0-1499``);
    any other option is left in place (and refused by the caller's name check)."""
    match = _RANGE.match(description)
    return match["attr"] if match else description


def ranged_part(attributes: Mapping[str, Any], attribute: str) -> tuple[list[str], int | None] | None:
    """The values of ``attribute`` in one answer holding ``<attribute>;range=a-b``, and where the
    next range starts (None after the last, ``b`` being ``*``); None when there is no range."""
    for name, values in attributes.items():
        match = _RANGE.match(name)
        if match and match["attr"].lower() == attribute.lower():
            vals = list(values) if isinstance(values, (list, tuple)) else [values]
            return vals, None if match["end"] == "*" else int(match["end"]) + 1
    return None


def read_ranges(read: Callable[[str], Mapping[str, Any] | None], attribute: str, start: int = 0,
                first: list[str] | None = None, window: int = RANGE_WINDOW) -> list[str] | None:
    """Every value of ``attribute`` from ``start`` on (after ``first``), reading with
    ``read(description)``, which returns the entry's attributes for one attribute description
    (None: no such entry). A server that answers the plain attribute has sent all of it."""
    values = list(first or [])
    position: int | None = start
    while position is not None:
        got = read(ranged(attribute, position, window))
        if got is None:
            return None
        part = ranged_part(got, attribute)
        if part is None:       # no range: the plain attribute (all of it), or no value at all
            plain = next((v for k, v in got.items() if k.lower() == attribute.lower()), [])
            return values + (list(plain) if isinstance(plain, (list, tuple)) else [plain])
        chunk, following = part
        if following is not None and following <= position:
            raise DirectoryRejected(f"range retrieval of {attribute} did not advance past {position}")
        values += chunk
        position = following
    return values
