"""The incremental reconciliation (``syncd reconcile --since-last``, the daemon's frequent job).

It asks the directory for what changed since the last run — ``(entryCSN>=cursor)`` on
OpenLDAP, an index-served search (``syncd.directory.stamps``) — and checks only that:

* **people** changed since the cursor, by syncd or anybody else: each entry comes back whole
  in the one search; one whose stamp is the one syncd recorded with the row's version is
  trusted, the others are compared with their rows (read after LDAP) as a full run does, and
  an entry the database does not know is reported as *extra*;
* **role groups** changed since the cursor: their member lists are planned exactly as in a
  full run (``Planner._plan_one_group``).

Stamps counted per server (AD's uSNChanged, per domain controller): the cursor is stored with
the server's identity (``syncd.directory.stamps``) and a cursor of another server gives a full
run instead, which stores a cursor of this one.

What it cannot see: a deleted entry has no stamp left to find, so a person or a group deleted
behind syncd's back is found by the next full run only (a group that lost a deleted person's
membership through refint did change, and is checked). Changes made in the database are the
accounts and apply jobs' to write; this run looks at the directory's side.
"""

from __future__ import annotations

import time

import structlog

from syncd.directory import names
from syncd.reconcile.ldapread import LeanReader
from syncd.reconcile.model import Plan
from syncd.reconcile.planning import SUSPECT_BATCH, Planner
from syncd.store.stamps import Cursor

SCOPE = "incremental"
log = structlog.get_logger(__name__)


def plan_since(planner: Planner, cursor: Cursor) -> Plan:
    """What changed in the directory at or after ``cursor``, compared with the database; a full
    plan when another server counted the cursor (AD: another DC, or this one restored)."""
    plan = Plan(SCOPE)
    started = time.perf_counter()
    since = planner.stamps.since_filter(cursor.stamp)
    with planner.reader() as reader:
        planner.read_start_cursor(reader)
        if not planner.trusts(cursor):
            log.warning("reconcile_cursor_of_another_server", recorded=cursor.server, server=planner.server_id,
                        stamp=planner.stamps.attribute)
            reader.close()
            return planner.plan_full()
        t = time.perf_counter()
        _people(planner, reader, since, plan)
        plan.seconds["people"] = time.perf_counter() - t
        t = time.perf_counter()
        _groups(planner, reader, since, plan)
        plan.seconds["groups"] = time.perf_counter() - t
    planner.propose_cursor(cursor.stamp, time.perf_counter() - started)
    return plan


def _people(planner: Planner, reader: LeanReader, since: str, plan: Plan) -> None:
    keys = planner.keys
    flt = names.filter_and(keys.people_filter, since)
    batch: list[tuple[str, str, dict[str, list[str]]]] = []
    for dn, attrs in reader.search(keys.branch, flt, planner.entry_attributes, scope="one",
                                   page_size=planner.config.page_size, missing_ok=True):
        plan.people_in_ldap += 1
        planner.seen(attrs.get(planner.stamp_key, ()))
        account_id = keys.account_id_of_dn(dn)
        if account_id is None:               # not named like syncd's people: reported as extra
            planner.report_extra(dn, attrs, plan)
            plan.extra_accounts_total += 1
            continue
        batch.append((keys.of_dn(dn), account_id, attrs))
    planner.reads["changed_entries"] = len(batch)
    for start in range(0, len(batch), SUSPECT_BATCH):
        planner.compare_entries(batch[start:start + SUSPECT_BATCH], plan, extras=True)
    planner.record_verified()


def _groups(planner: Planner, reader: LeanReader, since: str, plan: Plan) -> None:
    branch = names.branch_dn(planner.layout, "groups")
    for dn, attrs in reader.search(branch, since, [planner.member_attr, planner.stamps.attribute],
                                   scope="one", page_size=10, missing_ok=True):
        planner.seen(attrs.get(planner.stamp_key, ()))
        role = planner.role_by_group_key.get(names.normalise_dn(dn))
        if role is None:
            continue
        planner.reads["changed_groups"] += 1
        planner.plan_one_group(role, dn, attrs.get(planner.member_attr.lower(), []), plan)
