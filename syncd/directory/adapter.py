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
  refused batch is split, or filtered against one read of the group's members, until only
  the values really in conflict are dropped (how, and at what cost: ``members``).
  Callers should plan membership changes from ``members_of_group`` (desired vs actual) so
  that conflicts stay rare. Measured on OpenLDAP
  2.5.13: the control makes adding a present value succeed, but deleting an absent value
  still answers noSuchAttribute (16), so removals take the split path there as well.
* **The server's kind** (``layout.kind``, ``directory.kind`` of the mappings) selects what
  differs between OpenLDAP, 389-DS and Active Directory (``syncd.directory.servers``): on
  389-DS no permissive-modify control, passwords set by a modify of ``userPassword``, and
  ``nsAccountLock`` kept in step with the account status; on AD also no placeholder, syncd's
  own attributes in AD's default schema, ``unicodePwd`` over TLS only, the disable bit of
  ``userAccountControl``, member lists by ranges (``ranges``), and what a new user or group
  needs (``activedirectory``).
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from typing import Any, Literal

import structlog
from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, Connection
from ldap3.extend.standard.modifyPassword import ModifyPassword

from syncd.core import syntax
from syncd.core.syntax import Syntax
from syncd.directory import activedirectory, names, paged, ranges, servers
from syncd.directory.base import DirectoryConnection, Upsert
from syncd.directory.connection import (
    ATTRIBUTE_OR_VALUE_EXISTS,
    NO_SUCH_OBJECT,
    NoSuchEntry,
    open_connection,
    raise_for_result,
    safe_close,
)
from syncd.directory.members import MemberChange, change_members
from syncd.directory.stamps import stamp_profile
from syncd.directory.values import AttrValues, attrs_of, ldap_values, person_attrs
from syncd.errors import DirectoryRejected
from syncd.mappings import DirectoryLayout
from syncd.settings import LdapSettings

log = structlog.get_logger(__name__)

PERMISSIVE_MODIFY_OID = "1.2.840.113556.1.4.1413"
UNAVAILABLE_CRITICAL_EXTENSION = 12
DISABLED = "disabled"
ACTIVE = "active"


class Directory(DirectoryConnection):
    """syncd's view of the LDAP directory (see the module docstring)."""

    def __init__(self, settings: LdapSettings, layout: DirectoryLayout):
        super().__init__(settings)
        self.layout = layout
        self._permissive: bool | None = None
        self._permissive_lock = threading.Lock()     # apply's writer threads may ask at once
        self.traits = servers.traits(layout.kind)
        self._profile = syntax.profile(layout.kind)
        self._placeholder_norm = names.normalise_dn(names.placeholder_dn(layout))

    # -- permissive modify ------------------------------------------------------------------

    def supports_permissive_modify(self) -> bool:
        """Whether membership writes carry the permissive-modify control (decided once)."""
        if self._permissive is not None:
            return self._permissive
        with self._permissive_lock:
            if self._permissive is not None:
                return self._permissive
            mode = self.settings.permissive_modify
            if not self.traits.permissive_modify:
                self._permissive = False     # the server has no such control: never send it
                if mode == "on":
                    log.warning("ldap_permissive_modify_unsupported", kind=self.layout.kind.value)
            elif mode != "auto":
                self._permissive = mode == "on"
            else:
                self._permissive = self._detect_permissive()
            log.info("ldap_permissive_modify", enabled=self._permissive, mode=mode)
        return self._permissive

    def _detect_permissive(self) -> bool:
        result, entries = self._search("", "(objectClass=*)", BASE, ["supportedControl"])
        raise_for_result(result, operation="read root DSE", dn="")
        controls = attrs_of(entries[0], ["supportedControl"])["supportedControl"] if entries else []
        if PERMISSIVE_MODIFY_OID in controls:
            return True
        probe = names.child_dn("cn", "syncd-permissive-modify-probe", self.layout.base_dn)
        # A question, not a write: its refusals are answers, kept out of the write metrics.
        result = self._run("probe", probe, lambda conn: conn.modify(
            probe, {"description": [(MODIFY_REPLACE, ["probe"])]},
            controls=[(PERMISSIVE_MODIFY_OID, True, None)])[1])
        return result.get("result") != UNAVAILABLE_CRITICAL_EXTENSION

    # -- tree -------------------------------------------------------------------------------

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
        name_of = self.traits.name
        changes: dict[str, list[str]] = {
            name_of("syncdOrganisationCode"): [code],
            "description": ldap_values(name),
            name_of("syncdBranch"): ldap_values(branch),
            name_of("syncdCorrespondent"): correspondents,
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
        return self.write_account(account_id, attrs, object_classes, stamped=False)[0]

    def write_account(self, account_id: str, attrs: Mapping[str, AttrValues],
                      object_classes: Sequence[str] | None = None, *, stamped: bool = True
                      ) -> tuple[Upsert, str | None]:
        """``upsert_account``, and the entry's change stamp once it holds ``attrs`` (None when
        the server gave none, or ``stamped`` is false): read back with the write (RFC 4527 post-read)
        or from the read that found nothing to change (``syncd.directory.stamps``)."""
        stamp = stamp_profile(self.layout.kind) if stamped else None
        people = self.layout.people
        dn = names.person_dn(self.layout, account_id)
        changes = self._with_lock(self.traits.person_attributes(person_attrs(people.attributes, attrs)))
        classes = list(object_classes or people.object_classes)

        def defaults(entry: dict[str, list[str]]) -> None:
            if not any(k.lower() == "cn" for k in entry):
                given = next((v for k, v in entry.items() if k.lower() == "givenname"), [])
                family = next((v for k, v in entry.items() if k.lower() == "sn"), [])
                entry["cn"] = [" ".join([*given[:1], *family[:1]]) or account_id]
            if self.traits.sam_accounts:
                activedirectory.user_defaults(self, account_id, entry)

        return self._upsert_stamped(dn, people.rdn_attribute, account_id, classes, changes, defaults, stamp)

    def disable_account(self, account_id: str) -> bool:
        """Set the disabled attribute (``syncdAccountStatus: disabled``); True if it changed.

        Group memberships are left alone: removing them is the caller's job
        (``remove_members``). Raises ``NoSuchEntry`` if the account does not exist.
        """
        people = self.layout.people
        dn = names.person_dn(self.layout, account_id)
        current = self.read_entry(dn, [people.disabled_attribute, "objectClass"])
        if current is None:
            raise NoSuchEntry(f"cannot disable {dn!r}: no such entry")
        outcome = self._upsert(dn, people.rdn_attribute, account_id, people.object_classes,
                               self._with_lock({people.disabled_attribute: [DISABLED]}))
        if outcome == "updated":
            log.info("ldap_account_disabled", dn=dn)
        return outcome == "updated"

    def _same(self, attribute: str, current: list[str], wanted: list[str]) -> bool:
        # A DN comes back in the server's spelling (AD: "CN=…,OU=…"), not the one written.
        spec = self._profile.attribute(attribute)
        if spec is not None and spec.syntax is Syntax.DN and len(current) == len(wanted):
            with suppress(names.InvalidName):
                return {names.normalise_dn(v) for v in current} == {names.normalise_dn(v) for v in wanted}
        return super()._same(attribute, current, wanted)

    def _merged(self, attribute: str, current: list[str], wanted: list[str]) -> list[str]:
        if self.traits.lock_attribute and attribute.lower() == self.traits.lock_attribute.lower():
            return self.traits.merge_lock(current, wanted)
        return wanted

    def _with_lock(self, changes: dict[str, list[str]]) -> dict[str, list[str]]:
        """``changes`` plus the server's lock attribute, when they write the account status."""
        status = next((v for k, v in changes.items() if k.lower() == self.layout.people.disabled_attribute.lower()), [])
        lock = self.traits.lock_values(status)
        if lock is None or self.traits.lock_attribute is None:
            return changes
        return {**changes, self.traits.lock_attribute: lock}

    def set_password(self, account_id: str, new_password: str) -> None:
        """Set a password: the Password Modify extended operation (RFC 3062), or on a server
        that refuses it outside TLS (389-DS) a modify of ``userPassword``.

        The server hashes it with its own scheme (``olcPasswordHash``, ``passwordStorageScheme``);
        the password never appears in a log line or an error message.
        """
        if not isinstance(new_password, str) or new_password == "":
            raise DirectoryRejected("a new password may not be empty")
        dn = names.person_dn(self.layout, account_id)

        if self.traits.password_needs_tls:
            activedirectory.check_encrypted(self.settings, dn)
        value: str | bytes = new_password
        if self.traits.password_attribute.lower() == "unicodepwd":
            value = activedirectory.unicode_pwd(new_password)

        def call(conn: Connection) -> dict:
            if not self.traits.password_extended_operation:
                conn.modify(dn, {self.traits.password_attribute: [(MODIFY_REPLACE, [value])]})
                return conn.result
            op = ModifyPassword(conn, user=dn, new_password=new_password)
            op.send()
            return op.result

        result = self._run("password modify", dn, call)
        raise_for_result(activedirectory.password_result(result), operation="password modify", dn=dn)
        log.info("ldap_password_set", dn=dn)

    def locked_out_accounts(self) -> list[str] | None:
        """The ids of the people the server has locked out after bad passwords (AD's
        ``lockoutTime``), or None when the server has no such lockout (no LDAP read then)."""
        attr = self.traits.lockout_attribute
        if attr is None:
            return None
        rdn = self.layout.people.rdn_attribute
        return sorted(e[rdn][0] for e in self.iter_entries(names.branch_dn(self.layout, "people"),
                                                           names.filter_at_least(attr, 1), [rdn], scope="one")
                      if e[rdn])

    def clear_lockout(self, account_id: str) -> bool:
        """Clear the server's lockout of a person (an operator's command); True if there was one.

        Raises ``NoSuchEntry`` if the person does not exist, ``DirectoryRejected`` on a server
        without lockouts."""
        attr = self.traits.lockout_attribute
        if attr is None:
            raise DirectoryRejected(f"directory.kind {self.layout.kind.value} has no lockout to clear")
        dn = names.person_dn(self.layout, account_id)
        current = self.read_entry(dn, [attr])
        if current is None:
            raise NoSuchEntry(f"no such person {dn!r}")
        if not any(v not in ("0", "") for v in current.get(attr, [])):
            return False
        raise_for_result(self._modify(dn, {attr: [(MODIFY_REPLACE, ["0"])]}), operation="modify", dn=dn)
        log.info("ldap_lockout_cleared", dn=dn)
        return True

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
            if getattr(exc, "result_code", None) in self.traits.refused_bind_codes:
                return False
            raise
        safe_close(conn)
        return True

    # -- groups -----------------------------------------------------------------------------

    def ensure_group(self, group_name: str, role_key: str, app_key: str,
                     description: str | None = None, *, management: str | None = None,
                     application_label: str | None = None) -> Upsert:
        """Create the role group (with the placeholder member) or bring its syncd values up to date.

        Members are never touched here, except that a group that lost its placeholder gets
        it back. Returns "created", "updated" or "unchanged".
        """
        groups = self.layout.groups
        dn = names.group_dn(self.layout, group_name)
        placeholder = names.placeholder_dn(self.layout)
        name_of = self.traits.name
        changes: dict[str, list[str]] = {
            name_of("syncdRoleKey"): ldap_values(role_key),
            name_of("syncdApplicationKey"): ldap_values(app_key),
            "description": ldap_values(description),
        }
        if management is not None:
            changes[name_of("syncdManagement")] = ldap_values(management)
        if application_label is not None:   # beside the role's label, for applications showing both
            changes[name_of("syncdApplicationLabel")] = ldap_values(application_label)
        if groups.rdn_attribute.lower() != "cn":
            changes["cn"] = [group_name]

        def defaults(entry: dict[str, list[str]]) -> None:
            if self.traits.needs_placeholder:
                entry[groups.member_attribute] = [placeholder]
            if self.traits.sam_accounts:
                activedirectory.group_defaults(group_name, entry)

        outcome = self._upsert(dn, groups.rdn_attribute, group_name, groups.object_classes, changes, defaults)
        if outcome != "created" and self._restore_placeholder(dn):
            outcome = "updated"
        return outcome

    def _restore_placeholder(self, dn: str) -> bool:
        """Add the placeholder member to group ``dn`` if missing; True if it was added."""
        if not self.traits.needs_placeholder:
            return False
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
        values = self._member_values(member_dns)
        permissive = self.supports_permissive_modify() if values else False
        controls = [(PERMISSIVE_MODIFY_OID, False, None)] if permissive else None
        return change_members(
            dn, attr, values, adding=op == MODIFY_ADD, permissive=permissive,
            conflict=lambda result: self.traits.member_conflict(result, adding=op == MODIFY_ADD),
            modify=lambda chunk: self._modify(dn, {attr: [(op, chunk)]}, controls=controls),
            read_members=lambda: self._current_members(dn, attr),
            restore_placeholder=lambda: self._restore_placeholder(dn),
            max_values=self.settings.batch_size, max_bytes=self.settings.max_request_bytes)

    def _current_members(self, dn: str, attr: str) -> set[str]:
        values = self._member_list(dn, attr)
        if values is None:
            raise NoSuchEntry(f"no such group {dn!r}")
        return {names.normalise_dn(v) for v in values}

    def _member_list(self, dn: str, attr: str) -> list[str] | None:
        """The group's member values (by ranges where the server caps them), or None if no group."""
        if not self.traits.ranged_members:
            current = self.read_entry(dn, [attr])
            return None if current is None else current.get(attr, [])

        def search(conn: Connection, description: str) -> tuple[dict, list[dict]]:
            # ldap3 fills requested attributes it did not get with [], then trips over the
            # range it got instead (KeyError): ask it not to fill anything for this search.
            empty, conn.empty_attributes = conn.empty_attributes, False
            try:
                _, result, response, _ = conn.search(dn, "(objectClass=*)", BASE, attributes=[description])
            finally:
                conn.empty_attributes = empty
            return result, [r for r in (response or []) if r.get("type") == "searchResEntry"]

        def read(description: str) -> dict[str, Any] | None:
            result, entries = self._run("search", dn, lambda conn: search(conn, description))
            if result and result.get("result") == NO_SUCH_OBJECT:
                return None
            raise_for_result(result, operation="read", dn=dn)
            return dict(entries[0].get("attributes") or {}) if entries else None
        return ranges.read_ranges(read, attr)

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
        values = self._member_list(dn, self.layout.groups.member_attribute)
        if values is None:
            raise NoSuchEntry(f"no such group {dn!r}")
        found = {names.normalise_dn(v) for v in values}
        found.discard(self._placeholder_norm)
        return found

    def groups_of_person(self, account_id: str) -> set[str]:
        """The groups the person is a member of, from ``memberOf``, as normalised DNs.

        Raises ``NoSuchEntry`` if the person does not exist.
        """
        dn = names.person_dn(self.layout, account_id)
        current = self.read_entry(dn, ["memberOf"])
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
        return paged.iter_entries(self.settings, base, filter, attributes, scope=scope, page_size=page_size)
