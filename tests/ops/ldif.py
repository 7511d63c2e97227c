"""LDIF change records, parsed, for the static checks of ``deploy/`` (nothing applies them:
the production files are applied live with ldapmodify, tests/openldap_setup.py)."""

from __future__ import annotations

import base64
import re


class LdifError(ValueError):
    """Not a change record this parser understands."""


def _unfold(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        if line.startswith(" ") and out:
            out[-1] += line[1:]
        else:
            out.append(line)
    return out


def _attr_of(line: str) -> str | None:
    if line.startswith("#") or ":" not in line:
        return None
    return line.split(":", 1)[0].strip().lower()


def _value_of(line: str) -> str:
    """The value of an LDIF line; ``attr:: <base64>`` is decoded (LDIF's form for values that
    start with a space, a colon or hold non-ASCII text)."""
    value = line.split(":", 1)[1]
    if value.startswith(":"):
        return base64.b64decode(value[1:].strip()).decode("utf-8")
    return value.strip()


def parse_change_records(text: str) -> list[tuple[str, str, list]]:
    """LDIF change records → ``[(dn, "add", [lines]) | (dn, "modify", [(op, attr, [lines])])]``.

    Comments are dropped and folded lines joined. Only what ``ldapmodify`` takes for
    ``cn=config`` is understood: ``changetype: add``, ``delete``, and ``modify`` with
    ``add`` / ``replace`` / ``delete``.
    """
    records: list[tuple[str, str, list]] = []
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        lines = _unfold([l for l in block.split("\n") if l.strip() and not l.startswith("#")])
        if not lines:
            continue
        if not lines[0].lower().startswith("dn:"):
            raise LdifError(f"an LDIF change record must start with dn:, got {lines[0]!r}")
        dn = _value_of(lines[0])
        rest = lines[1:]
        kind = "add"
        if rest and _attr_of(rest[0]) == "changetype":
            kind = _value_of(rest[0]).lower()
            rest = rest[1:]
        if kind in ("add", "delete"):
            records.append((dn, kind, rest))
            continue
        if kind != "modify":
            raise LdifError(f"{dn}: changetype {kind!r} is not supported here (add, modify, delete)")
        ops: list[tuple[str, str, list[str]]] = []
        current: tuple[str, str, list[str]] | None = None
        for line in rest:
            if line.strip() == "-":
                current = None
                continue
            attr = _attr_of(line)
            if current is None:
                if attr not in ("add", "replace", "delete"):
                    raise LdifError(f"{dn}: expected add:/replace:/delete:, got {line!r}")
                current = (attr, _value_of(line).lower(), [])
                ops.append(current)
            else:
                if attr != current[1]:
                    raise LdifError(f"{dn}: {line!r} does not belong to '{current[0]}: {current[1]}'")
                current[2].append(line)
        records.append((dn, "modify", ops))
    return records
