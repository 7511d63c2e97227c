"""Provision: make the directory's skeleton match the mappings.

Branches, one entry per organisation (with its correspondents as DNs) and one group per role.
Every call is idempotent, so the daemon runs it at start and at an interval.
"""

from __future__ import annotations

from collections import defaultdict

import structlog

from syncd.core.model import DeciderScope
from syncd.directory import names
from syncd.jobs.runtime import Runtime
from syncd.store import repo
from syncd.store.db import transaction

log = structlog.get_logger(__name__)


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
    directory.ensure_branches()
    for org in rt.mappings.organisations:
        directory.upsert_organisation(org.code, org.name, org.branch, sorted(correspondents.get(org.code, [])))
    groups = 0
    for app in rt.mappings.applications:
        for role in app.roles:
            directory.ensure_group(role.group, role.key, app.key, role.label)
            groups += 1
    log.info("directory_provisioned", organisations=len(rt.mappings.organisations), groups=groups)
    return len(rt.mappings.organisations) + groups
