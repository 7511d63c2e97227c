"""The base of ``Directory``: per-thread connections and the operations that know no layout.

``DirectoryConnection(settings)`` gives each thread its own ldap3 connection, opened on first
use and reopened once if the server dropped it while idle (see ``syncd.directory.adapter``),
times and counts the writes (``syncd.directory.metrics``), lends a job its writer threads to
send independent writes on ``ldap.write_connections`` connections at once (``share_work``), and
offers what ``Directory`` is built from: search, modify and add returning ldap3's result dict,
reading one entry, the upsert of one entry (only the attributes passed are compared and
written) and the creation of a container and its missing ancestors. Entries are named by the caller; nothing here
knows where syncd keeps people, organisations or groups.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, Self, TypeVar

import structlog
from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, Connection
from ldap3.protocol.rfc4527 import post_read_control

from syncd.directory import metrics, names
from syncd.directory.connection import (
    ENTRY_ALREADY_EXISTS,
    NO_SUCH_OBJECT,
    error_for_result,
    open_connection,
    raise_for_result,
    safe_close,
    server_pool,
    translated,
)
from syncd.directory.stamps import StampProfile, post_read_stamp
from syncd.directory.values import attrs_of
from syncd.errors import DirectoryRejected, DirectoryUnavailable
from syncd.settings import LdapSettings

log = structlog.get_logger(__name__)

Upsert = Literal["created", "updated", "unchanged"]
T = TypeVar("T")

# Operations that change the directory: timed and counted in syncd.directory.metrics.
_WRITES = frozenset({"modify", "add", "delete", "password modify"})

# Object classes for the entries ensure_branches creates, by naming attribute.
_CONTAINER_CLASSES = {
    "dc": ["domain"],
    "ou": ["organizationalUnit"],
    "o": ["organization"],
    "c": ["country"],
    "l": ["locality"],
}


class DirectoryConnection:
    """Per-thread ldap3 connections and the generic operations over them (see the module docstring)."""

    def __init__(self, settings: LdapSettings):
        self.settings = settings
        server_pool(settings)   # refuse a bad URL / TLS configuration now, not at first use
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: set[Connection] = set()
        self._writers: ThreadPoolExecutor | None = None

    # -- connections ------------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection this object opened (in any thread), after its writer threads
        have finished what they were given."""
        with self._lock:
            writers, self._writers = self._writers, None
        if writers is not None:
            writers.shutdown(wait=True)
        with self._lock:
            conns, self._connections = self._connections, set()
        for conn in conns:
            safe_close(conn)
        self._local = threading.local()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def share_work(self, worker: Callable[[], None]) -> None:
        """Run ``worker`` in this thread and, at the same time, in ``write_connections - 1``
        writer threads of this object's own, each on its connection; return when every one has.

        For a job with many independent writes (apply's group modifies): each ``worker`` takes
        the next write from the job's shared queue until none is left, so one connection's
        round trip and the client's own work overlap another's time in the server. The writer
        threads (and their connections) live as long as this object, so a job pays for no new
        bind; they run in a copy of the caller's log context. ``worker`` handles its own
        errors: one it raises is raised here, once every thread has returned.
        """
        helpers = self.settings.write_connections - 1
        if helpers < 1:
            worker()
            return
        with self._lock:
            if self._writers is None:
                self._writers = ThreadPoolExecutor(helpers, thread_name_prefix="ldap-writer")
            writers = self._writers
        running = [writers.submit(contextvars.copy_context().run, worker) for _ in range(helpers)]
        try:
            worker()
        finally:
            for done in running:
                done.exception()     # waits; their errors are raised below, ours first
        for done in running:
            done.result()

    def _connection(self) -> tuple[Connection, bool]:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            return conn, False
        conn = open_connection(self.settings)
        self._local.conn = conn
        with self._lock:
            self._connections.add(conn)
        return conn, True

    def _drop(self, conn: Connection) -> None:
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            self._connections.discard(conn)
        safe_close(conn)

    def _run(self, operation: str, dn: str | None, call: Callable[[Connection], T]) -> T:
        """Run ``call`` on this thread's connection; reconnect once if it had gone stale.

        Writes are timed and their failures counted (``syncd.directory.metrics``).
        """
        if operation not in _WRITES:
            return self._run_on_connection(operation, dn, call)
        started = time.perf_counter()
        try:
            result = self._run_on_connection(operation, dn, call)
        except DirectoryUnavailable:
            metrics.WRITE_ERRORS.labels(operation, "unavailable").inc()
            raise
        except Exception:
            metrics.WRITE_ERRORS.labels(operation, "rejected").inc()
            raise
        finally:
            metrics.WRITE_SECONDS.labels(operation).observe(time.perf_counter() - started)
        code = result.get("result") if isinstance(result, dict) else None
        if code not in (None, 0) and code not in metrics.SETTLED_RESULTS:
            metrics.WRITE_ERRORS.labels(operation, "rejected").inc()
        return result

    def _run_on_connection(self, operation: str, dn: str | None, call: Callable[[Connection], T]) -> T:
        for attempt in (1, 2):
            try:
                conn, fresh = self._connection()
            except DirectoryUnavailable as exc:
                log.warning("ldap_unavailable", operation=operation, dn=dn, attempt=attempt, error=str(exc))
                raise
            try:
                with translated(operation, dn):
                    return call(conn)
            except DirectoryUnavailable as exc:
                self._drop(conn)
                if fresh or getattr(exc, "result_code", None) is not None or attempt == 2:
                    log.warning("ldap_unavailable", operation=operation, dn=dn, attempt=attempt, error=str(exc))
                    raise
                log.info("ldap_reconnecting", operation=operation, dn=dn, error=str(exc))
        raise AssertionError("unreachable")  # pragma: no cover

    # low-level operations returning the ldap3 result dict --------------------------------

    def _search(self, base: str, flt: str, scope: Any, attributes: Sequence[str],
                **kwargs: Any) -> tuple[dict, list[dict]]:
        def call(conn: Connection) -> tuple[dict, list[dict]]:
            _, result, response, _ = conn.search(base, flt, scope, attributes=list(attributes), **kwargs)
            return result, [r for r in (response or []) if r.get("type") == "searchResEntry"]
        return self._run("search", base, call)

    def _modify(self, dn: str, changes: dict, controls: list | None = None) -> dict:
        def call(conn: Connection) -> dict:
            _, result, _, _ = conn.modify(dn, changes, controls=controls)
            return result
        return self._run("modify", dn, call)

    def _add(self, dn: str, attributes: dict, controls: list | None = None) -> dict:
        def call(conn: Connection) -> dict:
            _, result, _, _ = conn.add(dn, attributes=attributes, controls=controls)
            return result
        return self._run("add", dn, call)

    def read_entry(self, dn: str, attributes: Sequence[str]) -> dict[str, list[str]] | None:
        """One entry's requested attributes (a missing attribute reads as ``[]``), or None if it does not exist."""
        result, entries = self._search(dn, "(objectClass=*)", BASE, attributes or ["1.1"])
        if result and result.get("result") == NO_SUCH_OBJECT:
            return None
        raise_for_result(result, operation="read", dn=dn)
        if not entries:
            return None
        return attrs_of(entries[0], attributes)

    def _exists(self, dn: str) -> bool:
        return self.read_entry(dn, ["1.1"]) is not None

    # -- health -----------------------------------------------------------------------------

    def ping(self) -> None:
        """Bind (if not yet) and read the root DSE; raise DirectoryUnavailable/Rejected if not."""
        result, _ = self._search("", "(objectClass=*)", BASE, ["1.1"])
        raise_for_result(result, operation="ping", dn="")

    # -- tree -------------------------------------------------------------------------------

    def _naming_contexts(self) -> list[str]:
        result, entries = self._search("", "(objectClass=*)", BASE, ["namingContexts"])
        if result.get("result") != 0 or not entries:
            return []
        return attrs_of(entries[0], ["namingContexts"])["namingContexts"]

    def _ensure_chain(self, dn: str, top: str | None, created: list[str]) -> None:
        """Create ``dn`` and its missing ancestors below ``top`` (an existing or creatable root)."""
        rdns = names.parse_dn(dn)
        depth_top = len(names.parse_dn(top)) if top else len(rdns)
        for depth in range(depth_top, len(rdns) + 1):
            sub = names.format_dn(rdns[len(rdns) - depth:])
            if self._exists(sub):
                continue
            attrs: dict[str, Any] = {}
            classes: list[str] = []
            for attr, value in rdns[len(rdns) - depth]:
                kind = _CONTAINER_CLASSES.get(attr.lower())
                if kind is None or not isinstance(value, str):
                    raise DirectoryRejected(
                        f"cannot create {sub!r}: syncd creates containers named by "
                        f"{', '.join(_CONTAINER_CLASSES)} only; create it yourself")
                classes += [c for c in kind if c not in classes]
                attrs[attr] = value
            attrs["objectClass"] = classes
            result = self._add(sub, attrs)
            if result.get("result") == ENTRY_ALREADY_EXISTS:
                continue
            raise_for_result(result, operation="add", dn=sub)
            created.append(sub)
            log.info("ldap_container_created", dn=sub)

    # -- generic upsert ---------------------------------------------------------------------

    def _same(self, attribute: str, current: list[str], wanted: list[str]) -> bool:
        """Whether ``attribute`` already holds ``wanted`` (``Directory`` compares DNs as DNs)."""
        return sorted(current) == sorted(wanted)

    def _merged(self, attribute: str, current: list[str], wanted: list[str]) -> list[str]:
        """What to write to ``attribute`` holding ``current`` when ``wanted`` is asked
        (``wanted`` itself; a bit mask keeps the bits the caller does not own: ``Directory``)."""
        return wanted

    def _upsert(self, dn: str, rdn_attr: str, rdn_value: str, classes: Sequence[str],
                changes: dict[str, list[str]], create_defaults: Callable[[dict[str, list[str]]], None] | None = None
                ) -> Upsert:
        return self._upsert_stamped(dn, rdn_attr, rdn_value, classes, changes, create_defaults)[0]

    def _upsert_stamped(self, dn: str, rdn_attr: str, rdn_value: str, classes: Sequence[str],
                        changes: dict[str, list[str]],
                        create_defaults: Callable[[dict[str, list[str]]], None] | None = None,
                        stamp: StampProfile | None = None) -> tuple[Upsert, str | None]:
        """``_upsert``, and with ``stamp`` the entry's change stamp once it holds ``changes``.

        The stamp comes from the read that found nothing to change, or from the write's
        post-read control (the server's state right after the write, with the written
        attributes: a stamp is returned only if they are what was asked, so a change another
        client slipped in between our read and our write is never stamped as ours). None when
        the server gave no stamp.
        """
        wanted = list(dict.fromkeys([*changes, "objectClass"]))
        read = wanted + [stamp.attribute] if stamp else wanted
        controls = [post_read_control([*changes, stamp.attribute])] if stamp and stamp.post_read else None
        current = self.read_entry(dn, read)
        if current is None:
            entry = {k: v for k, v in changes.items() if v}
            if not any(k.lower() == rdn_attr.lower() for k in entry):
                entry[rdn_attr] = [rdn_value]
            if create_defaults:
                create_defaults(entry)
            entry["objectClass"] = list(dict.fromkeys(classes))
            result = self._add(dn, entry, controls)
            if result.get("result") != ENTRY_ALREADY_EXISTS:   # else someone was faster: modify
                raise_for_result(result, operation="add", dn=dn)
                log.info("ldap_entry_created", dn=dn, attributes=sorted(entry))
                return "created", self._written_stamp(result, stamp, changes)
            current = self.read_entry(dn, read)
            if current is None:
                raise error_for_result(result, operation="add", dn=dn)
        modlist: dict[str, list] = {}
        have_classes = {c.lower() for c in current.get("objectClass", [])}
        missing = [c for c in classes if c.lower() not in have_classes]
        if missing:
            modlist["objectClass"] = [(MODIFY_ADD, missing)]
        for attr, values in changes.items():
            now = current.get(attr, [])
            values = self._merged(attr, now, values)
            if attr.lower() == rdn_attr.lower():
                if {v.lower() for v in values} != {v.lower() for v in now}:
                    raise DirectoryRejected(f"cannot change the naming attribute {attr} of {dn!r}")
                continue
            if not values:
                if now:
                    modlist[attr] = [(MODIFY_DELETE, [])]
            elif not self._same(attr, now, values):
                modlist[attr] = [(MODIFY_REPLACE, values)]
        if not modlist:
            return "unchanged", ((current.get(stamp.attribute) or [None])[0] if stamp else None)
        result = self._modify(dn, modlist, controls=controls)
        raise_for_result(result, operation="modify", dn=dn)
        log.info("ldap_entry_modified", dn=dn, attributes=sorted(modlist))
        return "updated", self._written_stamp(result, stamp, changes)

    @staticmethod
    def _written_stamp(result: dict, stamp: StampProfile | None, changes: dict[str, list[str]]) -> str | None:
        if stamp is None or not stamp.post_read:
            return None
        value, attrs = post_read_stamp(result, stamp.attribute)
        got = {k.lower(): sorted(v) for k, v in attrs.items()}
        if any(got.get(a.lower(), []) != sorted(v) for a, v in changes.items()):
            return None
        return value
