"""Comparing one side with the other cheaply: DN keys, desired attributes, digests.

* **Keys.** Every DN is compared in ``names.normalise_dn`` form. Normalising 950k member
  values costs seconds, so the DNs syncd writes itself (``uid=<plain id>,<people branch>``,
  by far the most common) are recognised by a string test and keyed without parsing; any
  other value goes through ``normalise_dn``. Both paths give the same string.
* **Attributes.** What an account's entry should hold (``desired``: the attributes syncd owns,
  which depend on the account: a director's names belong to an external referential) and
  which of them differ from an entry read (``differences``). Which entries are read at all is
  decided by their change stamps (``syncd.reconcile.planning``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import suppress
from functools import lru_cache
from typing import Any

from syncd.core.entries import DN_FIELDS, account_attributes
from syncd.core.model import AccountStatus
from syncd.directory import names, servers
from syncd.directory.adapter import DISABLED
from syncd.mappings import DirectoryLayout

# Values that need no escaping and normalise by lower-casing alone.
_PLAIN = re.compile(r"^[A-Za-z0-9._@-]+$")


class Keys:
    """Comparison keys for the people of one layout (see the module docstring).

    The key of a person named ``<rdn>=<plain id>`` right under the people branch is the id
    lower-cased (the naming attribute matches ignoring case); the key of any other DN is its
    ``normalise_dn`` form, which always holds a ``=`` and so never collides with an id.
    """

    def __init__(self, layout: DirectoryLayout):
        self.layout = layout
        self.rdn = layout.people.rdn_attribute
        self.branch = names.branch_dn(layout, "people")
        self.branch_norm = names.normalise_dn(self.branch)
        self._prefix_l = self.rdn.lower() + "="
        self._suffix = "," + self.branch
        self._suffix_norm = "," + self.branch_norm
        self.placeholder = self.of_dn(names.placeholder_dn(layout))
        # People entries: the layout's structural class (sub-containers of the branch are not people).
        self.people_filter = names.filter_eq("objectClass", layout.people.object_classes[0])

    @property
    def dn_parts(self) -> tuple[str, str]:
        """``dn(id) == prefix + id + suffix`` for every id ``all_plain`` accepts."""
        return f"{self.rdn}=", self._suffix

    @staticmethod
    def all_plain(account_ids: list[str]) -> bool:
        """Whether every id is plain (one regex over them all: plain strings concatenate to one)."""
        return not account_ids or bool(_PLAIN.match("".join(account_ids)))

    def dn(self, account_id: str) -> str:
        """The DN syncd writes for an account (``names.person_dn``, fast for plain ids)."""
        if _PLAIN.match(account_id):
            return f"{self.rdn}={account_id},{self.branch}"
        return names.person_dn(self.layout, account_id)

    def of_id(self, account_id: str) -> str:
        """The key of an account's entry: ``of_dn`` of its DN, so the two always agree (an id
        with a trailing space names the same entry as the id without it, spaces at the ends of
        a value being insignificant to LDAP's string matching)."""
        if _PLAIN.match(account_id):
            return account_id.lower()
        return self.of_dn(names.person_dn(self.layout, account_id))

    def of_dn(self, dn: str) -> str:
        """The key of any DN (a member value, an entry's name)."""
        lp = len(self._prefix_l)
        if dn.endswith(self._suffix) and dn[:lp].lower() == self._prefix_l:
            value = dn[lp:-len(self._suffix)]
            if _PLAIN.match(value):
                return value.lower()
        norm = names.normalise_dn(dn)
        if norm.endswith(self._suffix_norm) and norm.startswith(self._prefix_l):
            value = norm[lp:-len(self._suffix_norm)]
            if _PLAIN.match(value):
                return value
        return norm

    def filter_of_key(self, key: str) -> str:
        """An equality filter on the naming attribute that finds the person of ``key``."""
        if "=" not in key:
            return names.filter_eq(self.rdn, key)
        value = names.parse_dn(key)[0][0][1]
        return names.filter_eq(self.rdn, value if isinstance(value, str) else value.decode("utf-8", "replace"))

    def account_id_of_dn(self, dn: str) -> str | None:
        """The naming value (account id) of a DN right under the people branch, else None."""
        lp = len(self._prefix_l)
        if dn.endswith(self._suffix) and dn[:lp].lower() == self._prefix_l:
            value = dn[lp:-len(self._suffix)]
            if _PLAIN.match(value):
                return value
        try:
            rdns = names.parse_dn(dn)
        except names.InvalidName:
            return None
        if len(rdns) < 2 or len(rdns[0]) != 1 or rdns[0][0][0].lower() != self.rdn.lower():
            return None
        if names.normalise_dn(names.format_dn(rdns[1:])) != self.branch_norm:
            return None
        value = rdns[0][0][1]
        return value if isinstance(value, str) else None


class AccountComparer:
    """Desired attributes of an account row, and which of them an entry read holds otherwise."""

    def __init__(self, layout: DirectoryLayout):
        self.layout = layout
        people = layout.people
        self.people = people
        self.disabled_attribute = people.disabled_attribute
        self._disabled_key = people.disabled_attribute.lower()
        self.status_mapped = "status" in people.attributes
        # The server's account lock (389-DS: nsAccountLock; AD: userAccountControl) follows the
        # status: an entry that lost it, or predates it, is drift like any owned attribute.
        self.traits = servers.traits(layout.kind)
        self.common_name = self.traits.common_name_attribute      # "cn", or AD's displayName
        self.lock_attribute = (self.traits.lock_attribute or "").lower()
        self.dn_attributes = frozenset(people.attributes[f].ldap.lower() for f in DN_FIELDS
                                       if f in people.attributes)
        self.mail_attributes = frozenset(people.attributes[f].ldap.lower()
                                         for f in ("email", "given_name", "family_name")
                                         if f in people.attributes) | {self.common_name.lower()}
        self.status_attribute = (people.attributes["status"].ldap.lower() if self.status_mapped
                                 else people.disabled_attribute.lower())
        self.org_dn = lru_cache(maxsize=4096)(lambda code: names.organisation_dn(layout, code))
        self._normalise = lru_cache(maxsize=65536)(names.normalise_dn)
        # Every attribute the comparison may need, as requested from the server.
        wanted = {m.ldap for m in people.attributes.values()} | {self.common_name, people.disabled_attribute}
        if self.traits.lock_attribute:
            wanted.add(self.traits.lock_attribute)
        self.read_attributes = sorted(wanted, key=str.lower)

    # -- the database side ------------------------------------------------------------------

    def desired(self, row: Mapping[str, Any], *, first_write: bool = False) -> dict[str, list[str]]:
        """LDAP attribute -> values the entry should hold ([] = no value), owned ones only."""
        values = row
        if row.get("status") == AccountStatus.PENDING:      # written as active, as push_account does
            values = dict(row, status=AccountStatus.ACTIVE.value)
        attrs = self.traits.person_attributes(
            account_attributes(values, self.people, first_write=first_write, organisation_dn=self.org_dn))
        if not self.status_mapped and values.get("status") == DISABLED:
            attrs[self.disabled_attribute] = [DISABLED]
        status = next((v for k, v in attrs.items() if k.lower() == self.status_attribute), [])
        lock = self.traits.lock_values(status)
        if lock is not None and self.traits.lock_attribute and (lock or not first_write):
            attrs[self.traits.lock_attribute] = lock
        return attrs

    def canonical(self, attribute: str, values: list[str]) -> str:
        """One attribute's values in comparable form (DN values normalised, order ignored)."""
        if not values:
            return ""
        if attribute == self.lock_attribute:
            values = self.traits.lock_canonical(values)    # a bit mask: the lock bit alone
        if attribute in self.dn_attributes:
            with suppress(names.InvalidName):
                values = [self._normalise(v) for v in values]
        if len(values) == 1:
            return values[0]
        return "\x01".join(sorted(values))

    # -- the LDAP side ----------------------------------------------------------------------

    def is_disabled(self, attrs: Mapping[str, list[str]]) -> bool:
        values = attrs.get(self._disabled_key)
        return bool(values) and DISABLED in map(str.lower, values)

    def differences(self, desired: Mapping[str, list[str]], attrs: Mapping[str, list[str]]
                    ) -> dict[str, tuple[list[str], list[str]]]:
        """Owned attributes whose values differ: attribute -> (in LDAP, wanted)."""
        out = {}
        for attr, want in desired.items():
            have = attrs.get(attr.lower(), [])
            if self.canonical(attr.lower(), list(have)) != self.canonical(attr.lower(), list(want)):
                out[attr] = (list(have), list(want))
        return out
