"""Provision: make the directory's skeleton match the mappings.

Branches, one entry per organisation (with its correspondents as DNs) and one group per role.
Every call is idempotent, so the daemon runs it at start and at an interval.

Every entry it creates or changes gets an audit row (actor ``syncd``, the entry's DN as target):
``ldap_container_created`` (the base and the branches), ``ldap_organisation_written`` (created
or updated, with the values written: name, branch, correspondents), ``ldap_group_created`` /
``ldap_group_updated`` (a role group; "updated" also when its placeholder member was put back).
A run that finds everything in place records nothing. The rows are written once the LDAP writes
are done, also when the run stops half-way on an error: what was changed is in the trail.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import structlog

from syncd.core.model import DeciderScope
from syncd.directory import names
from syncd.runtime import Runtime
from syncd.store import audit, repo
from syncd.store.db import transaction

log = structlog.get_logger(__name__)

ACTOR = "syncd"


def provision(rt: Runtime) -> int:
    now = rt.clock()
    layout = rt.mappings.directory
    with transaction(rt.engine) as conn:
        repo.upsert_organisations(conn, rt.mappings.organisations, now)
        correspondents: dict[str, list[str]] = defaultdict(list)
        for d in repo.current_deciders(conn):
            if d.scope is DeciderScope.CORRESPONDENT and d.organisation_code:
                correspondents[d.organisation_code].append(names.person_dn(layout, d.account_id))
    directory = rt.directory
    trail: list[audit.Entry] = []

    def changed(action: str, dn: str, detail: dict[str, Any]) -> None:
        trail.append(audit.Entry(at=rt.clock(), actor=ACTOR, action=action, target=dn, detail=detail))

    groups = 0
    try:
        for dn in directory.ensure_branches():
            changed("ldap_container_created", dn, {})
        for org in rt.mappings.organisations:
            dns = sorted(correspondents.get(org.code, []))
            outcome = directory.upsert_organisation(org.code, org.name, org.branch, dns)
            if outcome != "unchanged":
                changed("ldap_organisation_written", names.organisation_dn(layout, org.code),
                        {"outcome": outcome, "code": org.code, "name": org.name, "branch": org.branch,
                         "correspondents": dns})
        for app in rt.mappings.applications:
            for role in app.roles:
                outcome = directory.ensure_group(role.group, role.key, app.key, role.label, application_label=app.label)
                if outcome != "unchanged":
                    changed(f"ldap_group_{outcome}", names.group_dn(layout, role.group),
                            {"role_key": role.key, "application_key": app.key})
                groups += 1
    finally:
        if trail:
            with transaction(rt.engine) as conn:
                audit.record_many(conn, trail)
    log.info("directory_provisioned", organisations=len(rt.mappings.organisations), groups=groups,
             changes=len(trail))
    return len(rt.mappings.organisations) + groups
