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
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.core.model import DirectoryKind
from syncd.directory.connection import INVALID_CREDENTIALS, UNWILLING_TO_PERFORM


@dataclass(frozen=True)
class ServerTraits:
    """How syncd must talk to one kind of directory server."""

    permissive_modify: bool            # may carry the permissive-modify control (else never)
    password_extended_operation: bool  # set passwords with RFC 3062 (else modify userPassword)
    lock_attribute: str | None         # operational attribute that stops every bind, if any
    lock_value: str                    # its value when locked
    refused_bind_codes: frozenset[int]  # bind results meaning "these credentials do not log in"

    def lock_values(self, status_values: list[str]) -> list[str] | None:
        """The lock attribute's values for an account whose status is written as
        ``status_values``: locked unless the status is ``active``; None when no status is
        written (the lock is left as it is) or the server has no lock attribute."""
        if self.lock_attribute is None or not status_values:
            return None
        return [] if [v.lower() for v in status_values] == ["active"] else [self.lock_value]


_TRAITS = {
    DirectoryKind.OPENLDAP: ServerTraits(
        permissive_modify=True, password_extended_operation=True, lock_attribute=None, lock_value="",
        refused_bind_codes=frozenset({INVALID_CREDENTIALS})),
    DirectoryKind.DS389: ServerTraits(
        permissive_modify=False, password_extended_operation=False, lock_attribute="nsAccountLock",
        lock_value="true", refused_bind_codes=frozenset({INVALID_CREDENTIALS, UNWILLING_TO_PERFORM})),
}


def traits(kind: DirectoryKind) -> ServerTraits:
    """The traits of ``kind`` (``Mappings.directory.kind``)."""
    return _TRAITS[DirectoryKind(kind)]
