"""THE one place where distinguished names and search filters are built.

Everything here is a pure function over strings; no module outside this one concatenates a
DN or a filter by hand.

* RDN values are escaped per RFC 4514 (``escape_rdn_value``). ldap3's ``escape_rdn`` has gaps
  (an empty value crashes it, NUL is not escaped, a lone space is mishandled), so we do not
  use it.
* Filter values are escaped per RFC 4515 (``escape_filter_value``): ``* ( ) \\`` and NUL, and
  every byte of a non-ASCII character, as ``\\XX``.
* DNs are compared through ``normalise_dn``. The rule, documented once here:
  attribute types are lower-cased; values are unescaped, NFC-normalised, lower-cased, with
  leading/trailing spaces dropped and inner runs of spaces folded into one (the
  "insignificant space" handling of RFC 4518); then re-escaped canonically; the AVAs of a
  multi-valued RDN are sorted; RDNs are joined with ``,`` and no spaces. This is how the
  server itself compares names whose naming attributes use case-insensitive matching
  (``uid``, ``cn``, ``o``, ``ou``, ``dc`` all do), so two DNs the server sees as equal
  normalise to the same string — and the normalised form is itself a valid DN the server
  accepts for the same entry.
"""

from __future__ import annotations

import functools

import re
import unicodedata
from typing import Literal

from syncd.errors import DirectoryRejected
from syncd.mappings import DirectoryLayout

__all__ = [
    "InvalidName",
    "escape_rdn_value",
    "escape_filter_value",
    "validate_attribute_name",
    "parse_dn",
    "format_dn",
    "normalise_dn",
    "rdn",
    "child_dn",
    "branch_dn",
    "person_dn",
    "organisation_dn",
    "group_dn",
    "placeholder_dn",
    "filter_eq",
    "filter_present",
    "filter_and",
    "filter_or",
    "filter_not",
]

Branch = Literal["people", "organisations", "groups"]


class InvalidName(DirectoryRejected, ValueError):
    """A value cannot be used in a DN or a filter (empty, not text, malformed)."""


# ---------------------------------------------------------------------------------------------
# Attribute names

_DESCR = r"[A-Za-z][A-Za-z0-9-]*"
_NUMERICOID = r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+"
_ATTRIBUTE_RE = re.compile(rf"^(?:{_DESCR}|{_NUMERICOID})(?:;[A-Za-z0-9-]+)*$")
_TYPE_RE = re.compile(rf"^(?:{_DESCR}|{_NUMERICOID})$")


def validate_attribute_name(name: str) -> str:
    """Return ``name`` if it is an attribute description (descr or numeric OID, options allowed).

    Raises ``InvalidName`` otherwise: an attribute name is never escaped, it is validated.
    """
    if not isinstance(name, str) or not _ATTRIBUTE_RE.match(name):
        raise InvalidName(f"not a valid LDAP attribute name: {name!r}")
    return name


# ---------------------------------------------------------------------------------------------
# RFC 4514 values

# RFC 4514 requires these escaped anywhere, and '#' only in front; ldap3's DN parser insists on
# '#' everywhere, and escaping it is always valid, so we escape it everywhere.
_RDN_SPECIALS = frozenset('\\,+"<>;=#')
# A value with none of them, no control character and no space at either end is its own escape
# (most values: account ids, group names); apply names thousands of members per pass.
_PLAIN_RDN_VALUE = re.compile(r'[^ \\,+"<>;=#\x00-\x1f\x7f]([^\\,+"<>;=#\x00-\x1f\x7f]*[^ \\,+"<>;=#\x00-\x1f\x7f])?')


def _as_text(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidName(f"{what} must be a string, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidName(f"{what} is not valid Unicode text: {value!r}") from exc
    return value


def escape_rdn_value(value: str) -> str:
    """Escape one attribute value for use in an RDN (RFC 4514 section 2.4).

    ``\\ , + " < > ; = #`` get a backslash; NUL and other control characters become
    ``\\XX``; a leading or trailing space gets a backslash; non-ASCII characters are kept as
    they are (the DN string is UTF-8). An empty value is refused: it names nothing.
    """
    _as_text(value, "an RDN value")
    if value == "":
        raise InvalidName("an RDN value may not be empty")
    if _PLAIN_RDN_VALUE.fullmatch(value):
        return value
    out = []
    last = len(value) - 1
    for i, ch in enumerate(value):
        if ch in _RDN_SPECIALS:
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\{ord(ch):02X}")
        elif ch == " " and (i == 0 or i == last):
            out.append("\\ ")
        else:
            out.append(ch)
    return "".join(out)


_HEX = frozenset("0123456789abcdefABCDEF")


def _decode_escaped(text: str, start: int, stop_chars: str) -> tuple[str, int, bool]:
    """Read an RFC 4514 string value from ``text[start:]`` up to an unescaped stop char.

    Returns (value, index after it, whether the last character was escaped).
    """
    buf = bytearray()
    i = start
    n = len(text)
    last_escaped = False
    trailing_unescaped_spaces = 0
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                raise InvalidName(f"dangling backslash in DN {text!r}")
            nxt = text[i + 1]
            if nxt in _HEX and i + 2 < n and text[i + 2] in _HEX:
                buf.append(int(text[i + 1 : i + 3], 16))
                i += 3
            elif nxt in '\\,+"<>;= #':
                buf.extend(nxt.encode())
                i += 2
            else:
                raise InvalidName(f"invalid escape \\{nxt} in DN {text!r}")
            last_escaped = True
            trailing_unescaped_spaces = 0
            continue
        if ch in stop_chars:
            break
        if ch in '"<>;' or ch == "\x00":
            raise InvalidName(f"unescaped {ch!r} in DN {text!r}")
        buf.extend(ch.encode("utf-8"))
        last_escaped = False
        trailing_unescaped_spaces = trailing_unescaped_spaces + 1 if ch == " " else 0
        i += 1
    if trailing_unescaped_spaces:  # lenient: unescaped trailing spaces are not part of it
        del buf[len(buf) - trailing_unescaped_spaces :]
    try:
        return buf.decode("utf-8"), i, last_escaped
    except UnicodeDecodeError as exc:
        raise InvalidName(f"DN {text!r} holds escaped bytes that are not UTF-8") from exc


def parse_dn(dn: str) -> list[list[tuple[str, str | bytes]]]:
    """Split a DN into RDNs, each a list of (attribute type, unescaped value) pairs.

    Strict about escapes, lenient about spaces around ``=``, ``,`` and ``+`` (as operators
    write them in YAML). A ``#hex`` value (BER, RFC 4514 2.4) is returned as ``bytes``.
    An empty string is the empty DN (the root DSE) and gives ``[]``.
    """
    _as_text(dn, "a DN")
    rdns: list[list[tuple[str, str | bytes]]] = []
    i, n = 0, len(dn)
    if dn.strip() == "":
        return []
    current: list[tuple[str, str | bytes]] = []
    while True:
        while i < n and dn[i] == " ":
            i += 1
        eq = dn.find("=", i)
        if eq < 0:
            raise InvalidName(f"malformed DN (an RDN without '='): {dn!r}")
        attr = dn[i:eq].strip()
        if not _TYPE_RE.match(attr):
            raise InvalidName(f"malformed DN (bad attribute type {attr!r}): {dn!r}")
        i = eq + 1
        while i < n and dn[i] == " ":
            i += 1
        if i < n and dn[i] == "#":
            m = re.match(r"#(?:[0-9A-Fa-f]{2})+", dn[i:])
            if not m:
                raise InvalidName(f"malformed #hex value in DN {dn!r}")
            value: str | bytes = bytes.fromhex(m.group(0)[1:])
            i += m.end()
            while i < n and dn[i] == " ":
                i += 1
        else:
            value, i, _ = _decode_escaped(dn, i, ",+")
        current.append((attr, value))
        if i >= n:
            rdns.append(current)
            return rdns
        sep = dn[i]
        i += 1
        if sep == ",":
            rdns.append(current)
            current = []
        elif sep != "+":  # pragma: no cover - _decode_escaped stops only on , or +
            raise InvalidName(f"malformed DN {dn!r}")
        if i >= n:
            raise InvalidName(f"malformed DN (ends with {sep!r}): {dn!r}")


def _fold_spaces(value: str) -> str:
    # RFC 4518 insignificant space handling: drop leading/trailing, fold inner runs to one.
    return re.sub(r" {2,}", " ", value).strip(" ")


def format_dn(rdns: list[list[tuple[str, str | bytes]]]) -> str:
    """The inverse of ``parse_dn``: RDNs of (type, value) pairs back into an escaped DN."""
    return ",".join(
        "+".join(f"{validate_attribute_name(attr)}=" + ("#" + value.hex() if isinstance(value, bytes)
                                                        else escape_rdn_value(value))
                 for attr, value in rdn_)
        for rdn_ in rdns)


# DNs made only of these characters need no unescaping: the fast path of normalise_dn.
_PLAIN_DN = re.compile(r"^[A-Za-z0-9 ,=._@:'()/*!?%&$~^`{}|\[\]-]+$")


def _normalise_plain(dn: str) -> str | None:
    out = []
    for part in dn.split(","):
        attr, eq, value = part.partition("=")
        attr = attr.strip()
        if not eq or "=" in value or not _TYPE_RE.match(attr):
            return None
        value = _fold_spaces(value.lower())
        if not value:
            return None
        out.append(f"{attr.lower()}={value}")
    return ",".join(out)


def normalise_dn(dn: str) -> str:
    """The canonical, comparable form of ``dn`` (see the module docstring for the rule)."""
    if isinstance(dn, str) and _PLAIN_DN.match(dn):
        fast = _normalise_plain(dn)     # most DNs: no escapes, ASCII; same result, 10x faster
        if fast is not None:
            return fast
    return _normalise_parsed(dn)


def _normalise_parsed(dn: str) -> str:
    out = []
    for rdn_ in parse_dn(dn):
        avas = []
        for attr, value in rdn_:
            if isinstance(value, bytes):
                text = "#" + value.hex()
            else:
                folded = _fold_spaces(unicodedata.normalize("NFC", value).lower())
                # a value of spaces only folds to one space, so the result stays a valid DN
                text = escape_rdn_value(folded or " ") if value else ""
            avas.append(f"{attr.lower()}={text}")
        out.append("+".join(sorted(avas)))
    return ",".join(out)


# ---------------------------------------------------------------------------------------------
# DN builders


def rdn(attribute: str, value: str) -> str:
    """``attribute=<escaped value>`` — one single-valued RDN."""
    return f"{validate_attribute_name(attribute)}={escape_rdn_value(value)}"


def _checked(dn: str) -> str:
    """``dn`` once ``parse_dn`` accepts it. Cached: the same few bases and branches are the
    parents of every DN built, and parsing them each time cost more than the rest of a batch."""
    if not isinstance(dn, str):
        parse_dn(dn)    # raises the InvalidName a caller expects (and a list is not hashable)
    return _checked_text(dn)


@functools.lru_cache(maxsize=256)
def _checked_text(dn: str) -> str:
    parse_dn(dn)
    return dn


def child_dn(attribute: str, value: str, parent: str) -> str:
    """The DN of the entry named ``attribute=value`` right under ``parent``."""
    _checked(parent)  # refuse a malformed parent early
    return f"{rdn(attribute, value)},{parent}" if parent.strip() else rdn(attribute, value)


def _join(relative: str, base: str) -> str:
    relative = relative.strip()
    _checked(relative)
    _checked(base)
    return f"{relative},{base.strip()}" if relative else base.strip()


def branch_dn(layout: DirectoryLayout, which: Branch) -> str:
    """The DN of the ``people``, ``organisations`` or ``groups`` branch of ``layout``."""
    if which not in ("people", "organisations", "groups"):
        raise InvalidName(f"unknown branch {which!r}: expected people, organisations or groups")
    return _join(getattr(layout, which).branch, layout.base_dn)


def person_dn(layout: DirectoryLayout, account_id: str) -> str:
    """``uid=<account id>,ou=people,<base>`` (attribute and branch from the layout)."""
    return child_dn(layout.people.rdn_attribute, account_id, branch_dn(layout, "people"))


def organisation_dn(layout: DirectoryLayout, code: str) -> str:
    """``o=<organisation code>,ou=organisations,<base>``."""
    return child_dn(layout.organisations.rdn_attribute, code, branch_dn(layout, "organisations"))


def group_dn(layout: DirectoryLayout, group_name: str) -> str:
    """``cn=<group name>,ou=groups,<base>``."""
    return child_dn(layout.groups.rdn_attribute, group_name, branch_dn(layout, "groups"))


def placeholder_dn(layout: DirectoryLayout) -> str:
    """The placeholder member every role group keeps (validated, as configured)."""
    parse_dn(layout.groups.placeholder_member)
    return layout.groups.placeholder_member.strip()


# ---------------------------------------------------------------------------------------------
# RFC 4515 filters

_FILTER_ESCAPES = {"*": "\\2a", "(": "\\28", ")": "\\29", "\\": "\\5c", "\x00": "\\00"}


def escape_filter_value(value: str) -> str:
    """Escape an assertion value for a filter: ``* ( ) \\`` NUL and non-ASCII become ``\\XX``."""
    _as_text(value, "a filter value")
    out = []
    for ch in value:
        if ch in _FILTER_ESCAPES:
            out.append(_FILTER_ESCAPES[ch])
        elif ord(ch) > 0x7E or ord(ch) < 0x20:
            out.extend(f"\\{b:02x}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out)


def filter_eq(attribute: str, value: str) -> str:
    """``(attribute=value)`` with the value escaped."""
    return f"({validate_attribute_name(attribute)}={escape_filter_value(value)})"


def filter_ge(attribute: str, value: str) -> str:
    """``(attribute>=value)`` with the value escaped (the attribute's ORDERING rule decides)."""
    return f"({validate_attribute_name(attribute)}>={escape_filter_value(value)})"


def filter_present(attribute: str) -> str:
    """``(attribute=*)``."""
    return f"({validate_attribute_name(attribute)}=*)"


def filter_at_least(attribute: str, value: int) -> str:
    """``(attribute>=value)`` for an integer value."""
    return f"({validate_attribute_name(attribute)}>={int(value)})"


def _check_filter(f: str) -> str:
    if not isinstance(f, str) or not (f.startswith("(") and f.endswith(")")):
        raise InvalidName(f"not a parenthesised filter: {f!r}")
    return f


def _combine(operator: str, name: str, filters: tuple[str, ...]) -> str:
    if not filters:
        raise InvalidName(f"{name} needs at least one filter")
    checked = [_check_filter(f) for f in filters]
    return checked[0] if len(checked) == 1 else f"({operator}" + "".join(checked) + ")"


def filter_and(*filters: str) -> str:
    """``(&f1f2…)``; one filter is returned as is. At least one is required."""
    return _combine("&", "filter_and", filters)


def filter_or(*filters: str) -> str:
    """``(|f1f2…)``; one filter is returned as is. At least one is required."""
    return _combine("|", "filter_or", filters)


def filter_not(f: str) -> str:
    """``(!f)``."""
    return "(!" + _check_filter(f) + ")"
