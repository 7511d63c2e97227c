"""Drift made behind syncd's back: a share of the accounts and of the member values.

Of the accounts drifted: half get another phone number in LDAP (*changed*), a quarter another
e-mail in LDAP (*renamed*), a quarter are new active accounts of the database (with ~6
memberships each) that LDAP does not have (*missing*). Of the member values: half of the
share is removed from its group, the other half added where the database does not want it
(*extra* members). LDAP writes use plain ldap3, member changes batched per group.

Why missing accounts are made on the database side rather than by deleting entries: on this
configuration deleting a person costs ~0.5 s (the memberof overlay rewrites each of its
groups, some of 100k members; measured 3 ms without the overlay), and refint then goes on
removing it from its groups in a background thread for minutes — a reconciliation started
meanwhile reads member values refint is about to remove. The drift syncd sees is the same.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE
from sqlalchemy.engine import Engine

from bench import sql as bsql
from bench.data import NOW, DataSet
from bench.raw import Ldap, connect
from syncd.directory import names


def _check(result: dict, what: str) -> None:
    if result["result"] != 0:
        raise RuntimeError(f"{what} failed: {result}")


def make_drift(ldap: Ldap, engine: Engine, data: DataSet, share: float,
               also_held: set[tuple[int, int]] = frozenset(), seed: int = 99) -> dict[str, int]:
    """``also_held``: (account, role) pairs LDAP holds beyond the data set (applied requests)."""
    rng = random.Random(seed)
    layout = data.mappings.directory
    roles = data.roles
    conn = connect(ldap)
    person = lambda i: names.person_dn(layout, data.accounts[i]["id"])  # noqa: E731
    picked = rng.sample(range(data.size), max(4, int(data.size * share)))
    quarter = len(picked) // 4
    changed, renamed, new = picked[: 2 * quarter], picked[2 * quarter: 3 * quarter], len(picked) - 3 * quarter
    for i in changed:
        _, r, _, _ = conn.modify(person(i), {"telephoneNumber": [(MODIFY_REPLACE, ["+33 9 99 99 99 99"])]})
        _check(r, "phone change")
    for i in renamed:
        _, r, _, _ = conn.modify(person(i), {"mail": [(MODIFY_REPLACE, [f"renamed.{i}@example.org"])]})
        _check(r, "mail change")

    active = [(i, r) for i, r, revoked in data.memberships if not revoked]
    held = {(i, r) for i, r, _ in data.memberships} | set(also_held)
    n_values = max(2, int(len(active) * share))
    removals: dict[int, list[str]] = defaultdict(list)
    for i, r in rng.sample(active, n_values // 2):
        removals[r].append(person(i))
    additions: dict[int, list[str]] = defaultdict(list)
    added = 0
    while added < n_values - n_values // 2:
        i, r = rng.randrange(data.size), rng.randrange(len(roles))
        if (i, r) in held:
            continue
        held.add((i, r))
        additions[r].append(person(i))
        added += 1
    for changes, op in ((removals, MODIFY_DELETE), (additions, MODIFY_ADD)):
        for r, dns in changes.items():
            group = names.group_dn(layout, roles[r].group)
            for k in range(0, len(dns), 500):
                _, res, _, _ = conn.modify(group, {"member": [(op, dns[k:k + 500])]})
                _check(res, "member change")
    conn.unbind()

    accounts, rows = _new_accounts(data, new, rng)
    bsql.bulk_insert(engine, "accounts", bsql.ACCOUNT_COLUMNS, accounts)
    bsql.bulk_insert(engine, "memberships", bsql.MEMBERSHIP_COLUMNS, rows)
    return {"accounts_changed": len(changed), "accounts_renamed": len(renamed), "accounts_missing": new,
            "missing_accounts_memberships": len(rows), "members_removed": n_values // 2, "members_added": added}


def _new_accounts(data: DataSet, count: int, rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    accounts, rows = [], []
    for k in range(count):
        template = data.accounts[rng.randrange(data.size)]
        account = dict(template, id=f"{rng.getrandbits(128):032x}", email=f"new.{k}@urssaf.fr",
                       created_at=NOW - timedelta(hours=2), updated_at=NOW - timedelta(hours=2),
                       ldap_synced_at=None, version=1, ldap_version=None)
        accounts.append(account)
        for r in rng.sample(range(len(data.roles)), 6):
            rows.append({"account_id": account["id"], "role_key": data.roles[r].key, "granted_by_request": None,
                         "granted_at": NOW - timedelta(hours=1), "expires_at": None, "revoked_at": None,
                         "applied_at": None})
    return accounts, rows
