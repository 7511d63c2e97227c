"""Wording problems for the operator: ``<file>:<line>: <where>: <plain sentence>``.

Where a problem is shown (file path, ``applications[3].roles[0]``), how a value is named
("a number", "text"), "did you mean" suggestions, and one plain sentence per kind of pydantic
validation error, using the models' declared types to list the keys allowed at a place.
"""

from __future__ import annotations

import difflib
import re
import types
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from syncd.core.mappings import Mappings

Loc = tuple[Any, ...]

_PATTERN_HINTS = {
    "key": "use lowercase letters, digits, '_', '.' and '-', starting with a letter or digit, "
           "at most 64 characters",
    "code": "use letters, digits, '_', '.' and '-', starting with a letter or digit, "
            "at most 64 characters",
    "ldap": "an LDAP attribute name is a letter followed by letters, digits or '-'",
}


@dataclass(frozen=True)
class _Problem:
    file: str
    line: int | None
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text}" if self.line else f"{self.file}: {self.text}"


def _display(path: Path) -> str:
    """The path as shown in problems: relative to the working folder when it lies inside it."""
    if path.is_absolute():
        with suppress(ValueError, OSError):
            return path.relative_to(Path.cwd()).as_posix()
    return path.as_posix()


def _path(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _did_you_mean(word: Any, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple | set):
        return "a list"
    return f"a {type(value).__name__} value"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- pydantic errors as sentences -------------------------------------------------------------


def _unwrap(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _type_at(loc: Loc) -> Any:
    """The declared type at ``loc`` inside ``Mappings``, or None when the path leaves the models."""
    tp: Any = Mappings
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is tuple and isinstance(part, int):
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return None
    return _unwrap(tp)


def _allowed_keys(loc: Loc) -> tuple[str, ...]:
    tp = _type_at(loc)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tuple(tp.model_fields)
    return ()


def _sentence(err: Any, loc: Loc) -> str:
    """A plain sentence for one pydantic error (the path is added by the caller)."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    field = loc[-1] if loc else None
    found = f"{_kind(value)} {_short(value)}" if value is not None else _kind(value)
    if kind == "string_type":
        hint = "; put it in quotes" if isinstance(value, bool | int | float) else ""
        return f"expected text, found {found}{hint}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, found {found}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, found {found}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping (key: value lines), found {found}"
    if kind in ("tuple_type", "list_type", "iterable_type"):
        return f"expected a list (one '- item' per line), found {found}"
    if kind == "greater_than_equal":
        return f"{_short(value)} is too small: it must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"{_short(value)} is too large: it must be at most {ctx.get('le')}"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must be at least {n} characters long"
    if kind == "string_too_long":
        return f"is too long: at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"must list at least {n} item{'s' if n != 1 else ''}"
    if kind in ("literal_error", "enum"):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return (f"{_short(value)} is not allowed{_did_you_mean(value, choices)}; "
                f"expected {ctx.get('expected')}")
    if kind == "string_pattern_mismatch":
        hint = _PATTERN_HINTS.get(field, f"it must match {ctx.get('pattern')}") \
            if isinstance(field, str) else f"it must match {ctx.get('pattern')}"
        return f"{_short(value)} is not valid: {hint}"
    if kind == "recursion_loop":
        return "this value refers to itself"
    msg = str(err.get("msg", kind))
    return msg[:1].lower() + msg[1:]
