"""Paged reads: every entry under a base matching a filter, one page in memory at a time.

``Directory.iter_entries`` is this function. The pages are read on a connection of their
own, opened for the iteration and closed when it ends, so nothing here touches the
``Directory``'s per-thread connections and the caller may use it between two entries.

A search that found nothing checks that its base exists (one search of the base, without
paging): 389-DS answers a paged search of a missing base with success and no entry, where
OpenLDAP answers noSuchObject, and "no such branch" must not read as "an empty branch".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import structlog
from ldap3 import BASE, LEVEL, SUBTREE

from syncd.directory import names
from syncd.directory.connection import open_connection, raise_for_result, safe_close, translated
from syncd.directory.values import attrs_of
from syncd.settings import LdapSettings

log = structlog.get_logger(__name__)


def iter_entries(settings: LdapSettings, base: str, filter: str, attributes: Sequence[str], *,
                 scope: Literal["base", "one", "subtree"] = "subtree",
                 page_size: int | None = None) -> Iterator[dict[str, Any]]:
    """What ``Directory.iter_entries`` yields, read with ``settings``."""
    for a in attributes:
        if a not in ("*", "+", "1.1"):
            names.validate_attribute_name(a)
    names.parse_dn(base)
    size = page_size or settings.page_size
    ldap_scope = {"base": BASE, "one": LEVEL, "subtree": SUBTREE}[scope]
    wanted = list(attributes) or ["1.1"]
    conn = None
    try:
        with translated("connect"):
            conn = open_connection(settings)
        cookie: bytes | None = None
        pages = found = 0
        while True:
            with translated("paged search", base):
                _, result, response, _ = conn.search(base, filter, ldap_scope, attributes=wanted,
                                                     paged_size=size, paged_cookie=cookie)
            raise_for_result(result, operation="paged search", dn=base)
            pages += 1
            for item in response or []:
                if item.get("type") == "searchResEntry":
                    found += 1
                    yield {"dn": item["dn"], **attrs_of(item, wanted)}
            try:
                cookie = result["controls"]["1.2.840.113556.1.4.319"]["value"]["cookie"]
            except (KeyError, TypeError):
                cookie = None
            if not cookie:
                break
        if not found:
            with translated("search", base):
                _, result, _, _ = conn.search(base, "(objectClass=*)", BASE, attributes=["1.1"])
            raise_for_result(result, operation="search", dn=base)
        log.debug("ldap_paged_search_done", base=base, pages=pages)
    finally:
        safe_close(conn)
