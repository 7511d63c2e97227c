"""Hostile values for every field a client can fill: the corpus ``test_hostile_values`` walks.

Each entry is ``(name, value)``: a ``str`` goes into JSON fields, form fields, query strings,
paths and headers (encoded as UTF-8, lone surrogates included where an encoding can carry
them); a ``bytes`` value is sent as is, where no text decoding has happened yet (form bodies,
query strings, paths, headers, a JSON body). ``tests/directory/test_names.py`` has the LDAP
names' own.
"""

from __future__ import annotations

from urllib.parse import quote_from_bytes

C0 = [(f"C0 U+{c:04X}", f"a{chr(c)}b") for c in range(0x20)]
C1 = [(f"C1 U+{c:04X}", f"a{chr(c)}b") for c in (0x7F, 0x80, 0x85, 0x8D, 0x9B, 0x9F)]

TEXT: list[tuple[str, str]] = [
    ("empty", ""),
    ("blank", "   "),
    ("NUL alone", "\x00"),
    ("NUL inside", "Poste\x00 sans lien"),
    *C0,
    *C1,
    ("ANSI escape", "\x1b[31mrouge\x1b[0m"),
    ("lone high surrogate", "a\ud800b"),
    ("lone low surrogate", "\udfff"),
    ("RTL override", "moc.elpmaxe@\u202eadmin"),
    ("bidi isolate", "\u2066admin\u2069"),
    ("zero-width space", "ad\u200bmin"),
    ("BOM", "\ufeffadmin"),
    ("noncharacter", "a\uffffb"),
    ("line separator", "a\u2028b"),
    ("emoji", "Refus 😀"),
    ("combining", "Rene\u0301e"),
    ("very long", "a" * 100_000),
    ("very long accented", "é" * 5_000),
    ("LDAP filter injection", "*)(uid=*))(|(uid=*"),
    ("LDAP filter escapes", "\\2a\\28\\29\\00\\5c"),
    ("LDAP DN specials", ",=+<>#;\\\" "),
    ("LDAP DN", "cn=admin,dc=example,dc=org"),
    ("SQL quote", "' OR '1'='1"),
    ("SQL statement", "'); DROP TABLE requests; --"),
    ("percent NUL", "%00"),
    ("bad percent", "%ZZ%"),
    ("overlong percent", "%c0%80"),
    ("path traversal", "../../etc/passwd"),
    ("HTML", "<script>alert(1)</script>"),
    ("template", "{{7*7}}{%raw%}"),
    ("CRLF header", "x\r\nSet-Cookie: a=b"),
    ("number words", "NaN"),
    ("huge number", "9" * 40),
    ("negative", "-1"),
    ("e-mail with NUL", "a.charenne@lassuranceretraite.fr\x00"),
    ("e-mail non-ASCII", "jérôme.x@lassuranceretraite.fr"),
]

RAW: list[tuple[str, bytes]] = [
    ("byte FF", b"\xff\xfe"),
    ("overlong UTF-8", b"\xc0\x80"),
    ("UTF-8 surrogate", b"\xed\xa0\x80"),
    ("lone continuation", b"a\x80b"),
    ("latin-1 accent", "Refusé".encode("latin-1")),
    ("NUL byte", b"a\x00b"),
]


def utf8(value: str | bytes) -> bytes:
    """The bytes of a value: lone surrogates as the (invalid) UTF-8 a careless client sends."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def percent(value: str | bytes) -> str:
    """The value percent-encoded for a path segment or a query string."""
    return quote_from_bytes(utf8(value), safe="")


ALL: list[tuple[str, str | bytes]] = [*TEXT, *RAW]
