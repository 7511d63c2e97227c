"""What a change of mappings would do in the directory, computed before it is applied.

Compares the role groups and organisations syncd provisioned in LDAP (each group carries its
role key) with the mappings about to be loaded, and says per role or organisation what will
happen: a group created, a role whose group is renamed, a role removed (its group is left in
place, unmanaged), an organisation added or withdrawn. ``members`` counts the habilitations
currently granted per role, so the operator sees how many people a change touches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from syncd.core.mappings import Mappings


@dataclass(frozen=True)
class MappingChange:
    kind: str           # group_created / group_renamed / role_removed / organisation_added / organisation_removed
    key: str            # role key or organisation code
    detail: str         # one plain sentence
    members: int = 0    # habilitations currently granted that the change touches


def plan_mapping_change(
    new: Mappings,
    ldap_groups: Iterable[tuple[str, str]],      # (role key, group name) as provisioned in LDAP
    ldap_organisations: Iterable[str],           # organisation codes present in LDAP
    members: Mapping[str, int],                  # role key -> habilitations granted now
) -> list[MappingChange]:
    changes: list[MappingChange] = []
    in_ldap = {role: group for role, group in ldap_groups}
    wanted = {r.key: r.group for app in new.applications for r in app.roles}
    for role, group in sorted(wanted.items()):
        old = in_ldap.get(role)
        if old is None:
            changes.append(MappingChange("group_created", role, f"group {group!r} will be created (empty)."))
        elif old.lower() != group.lower():
            n = members.get(role, 0)
            changes.append(MappingChange(
                "group_renamed", role,
                f"group {old!r} becomes {group!r}: the new group is created and its {n} members are "
                f"added by reconciliation; {old!r} is left in place, unmanaged, for applications to move.", n))
    for role, group in sorted(in_ldap.items()):
        if role not in wanted:
            n = members.get(role, 0)
            changes.append(MappingChange(
                "role_removed", role,
                f"role {role!r} leaves the mappings: group {group!r} and its {n} members stay in LDAP, "
                f"no longer managed; pending requests for it will be rejected as unknown.", n))
    codes = {o.code for o in new.organisations}
    present = set(ldap_organisations)
    for code in sorted(codes - present):
        changes.append(MappingChange("organisation_added", code, f"organisation {code!r} will be created."))
    for code in sorted(present - codes):
        changes.append(MappingChange(
            "organisation_removed", code,
            f"organisation {code!r} leaves the mappings: its entry stays; new requests naming it are rejected."))
    return changes
