"""What differs between the directory servers syncd writes to, chosen by ``directory.kind``.

The adapter asks ``traits(layout.kind)`` instead of testing the server's name, so every
difference between OpenLDAP and 389 Directory Server is written down once, here, with the
reason (deploy/389ds/README.md tells operators the same):

* **permissive modify** (1.2.840.113556.1.4.1413): OpenLDAP honours it for adds (without
  advertising it); 389-DS does not implement it, so nothing is probed there and membership
  writes resolve their conflicts (20 on add, 16 on remove) themselves (``members``).
* **setting a password**: OpenLDAP takes the Password Modify extended operation (RFC 3062) on
  any connection. 389-DS refuses it outside TLS / LDAPI with confidentialityRequired (13), so
  syncd replaces ``userPassword`` with a modify instead; the server hashes the clear value
  with its ``passwordStorageScheme`` either way (``{PBKDF2-SHA512}`` by default on 389-DS 2.x,
  ``{SSHA}`` on OpenLDAP), and a hashed value from a client is refused by 389-DS anyway.
* **locking an account**: on 389-DS the operational attribute ``nsAccountLock: true`` makes
  every bind of the entry fail with unwillingToPerform (53, "Account inactivated"), whatever
  the password. syncd keeps it in step with the account status it writes: any status but
  ``active`` locks the entry, ``active`` unlocks it. (OpenLDAP: deploy/openldap/README.md.)
* **bind refusals**: a wrong password, or an entry with no password yet, is
  invalidCredentials (49) on both; 389-DS answers unwillingToPerform (53) to a locked entry,
  whatever the password: both mean "cannot authenticate".

Active Directory (Windows Server, Samba 4 AD DC; deploy/activedirectory/README.md):

* **no syncd schema**: syncd's own attributes of organisations and groups are kept in
  attributes AD's default schema has (``AD_ATTRIBUTES``); the account fields are where the
  mappings say. Users and groups are named by ``cn`` whatever syncd would write there, so the
  full name syncd writes as ``cn`` elsewhere goes to ``displayName``.
* **passwords**: ``unicodePwd`` replaced with the password in double quotes, UTF-16LE,
  accepted over an encrypted connection only (syncd refuses to send it otherwise, even where
  a DC would take it); a policy refusal is constraintViolation (19) with data ``0000052D``.
* **locking**: ``userAccountControl``'s ACCOUNTDISABLE bit (0x2); the other bits are the
  domain's and are kept as they are. A disabled account's bind is invalidCredentials (49,
  data 533); a locked-out one (``lockoutTime``) 49 too (data 775).
* **membership writes**: AD has the permissive-modify control (Samba advertises it too), but
  syncd resolves its conflicts itself as on 389-DS, so that what a write changed stays known
  (``MemberChange.changed``) and every DC takes the same path: AD answers entryAlreadyExists (68) to a member already there
  and unwillingToPerform (53) to one already gone (``members``). Groups may be empty: no
  placeholder member (AD refuses a member value naming no object).
* **lockouts**: the DC sets ``lockoutTime`` after too many bad passwords (the domain's
  ``lockoutThreshold``); the bind then fails whatever the password. ``syncd status`` lists the
  locked-out accounts and ``syncd unlock EMAIL`` clears one (``lockoutTime: 0``, the only value
  AD lets a client write); syncd never clears one by itself.
* **member lists**: read with range retrieval (``member;range=0-1499``…), as a Windows DC
  returns at most MaxValRange (1,500) values of an attribute per read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from syncd.core.model import DirectoryKind
from syncd.directory.connection import (
    ATTRIBUTE_OR_VALUE_EXISTS,
    ENTRY_ALREADY_EXISTS,
    INVALID_CREDENTIALS,
    NO_SUCH_ATTRIBUTE,
    UNWILLING_TO_PERFORM,
)

# userAccountControl (MS-ADTS 2.2.16): a normal user account, and the bit that disables it.
NORMAL_ACCOUNT, ACCOUNTDISABLE = 0x200, 0x2
# AD's global security group (groupType: GLOBAL_GROUP | SECURITY_ENABLED), as a signed 32-bit int.
GLOBAL_SECURITY_GROUP = str(0x2 - 0x80000000)

# unwillingToPerform (53) to a member removal means "not a member" when its message says so:
# Windows' ERROR_MEMBER_NOT_IN_GROUP (0x561), Samba's "already deleted" / "doesn't exist", and a DN naming no
# object at all (Samba: "Unable to find GUID"; Windows: 0x561 too). Any other 53 is a refusal.
AD_MEMBER_GONE = ("00000561", "already deleted", "doesn't exist for target GUID", "Unable to find GUID")

# Where syncd's own attributes of organisations and groups live on AD (default schema, no
# extension; deploy/activedirectory/README.md says why these).
AD_ATTRIBUTES: dict[str, str] = {
    "syncdOrganisationCode": "ou",             # the OU's own name: the code
    "syncdBranch": "businessCategory",
    "syncdCorrespondent": "seeAlso",
    "syncdRoleKey": "adminDisplayName",
    "syncdApplicationKey": "adminDescription",
    "syncdManagement": "info",
    "syncdApplicationLabel": "displayName",   # the role's label is the group's description
}


@dataclass(frozen=True)
class ServerTraits:
    """How syncd must talk to one kind of directory server."""

    permissive_modify: bool            # may carry the permissive-modify control (else never)
    password_extended_operation: bool  # set passwords with RFC 3062 (else modify userPassword)
    lock_attribute: str | None         # operational attribute that stops every bind, if any
    lock_value: str                    # its value when locked
    refused_bind_codes: frozenset[int]  # bind results meaning "these credentials do not log in"
    password_attribute: str = "userPassword"   # modified when there is no extended operation
    password_needs_tls: bool = False   # never sent on an unencrypted connection
    lock_bit: int = 0                  # the lock attribute is a bit mask: this bit locks (AD)
    common_name_attribute: str = "cn"  # where the person's full name goes
    attribute_names: Mapping[str, str] = field(default_factory=dict)   # syncd's name -> the server's
    needs_placeholder: bool = True     # a group may not be empty (groupOfNames)
    ranged_members: bool = False       # member lists are read by ranges (AD's MaxValRange)
    sam_accounts: bool = False         # users and groups need sAMAccountName, groupType... (AD)
    lockout_attribute: str | None = None   # set by the server after bad passwords (AD: lockoutTime)
    # Membership write results meaning "already there" (add) / "already gone" (remove); a
    # removal refused with one of ``gone_messages`` in its message is "already gone" too.
    benign_add_codes: frozenset[int] = frozenset({ATTRIBUTE_OR_VALUE_EXISTS})
    benign_remove_codes: frozenset[int] = frozenset({NO_SUCH_ATTRIBUTE})
    gone_messages: tuple[str, ...] = ()

    def lock_values(self, status_values: list[str]) -> list[str] | None:
        """The lock attribute's values for an account whose status is written as
        ``status_values``: locked unless the status is ``active``; None when no status is
        written (the lock is left as it is) or the server has no lock attribute.

        With a bit mask (``lock_bit``) this is a normal account with or without the bit;
        ``merge_lock`` keeps the other bits an entry already has."""
        if self.lock_attribute is None or not status_values:
            return None
        locked = [v.lower() for v in status_values] != ["active"]
        if self.lock_bit:
            return [str(NORMAL_ACCOUNT | (self.lock_bit if locked else 0))]
        return [self.lock_value] if locked else []

    def merge_lock(self, current: list[str], wanted: list[str]) -> list[str]:
        """The lock attribute's values to write: ``wanted``, with the bits other than
        ``lock_bit`` taken from ``current`` when the attribute is a bit mask."""
        if not self.lock_bit or not current or not wanted:
            return wanted
        now, want = int(current[0]), int(wanted[0])
        return [str((now & ~self.lock_bit) | (want & self.lock_bit))]

    def lock_canonical(self, values: list[str]) -> list[str]:
        """The lock attribute's values as compared by reconcile: the lock bit alone for a mask."""
        if not self.lock_bit or not values:
            return values
        try:
            return ["locked" if int(values[0]) & self.lock_bit else "unlocked"]
        except ValueError:
            return values

    def member_conflict(self, result: Mapping[str, object], *, adding: bool) -> bool:
        """Whether a refused membership modify only met a value already there / already gone."""
        code = result.get("result")
        if code in (self.benign_add_codes if adding else self.benign_remove_codes):
            return True
        message = str(result.get("message") or "")
        return not adding and code == UNWILLING_TO_PERFORM and any(m in message for m in self.gone_messages)

    def name(self, attribute: str) -> str:
        """The server's attribute for one of syncd's own (``syncdRoleKey``…)."""
        return self.attribute_names.get(attribute, attribute)

    def person_attributes(self, attrs: Mapping[str, list[str]]) -> dict[str, list[str]]:
        """A person's attributes with the full name (``cn``) where this server keeps it."""
        if self.common_name_attribute == "cn":
            return dict(attrs)
        return {(self.common_name_attribute if k.lower() == "cn" else k): v for k, v in attrs.items()}


_TRAITS = {
    DirectoryKind.OPENLDAP: ServerTraits(
        permissive_modify=True, password_extended_operation=True, lock_attribute=None, lock_value="",
        refused_bind_codes=frozenset({INVALID_CREDENTIALS})),
    DirectoryKind.DS389: ServerTraits(
        permissive_modify=False, password_extended_operation=False, lock_attribute="nsAccountLock",
        lock_value="true", refused_bind_codes=frozenset({INVALID_CREDENTIALS, UNWILLING_TO_PERFORM})),
    DirectoryKind.ACTIVE_DIRECTORY: ServerTraits(
        permissive_modify=False, password_extended_operation=False, lock_attribute="userAccountControl",
        lock_value="", refused_bind_codes=frozenset({INVALID_CREDENTIALS}), password_attribute="unicodePwd",
        password_needs_tls=True, lock_bit=ACCOUNTDISABLE, common_name_attribute="displayName",
        attribute_names=AD_ATTRIBUTES, needs_placeholder=False, ranged_members=True, sam_accounts=True,
        lockout_attribute="lockoutTime",
        # AD: a member already there is entryAlreadyExists (68; 20 on older DCs); one already
        # gone, or naming no object at all, unwillingToPerform (53; 16 on older DCs).
        benign_add_codes=frozenset({ATTRIBUTE_OR_VALUE_EXISTS, ENTRY_ALREADY_EXISTS}),
        gone_messages=AD_MEMBER_GONE),
}


def traits(kind: DirectoryKind) -> ServerTraits:
    """The traits of ``kind`` (``Mappings.directory.kind``)."""
    return _TRAITS[DirectoryKind(kind)]
