"""What a reconciliation found: drift per account and per group, and totals. Plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# missing:  in the database (active), no entry in LDAP                       -> create
# renamed:  same id, the e-mail or the names differ                          -> update
# changed:  other owned attributes differ                                    -> update
# disable:  disabled in the database, not in LDAP                            -> update (disable)
# extra:    an entry in the people branch the database does not know         -> report (or disable)
AccountKind = Literal["missing", "renamed", "changed", "disable", "extra"]


@dataclass
class AccountDrift:
    account_id: str
    kind: AccountKind
    dn: str
    email: str | None = None
    # LDAP attribute -> (values in LDAP, values wanted); only attributes that differ
    attributes: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    action: Literal["create", "update", "disable", "none"] = "update"
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "kind": self.kind, "action": self.action, "dn": self.dn,
                "email": self.email, "note": self.note,
                "attributes": {a: {"ldap": have, "wanted": want} for a, (have, want) in self.attributes.items()}}


@dataclass
class GroupDrift:
    role_key: str
    group: str
    dn: str
    ownership: Literal["exclusive", "shared"]
    missing: bool = False              # the group entry does not exist: create it
    add: list[str] = field(default_factory=list)       # account ids to add
    add_dns: list[str] = field(default_factory=list)   # their DNs, as written
    remove: list[str] = field(default_factory=list)    # member values to remove, as stored
    current: int = 0                   # member values now (placeholder left out)
    desired: int = 0                   # members the database wants
    kept_foreign: int = 0              # shared group: members syncd did not grant, left alone

    @property
    def size(self) -> int:
        return len(self.add) + len(self.remove)

    def to_json(self) -> dict[str, Any]:
        return {"role_key": self.role_key, "group": self.group, "dn": self.dn, "ownership": self.ownership,
                "missing": self.missing, "current": self.current, "desired": self.desired,
                "kept_foreign": self.kept_foreign, "add": self.add_dns, "remove": self.remove}


@dataclass
class Plan:
    scope: str                                    # "full", "account:<id>", "group:<role key>"
    accounts: list[AccountDrift] = field(default_factory=list)
    groups: list[GroupDrift] = field(default_factory=list)   # only groups with drift
    people_in_ldap: int = 0
    accounts_in_db: int = 0                       # active or disabled: expected in LDAP
    member_values: int = 0                        # in the groups read, placeholders left out
    desired_memberships: int = 0
    groups_checked: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    extra_accounts_total: int = 0                 # may exceed len([a for a in accounts if extra]) (capped)

    @property
    def member_adds(self) -> int:
        return sum(len(g.add) for g in self.groups)

    @property
    def member_removes(self) -> int:
        return sum(len(g.remove) for g in self.groups)

    @property
    def account_changes(self) -> int:
        return sum(1 for a in self.accounts if a.action != "none")

    @property
    def changes(self) -> int:
        """Directory writes the plan asks for (accounts + member values + groups created)."""
        return self.account_changes + self.member_adds + self.member_removes + len(self.missing_groups)

    @property
    def missing_groups(self) -> list[GroupDrift]:
        return [g for g in self.groups if g.missing]

    @property
    def clean(self) -> bool:
        return not self.accounts and not self.groups

    def totals(self) -> dict[str, int]:
        count = lambda kind: sum(1 for a in self.accounts if a.kind == kind)  # noqa: E731
        return {
            "people_in_ldap": self.people_in_ldap,
            "accounts_expected": self.accounts_in_db,
            "accounts_missing": count("missing"),
            "accounts_renamed": count("renamed"),
            "accounts_changed": count("changed"),
            "accounts_to_disable": count("disable"),
            "accounts_extra": max(count("extra"), self.extra_accounts_total),
            "groups_checked": self.groups_checked,
            "groups_missing": len(self.missing_groups),
            "groups_with_drift": len(self.groups),
            "member_values": self.member_values,
            "desired_memberships": self.desired_memberships,
            "member_adds": self.member_adds,
            "member_removes": self.member_removes,
            "changes": self.changes,
        }

    def to_json(self) -> dict[str, Any]:
        return {"scope": self.scope, "totals": self.totals(),
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "accounts": [a.to_json() for a in self.accounts],
                "groups": [g.to_json() for g in self.groups]}
