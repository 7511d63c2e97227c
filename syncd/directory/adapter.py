"""The directory adapter: everything syncd reads from and writes to LDAP goes through here.

``Directory(settings, layout)`` is safe to share between threads: each thread gets its own
ldap3 connection (``SAFE_SYNC``), opened on first use and reopened once, transparently, if
the server dropped it while idle (every operation here is idempotent, so replaying one
whose answer was lost is harmless). Beyond that one reconnect nothing is retried here:
``DirectoryUnavailable`` goes up and the caller's backoff decides.

Decisions worth knowing:

* **Role groups are ``groupOfNames`` and always hold a placeholder member**
  (``layout.groups.placeholder_member``, ``cn=syncd-placeholder,<base>`` by default):
  groupOfNames requires one ``member``, so a role whose last person leaves stays a valid
  entry. The placeholder names no entry (nothing is created there: no memberOf values pile
  up on it, and the memberof overlay is set to ignore dangling names); it is added when the
  group is created, never removed, and left out of ``members_of_group``.
* **Membership writes are batched per group**: one modify carries up to
  ``settings.batch_size`` values and at most ``settings.max_request_bytes`` bytes
  (389-DS refuses requests over 2 MiB by default). They are idempotent: adding a value
  already there, or removing one already gone, is success. With the permissive-modify
  control (1.2.840.113556.1.4.1413) the server itself skips those values. Without it
  (``permissive_modify: off``, or a server that does not support it such as 389-DS), a
  batch refused with attributeOrValueExists (20) / noSuchAttribute (16) is split in halves
  and each half retried, recursively, so only the values really in conflict are dropped
  (k conflicts in a batch of n cost between k and about 2·k·log2(n) extra modifies: each
  conflict ends up alone in a refused modify). That is cheap for a few conflicts and
  ruinous for many (24,500 scattered conflicts in a 50k group: ~50,000 modifies, 10
  minutes), so a refused batch of more than ``SPLIT_LIMIT`` values is instead filtered
  against one read of the group's members (once per call; later batches of the same call
  are pre-filtered too), and only what still conflicts after that (a race) is split.
  Callers should plan membership changes from ``members_of_group`` (desired vs actual) so
  that conflicts stay rare. Measured on OpenLDAP
  2.5.13: the control makes adding a present value succeed, but deleting an absent value
  still answers noSuchAttribute (16), so removals take the split path there as well.
* **``permissive_modify: auto``** looks for the control in the root DSE's supportedControl
  once; OpenLDAP supports the control without advertising it, so when it is not listed a
  harmless probe settles it: a modify of a DN that does not exist, carrying the control as
  critical. A server that does not know the control answers unavailableCriticalExtension
  (12) before anything else; one that does answers noSuchObject (32).
* **DNs are compared through ``names.normalise_dn``** (lower-cased types and values,
  RFC 4518 space folding, canonical escaping, sorted multi-valued RDNs). The DN sets this
  class returns (``members_of_group``, ``groups_of_person``) are normalised; DNs written
  to the server keep the form the caller gave (the server compares with its own
  distinguishedNameMatch anyway).
* **Only what is passed is written**: ``upsert_account`` and friends touch the attributes
  named in the call and nothing else, so values owned by someone else are never changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar

import structlog
from ldap3 import BASE, LEVEL, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, SUBTREE, Connection
from ldap3.extend.standard.modifyPassword import ModifyPassword

from syncd.directory import metrics, names
from syncd.directory.connection import (
    ATTRIBUTE_OR_VALUE_EXISTS,
    ENTRY_ALREADY_EXISTS,
    INVALID_CREDENTIALS,
    NO_SUCH_ATTRIBUTE,
    NO_SUCH_OBJECT,
    OBJECT_CLASS_VIOLATION,
    NoSuchEntry,
    error_for_result,
    open_connection,
    raise_for_result,
    safe_close,
    server_pool,
    translated,
)
from syncd.errors import DirectoryRejected, DirectoryUnavailable
from syncd.mappings import DirectoryLayout
from syncd.settings import LdapSettings

log = structlog.get_logger(__name__)

PERMISSIVE_MODIFY_OID = "1.2.840.113556.1.4.1413"
UNAVAILABLE_CRITICAL_EXTENSION = 12
DISABLED = "disabled"
ACTIVE = "active"

Upsert = Literal["created", "updated", "unchanged"]
AttrValue = str | bool | int | datetime | None
AttrValues = AttrValue | Sequence[AttrValue]
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


# ---------------------------------------------------------------------------------------------
# value helpers


def _one_value(value: AttrValue) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise DirectoryRejected(f"a datetime written to LDAP must be timezone-aware: {value!r}")
        return value.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ")
    if isinstance(value, str):
        return value if value != "" else None
    raise DirectoryRejected(f"cannot write a {type(value).__name__} to LDAP: {value!r}")


def ldap_values(value: AttrValues) -> list[str]:
    """A Python value as a list of LDAP string values; None, "" and [] give []."""
    if isinstance(value, (list, tuple, set, frozenset)):
        out = [_one_value(v) for v in value]
    else:
        out = [_one_value(value)]
    seen: dict[str, None] = {}
    for v in out:
        if v is not None:
            seen.setdefault(v, None)
    return list(seen)


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


def _attrs_of(entry: Mapping[str, Any], wanted: Iterable[str]) -> dict[str, list[str]]:
    got = entry.get("attributes") or {}
    out: dict[str, list[str]] = {}
    for name in wanted:
        if name in ("*", "+", "1.1"):
            continue
        value = got.get(name, [])   # ldap3's CaseInsensitiveDict
        out[name] = list(value) if isinstance(value, (list, tuple)) else [value]
    if any(w in ("*", "+") for w in wanted):
        for name, value in got.items():
            if not any(name.lower() == k.lower() for k in out):
                out[name] = list(value) if isinstance(value, (list, tuple)) else [value]
    return out


class Directory:
    """syncd's view of the LDAP directory (see the module docstring)."""

    def __init__(self, settings: LdapSettings, layout: DirectoryLayout):
        self.settings = settings
        self.layout = layout
        server_pool(settings)   # refuse a bad URL / TLS configuration now, not at first use
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: set[Connection] = set()
        self._permissive: bool | None = None
        self._placeholder_norm = names.normalise_dn(names.placeholder_dn(layout))

    # -- connections ------------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection this object opened (in any thread)."""
        with self._lock:
            conns, self._connections = self._connections, set()
        for conn in conns:
            safe_close(conn)
        self._local = threading.local()

    def __enter__(self) -> "Directory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    def _add(self, dn: str, attributes: dict) -> dict:
        def call(conn: Connection) -> dict:
            _, result, _, _ = conn.add(dn, attributes=attributes)
            return result
        return self._run("add", dn, call)

    def _read_entry(self, dn: str, attributes: Sequence[str]) -> dict[str, list[str]] | None:
        """The named attributes of one entry, or None if it does not exist."""
        result, entries = self._search(dn, "(objectClass=*)", BASE, attributes or ["1.1"])
        if result and result.get("result") == NO_SUCH_OBJECT:
            return None
        raise_for_result(result, operation="read", dn=dn)
        if not entries:
            return None
        return _attrs_of(entries[0], attributes)

    def _exists(self, dn: str) -> bool:
        return self._read_entry(dn, ["1.1"]) is not None

    def read_entry(self, dn: str, attributes: Sequence[str]) -> dict[str, list[str]] | None:
        """One entry's requested attributes (a missing attribute reads as ``[]``), or None."""
        return self._read_entry(dn, attributes)

    # -- health -----------------------------------------------------------------------------

    def ping(self) -> None:
        """Bind (if not yet) and read the root DSE; raise DirectoryUnavailable/Rejected if not."""
        result, _ = self._search("", "(objectClass=*)", BASE, ["1.1"])
        raise_for_result(result, operation="ping", dn="")

    def supports_permissive_modify(self) -> bool:
        """Whether membership writes carry the permissive-modify control (decided once)."""
        if self._permissive is None:
            mode = self.settings.permissive_modify
            if mode != "auto":
                self._permissive = mode == "on"
            else:
                self._permissive = self._detect_permissive()
            log.info("ldap_permissive_modify", enabled=self._permissive, mode=mode)
        return self._permissive

    def _detect_permissive(self) -> bool:
        result, entries = self._search("", "(objectClass=*)", BASE, ["supportedControl"])
        raise_for_result(result, operation="read root DSE", dn="")
        controls = _attrs_of(entries[0], ["supportedControl"])["supportedControl"] if entries else []
        if PERMISSIVE_MODIFY_OID in controls:
            return True
        probe = names.child_dn("cn", "syncd-permissive-modify-probe", self.layout.base_dn)
        # A question, not a write: its refusals are answers, kept out of the write metrics.
        result = self._run("probe", probe, lambda conn: conn.modify(
            probe, {"description": [(MODIFY_REPLACE, ["probe"])]},
            controls=[(PERMISSIVE_MODIFY_OID, True, None)])[1])
        return result.get("result") != UNAVAILABLE_CRITICAL_EXTENSION

    # -- tree -------------------------------------------------------------------------------

    def _naming_contexts(self) -> list[str]:
        result, entries = self._search("", "(objectClass=*)", BASE, ["namingContexts"])
        if result.get("result") != 0 or not entries:
            return []
        return _attrs_of(entries[0], ["namingContexts"])["namingContexts"]

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

    def ensure_branches(self) -> list[str]:
        """Create the base entry (and missing ancestors) and the three branches; idempotent.

        Returns the DNs created (empty when everything was there).
        """
        base = self.layout.base_dn.strip()
        base_norm = names.normalise_dn(base)
        top = None
        for ctx in self._naming_contexts():
            ctx_norm = names.normalise_dn(ctx) if ctx else ""
            if ctx_norm and (base_norm == ctx_norm or base_norm.endswith("," + ctx_norm)):
                top = ctx
                break
        created: list[str] = []
        self._ensure_chain(base, top, created)
        for which in ("people", "organisations", "groups"):
            self._ensure_chain(names.branch_dn(self.layout, which), base, created)
        return created

    # -- generic upsert ---------------------------------------------------------------------

    def _upsert(self, dn: str, rdn_attr: str, rdn_value: str, classes: Sequence[str],
                changes: dict[str, list[str]], create_defaults: Callable[[dict[str, list[str]]], None] | None = None
                ) -> Upsert:
        wanted = list(dict.fromkeys([*changes, "objectClass"]))
        current = self._read_entry(dn, wanted)
        if current is None:
            entry = {k: v for k, v in changes.items() if v}
            if not any(k.lower() == rdn_attr.lower() for k in entry):
                entry[rdn_attr] = [rdn_value]
            if create_defaults:
                create_defaults(entry)
            entry["objectClass"] = list(dict.fromkeys(classes))
            result = self._add(dn, entry)
            if result.get("result") != ENTRY_ALREADY_EXISTS:   # else someone was faster: modify
                raise_for_result(result, operation="add", dn=dn)
                log.info("ldap_entry_created", dn=dn, attributes=sorted(entry))
                return "created"
            current = self._read_entry(dn, wanted)
            if current is None:
                raise error_for_result(result, operation="add", dn=dn)
        modlist: dict[str, list] = {}
        have_classes = {c.lower() for c in current.get("objectClass", [])}
        missing = [c for c in classes if c.lower() not in have_classes]
        if missing:
            modlist["objectClass"] = [(MODIFY_ADD, missing)]
        for attr, values in changes.items():
            now = current.get(attr, [])
            if attr.lower() == rdn_attr.lower():
                if {v.lower() for v in values} != {v.lower() for v in now}:
                    raise DirectoryRejected(f"cannot change the naming attribute {attr} of {dn!r}")
                continue
            if not values:
                if now:
                    modlist[attr] = [(MODIFY_DELETE, [])]
            elif sorted(values) != sorted(now):
                modlist[attr] = [(MODIFY_REPLACE, values)]
        if not modlist:
            return "unchanged"
        result = self._modify(dn, modlist)
        raise_for_result(result, operation="modify", dn=dn)
        log.info("ldap_entry_modified", dn=dn, attributes=sorted(modlist))
        return "updated"

    def _person_attrs(self, attrs: Mapping[str, AttrValues]) -> dict[str, list[str]]:
        fields = self.layout.people.attributes
        out: dict[str, list[str]] = {}
        for key, value in attrs.items():
            ldap_name = fields[key].ldap if key in fields else names.validate_attribute_name(key)
            if ldap_name.lower() == "objectclass":
                raise DirectoryRejected("object classes are passed as object_classes, not as an attribute")
            if any(k.lower() == ldap_name.lower() for k in out):
                raise DirectoryRejected(f"attribute {ldap_name} given twice (as {key!r} and another name)")
            out[ldap_name] = ldap_values(value)
        return out

    # -- organisations ----------------------------------------------------------------------

    def upsert_organisation(self, code: str, name: str, branch: str | None = None,
                            correspondent_dns: Iterable[str] = ()) -> Upsert:
        """Create or update ``o=<code>``: name (``description``), branch, correspondents (DNs).

        Every value is syncd's: an empty ``correspondent_dns`` removes the correspondents.
        """
        org = self.layout.organisations
        dn = names.organisation_dn(self.layout, code)
        correspondents = list(dict.fromkeys(correspondent_dns))
        for c in correspondents:
            names.parse_dn(c)
        changes: dict[str, list[str]] = {
            "syncdOrganisationCode": [code],
            "description": ldap_values(name),
            "syncdBranch": ldap_values(branch),
            "syncdCorrespondent": correspondents,
        }
        if org.rdn_attribute.lower() != "o" and any(c.lower() == "organization" for c in org.object_classes):
            changes["o"] = ldap_values(name)    # organization requires o
        return self._upsert(dn, org.rdn_attribute, code, org.object_classes, changes)

    # -- accounts ---------------------------------------------------------------------------

    def upsert_account(self, account_id: str, attrs: Mapping[str, AttrValues],
                       object_classes: Sequence[str] | None = None) -> Upsert:
        """Create the person ``uid=<account_id>`` or modify only the attributes in ``attrs``.

        Keys are account field names of ``layout.people.attributes`` (``given_name``…,
        translated) or LDAP attribute names (``sn``, ``cn``…). Values: a string, a list of
        strings, a bool (TRUE/FALSE), an int, an aware datetime (GeneralizedTime); None,
        "" or [] delete the attribute. Attributes not named are never touched. On creation
        ``cn`` defaults to "<givenName> <sn>" (or the id) since inetOrgPerson requires it;
        ``sn`` must be given. Missing object classes of the layout are added to an existing
        entry. Returns "created", "updated" or "unchanged".
        """
        people = self.layout.people
        dn = names.person_dn(self.layout, account_id)
        changes = self._person_attrs(attrs)
        classes = list(object_classes or people.object_classes)

        def defaults(entry: dict[str, list[str]]) -> None:
            if not any(k.lower() == "cn" for k in entry):
                given = next((v for k, v in entry.items() if k.lower() == "givenname"), [])
                family = next((v for k, v in entry.items() if k.lower() == "sn"), [])
                entry["cn"] = [" ".join([*given[:1], *family[:1]]) or account_id]

        return self._upsert(dn, people.rdn_attribute, account_id, classes, changes, defaults)

    def disable_account(self, account_id: str) -> bool:
        """Set the disabled attribute (``syncdAccountStatus: disabled``); True if it changed.

        Group memberships are left alone: removing them is the caller's job
        (``remove_members``). Raises ``NoSuchEntry`` if the account does not exist.
        """
        people = self.layout.people
        dn = names.person_dn(self.layout, account_id)
        current = self._read_entry(dn, [people.disabled_attribute, "objectClass"])
        if current is None:
            raise NoSuchEntry(f"cannot disable {dn!r}: no such entry")
        outcome = self._upsert(dn, people.rdn_attribute, account_id, people.object_classes,
                               {people.disabled_attribute: [DISABLED]})
        if outcome == "updated":
            log.info("ldap_account_disabled", dn=dn)
        return outcome == "updated"

    def set_password(self, account_id: str, new_password: str) -> None:
        """Set a password with the Password Modify extended operation (RFC 3062).

        The server hashes it with its own scheme (``olcPasswordHash``); the password never
        appears in a log line or an error message.
        """
        if not isinstance(new_password, str) or new_password == "":
            raise DirectoryRejected("a new password may not be empty")
        dn = names.person_dn(self.layout, account_id)

        def call(conn: Connection) -> dict:
            op = ModifyPassword(conn, user=dn, new_password=new_password)
            op.send()
            return op.result

        result = self._run("password modify", dn, call)
        raise_for_result(result, operation="password modify", dn=dn)
        log.info("ldap_password_set", dn=dn)

    def can_bind(self, dn: str, password: str) -> bool:
        """Whether ``dn`` / ``password`` authenticate (a fresh connection, closed at once).

        An empty password is always False: LDAP would treat it as an anonymous bind.
        """
        if not password:
            return False
        names.parse_dn(dn)
        try:
            conn = open_connection(self.settings, user=dn, password=password)
        except DirectoryRejected as exc:
            if getattr(exc, "result_code", None) == INVALID_CREDENTIALS:
                return False
            raise
        safe_close(conn)
        return True

    # -- groups -----------------------------------------------------------------------------

    def ensure_group(self, group_name: str, role_key: str, app_key: str,
                     description: str | None = None, *, management: str | None = None) -> Upsert:
        """Create the role group (with the placeholder member) or bring its syncd values up to date.

        Members are never touched here, except that a group that lost its placeholder gets
        it back. Returns "created", "updated" or "unchanged".
        """
        groups = self.layout.groups
        dn = names.group_dn(self.layout, group_name)
        placeholder = names.placeholder_dn(self.layout)
        changes: dict[str, list[str]] = {
            "syncdRoleKey": ldap_values(role_key),
            "syncdApplicationKey": ldap_values(app_key),
            "description": ldap_values(description),
        }
        if management is not None:
            changes["syncdManagement"] = ldap_values(management)
        if groups.rdn_attribute.lower() != "cn":
            changes["cn"] = [group_name]

        def defaults(entry: dict[str, list[str]]) -> None:
            entry[groups.member_attribute] = [placeholder]

        outcome = self._upsert(dn, groups.rdn_attribute, group_name, groups.object_classes, changes, defaults)
        if outcome != "created" and self._restore_placeholder(dn):
            outcome = "updated"
        return outcome

    def _restore_placeholder(self, dn: str) -> bool:
        """Add the placeholder member to group ``dn`` if missing; True if it was added."""
        attr = self.layout.groups.member_attribute
        placeholder = names.placeholder_dn(self.layout)
        result = self._modify(dn, {attr: [(MODIFY_ADD, [placeholder])]})
        if result.get("result") == ATTRIBUTE_OR_VALUE_EXISTS:
            return False
        raise_for_result(result, operation="modify", dn=dn)
        log.warning("ldap_placeholder_restored", dn=dn)
        return True

    def _member_values(self, member_dns: Iterable[str]) -> list[str]:
        seen: dict[str, str] = {}
        for dn in member_dns:
            norm = names.normalise_dn(dn)   # validates it, too
            if norm != self._placeholder_norm:
                seen.setdefault(norm, dn.strip())
        return list(seen.values())

    def _change_members(self, group_name: str, member_dns: Iterable[str], op: str) -> MemberChange:
        dn = names.group_dn(self.layout, group_name)
        attr = self.layout.groups.member_attribute
        adding = op == MODIFY_ADD
        values = self._member_values(member_dns)
        permissive = self.supports_permissive_modify() if values else False
        controls = [(PERMISSIVE_MODIFY_OID, False, None)] if permissive else None
        benign = ATTRIBUTE_OR_VALUE_EXISTS if adding else NO_SUCH_ATTRIBUTE
        fixed = _REQUEST_OVERHEAD + len(dn.encode("utf-8")) + len(attr)
        operations = conflicts = reads = 0
        current: set[str] | None = None    # the group's members, read once if conflicts pile up

        def settled(value: str) -> bool:
            """Already in the wanted state, as far as the members read say."""
            assert current is not None
            return (names.normalise_dn(value) in current) == adding

        def apply(chunk: list[str], *, filtered: bool = False, placeholder_retry: bool = True) -> None:
            nonlocal operations, conflicts, reads, current
            result = self._modify(dn, {attr: [(op, chunk)]}, controls=controls)
            operations += 1
            code = result.get("result")
            if code == 0:
                return
            if code == benign:
                if len(chunk) == 1:
                    conflicts += 1
                    return
                if len(chunk) > SPLIT_LIMIT and not filtered:
                    # Halving costs about two modifies per conflict and level, each one a
                    # rewrite of the group: with many conflicts one read of the members is
                    # far cheaper (measured: 24,500 scattered conflicts in a 50k group took
                    # ~50,000 modifies and 10 minutes by halving alone).
                    if current is None:
                        current = self._current_members(dn, attr)
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
                self._restore_placeholder(dn)
                operations += 1
                apply(chunk, filtered=filtered, placeholder_retry=False)
                return
            raise error_for_result(result, operation="add members" if adding else "remove members", dn=dn)

        for chunk in _chunks(values, self.settings.batch_size, self.settings.max_request_bytes, fixed):
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

    def _current_members(self, dn: str, attr: str) -> set[str]:
        current = self._read_entry(dn, [attr])
        if current is None:
            raise NoSuchEntry(f"no such group {dn!r}")
        return {names.normalise_dn(v) for v in current.get(attr, [])}

    def add_members(self, group_name: str, member_dns: Iterable[str]) -> MemberChange:
        """Add DNs to the group's members, batched; a DN already there is success."""
        return self._change_members(group_name, member_dns, MODIFY_ADD)

    def remove_members(self, group_name: str, member_dns: Iterable[str]) -> MemberChange:
        """Remove DNs from the group's members, batched; a DN already gone is success.

        The placeholder is never removed, even when asked to.
        """
        return self._change_members(group_name, member_dns, MODIFY_DELETE)

    def members_of_group(self, group_name: str) -> set[str]:
        """The group's members as normalised DNs, without the placeholder.

        Raises ``NoSuchEntry`` if the group does not exist.
        """
        dn = names.group_dn(self.layout, group_name)
        attr = self.layout.groups.member_attribute
        current = self._read_entry(dn, [attr])
        if current is None:
            raise NoSuchEntry(f"no such group {dn!r}")
        found = {names.normalise_dn(v) for v in current.get(attr, [])}
        found.discard(self._placeholder_norm)
        return found

    def groups_of_person(self, account_id: str) -> set[str]:
        """The groups the person is a member of, from ``memberOf``, as normalised DNs.

        Raises ``NoSuchEntry`` if the person does not exist.
        """
        dn = names.person_dn(self.layout, account_id)
        current = self._read_entry(dn, ["memberOf"])
        if current is None:
            raise NoSuchEntry(f"no such person {dn!r}")
        return {names.normalise_dn(v) for v in current.get("memberOf", [])}

    # -- reads ------------------------------------------------------------------------------

    def iter_entries(self, base: str, filter: str, attributes: Sequence[str], *,
                     scope: Literal["base", "one", "subtree"] = "subtree",
                     page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """Every entry under ``base`` matching ``filter``, read page by page.

        Yields ``{"dn": dn, <attribute>: [values…], …}`` with one key per requested
        attribute (exactly as spelled in ``attributes``; [] when absent). Memory stays
        bounded by one page (``page_size``, default ``settings.page_size``). The pages are
        read on a connection of their own, closed when the iteration ends, so the caller
        may use this object in between.
        """
        for a in attributes:
            if a not in ("*", "+", "1.1"):
                names.validate_attribute_name(a)
        names.parse_dn(base)
        size = page_size or self.settings.page_size
        ldap_scope = {"base": BASE, "one": LEVEL, "subtree": SUBTREE}[scope]
        wanted = list(attributes) or ["1.1"]
        conn = None
        try:
            with translated("connect"):
                conn = open_connection(self.settings)
            cookie: bytes | None = None
            pages = 0
            while True:
                with translated("paged search", base):
                    _, result, response, _ = conn.search(base, filter, ldap_scope, attributes=wanted,
                                                         paged_size=size, paged_cookie=cookie)
                raise_for_result(result, operation="paged search", dn=base)
                pages += 1
                for item in response or []:
                    if item.get("type") == "searchResEntry":
                        yield {"dn": item["dn"], **_attrs_of(item, wanted)}
                try:
                    cookie = result["controls"]["1.2.840.113556.1.4.319"]["value"]["cookie"]
                except (KeyError, TypeError):
                    cookie = None
                if not cookie:
                    break
            log.debug("ldap_paged_search_done", base=base, pages=pages)
        finally:
            safe_close(conn)
