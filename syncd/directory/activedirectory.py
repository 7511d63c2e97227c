"""What Active Directory needs that other directories do not: the adapter calls these when the
server's traits say so (``servers.ServerTraits.sam_accounts``, ``password_attribute``).

* **A user's names.** AD names a user by ``cn`` (the id, as everywhere in syncd) but logs it
  in by ``sAMAccountName`` (at most 20 characters, ``syntax.sam_account_name``: the id's first
  20) or ``userPrincipalName`` (``<sAMAccountName>@<DNS domain of the base DN>``). Both are
  written when the user is created and never changed afterwards: a login that moves breaks
  Kerberos tickets and applications' stored names. sAMAccountName is unique in the domain;
  syncd looks before it creates, so a clash is a clear refusal, not AD's bare
  entryAlreadyExists (68).
* **A new user's account control**: a normal account (``NORMAL_ACCOUNT``), disabled when the
  status written with it is not ``active`` (``servers.ServerTraits.lock_values``). Windows
  refuses to enable an account whose password does not meet the policy, and syncd creates
  accounts before their holder chooses a password: a new user gets a random password nobody
  knows (over TLS only), replaced when the person sets theirs.
* **A group**: a global security group (``groupType``); the DC names its sAMAccountName.
* **Passwords**: ``unicodePwd`` holds the password in double quotes, UTF-16LE. A DC takes it
  over an encrypted connection only (Windows; Samba unless told otherwise), and syncd never
  sends it in clear: no ``ldaps://`` URL and no ``tls.mode``, no password. A refusal by the
  domain's password policy is constraintViolation (19) with ``0000052D``
  (ERROR_PASSWORD_RESTRICTION) in its message; it reaches the password page as such.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from ldap3 import SUBTREE

from syncd.core import syntax
from syncd.directory import names, servers
from syncd.directory.connection import raise_for_result
from syncd.errors import DirectoryRejected
from syncd.settings import LdapSettings

if TYPE_CHECKING:
    from syncd.directory.adapter import Directory

CONSTRAINT_VIOLATION = 19
PASSWORD_RESTRICTION = "0000052D"


def domain_of(base_dn: str) -> tuple[str, str] | None:
    """(DNS domain, domain DN) of the ``dc=`` components ending ``base_dn``, or None."""
    rdns = names.parse_dn(base_dn)
    dcs: list[str] = []
    for rdn in reversed(rdns):
        if len(rdn) != 1 or rdn[0][0].lower() != "dc" or not isinstance(rdn[0][1], str):
            break
        dcs.insert(0, rdn[0][1])
    if not dcs:
        return None
    return ".".join(dcs), names.format_dn(rdns[len(rdns) - len(dcs):])


def user_defaults(directory: "Directory", account_id: str, entry: dict[str, list[str]]) -> None:
    """Complete a new user's ``entry``: sAMAccountName (checked unique), userPrincipalName,
    userAccountControl (see the module docstring)."""
    try:
        sam = syntax.sam_account_name(account_id)
    except ValueError as exc:
        raise DirectoryRejected(f"cannot create the AD user {account_id!r}: {exc}") from exc
    domain = domain_of(directory.layout.base_dn)
    if domain is not None:
        dns, domain_dn = domain
        result, found = directory._search(domain_dn, names.filter_eq("sAMAccountName", sam), SUBTREE, ["1.1"],
                                          size_limit=1)
        raise_for_result(result, operation="search", dn=domain_dn, ok={0, 4})
        if found:
            raise DirectoryRejected(f"cannot create the AD user {account_id!r}: its sAMAccountName {sam!r} "
                                    f"is already {found[0]['dn']!r}'s")
        entry.setdefault("userPrincipalName", [f"{sam}@{dns}"])
    entry["sAMAccountName"] = [sam]
    if not any(k.lower() == "useraccountcontrol" for k in entry):
        entry["userAccountControl"] = [str(servers.NORMAL_ACCOUNT)]
    if is_encrypted(directory.settings):
        # Windows refuses to enable an account without a password that meets the policy: a
        # random one nobody knows, until the person sets theirs through the reset link.
        entry["unicodePwd"] = [unicode_pwd(_unusable_password())]


def group_defaults(group_name: str, entry: dict[str, list[str]]) -> None:
    """Complete a new group's ``entry``: a global security group. Its sAMAccountName is left to
    the DC, which makes one up unique in the domain: a role's group name is unique in syncd's
    groups branch only, and applications know groups by DN or SID."""
    entry.setdefault("groupType", [servers.GLOBAL_SECURITY_GROUP])


def _unusable_password() -> str:
    """A password nobody knows that meets AD's complexity rules (four kinds of characters)."""
    return "Aa1!" + secrets.token_urlsafe(30)


def is_encrypted(settings: LdapSettings) -> bool:
    """Whether every connection syncd opens with ``settings`` is encrypted."""
    return settings.tls.mode != "none" or all(u.strip().lower().startswith("ldaps://") for u in settings.urls)


def check_encrypted(settings: LdapSettings, dn: str) -> None:
    """Refuse to send a password to AD on a connection that may be in clear."""
    if not is_encrypted(settings):
        raise DirectoryRejected(f"cannot set the password of {dn!r}: Active Directory takes passwords over "
                                "an encrypted connection only; set ldap.tls.mode (ldaps or starttls)")


def unicode_pwd(password: str) -> bytes:
    """The ``unicodePwd`` value of ``password``: in double quotes, UTF-16LE."""
    return f'"{password}"'.encode("utf-16-le")


def password_result(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """AD's refusal of a password by policy, worded for the password page (constraintViolation
    stays its code; the message says it is the domain's password policy)."""
    if result and result.get("result") == CONSTRAINT_VIOLATION and PASSWORD_RESTRICTION in str(result.get("message")):
        history = "history" in str(result.get("message")).lower()
        return dict(result, message="the domain's password policy refused it"
                    + (" (password history)" if history else " (length, complexity or age)"))
    return result
