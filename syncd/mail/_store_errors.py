"""Translate SQLAlchemy errors at the mail adapter's edge (no driver exception escapes it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from syncd.errors import StoreRejected, StoreUnavailable


@contextmanager
def translate_store_errors(action: str) -> Iterator[None]:
    try:
        yield
    except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError) as exc:
        raise StoreUnavailable(f"{action}: {type(exc).__name__}: {_first_line(exc)}") from exc
    except sa_exc.SQLAlchemyError as exc:
        raise StoreRejected(f"{action}: {type(exc).__name__}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0] if text else ""
