"""``syncd plan``: what loading a set of mappings would do in LDAP, before SIGHUP applies it."""

from __future__ import annotations

import json
from collections import Counter


def add_commands(sub) -> None:
    plan = sub.add_parser("plan", help="show what a mappings change would do in LDAP before applying it")
    plan.add_argument("--mappings", help="the mappings folder to compare (default: the configured one)")
    plan.add_argument("--json", action="store_true")


def dispatch(args, runtime_factory) -> int | None:
    if args.command != "plan":
        return None
    from syncd.mappings import load_mappings

    rt = runtime_factory()
    try:
        changes = mapping_plan(rt, load_mappings(args.mappings) if args.mappings else rt.mappings)
    finally:
        rt.close()
    if args.json:
        print(json.dumps([c.__dict__ for c in changes], ensure_ascii=False, indent=2))
    elif not changes:
        print("no change in LDAP")
    else:
        for c in changes:
            print(f"{c.kind:22} {c.key:40} {c.detail}")
    return 0


def mapping_plan(rt, new):
    """Read what syncd provisioned in LDAP and the granted habilitations; compare with ``new``."""
    from syncd.core.mapping_changes import plan_mapping_change
    from syncd.directory import names
    from syncd.store import grants
    from syncd.store.db import transaction

    layout = rt.mappings.directory
    role_key = rt.directory.traits.name("syncdRoleKey")     # where the server keeps it (AD: adminDisplayName)
    groups = [(e[role_key][0], e[layout.groups.rdn_attribute][0]) for e in rt.directory.iter_entries(
        names.branch_dn(layout, "groups"), names.filter_present(role_key),
        [role_key, layout.groups.rdn_attribute], scope="one") if e[role_key]]
    orgs = [e[layout.organisations.rdn_attribute][0] for e in rt.directory.iter_entries(
        names.branch_dn(layout, "organisations"), names.filter_present(layout.organisations.rdn_attribute),
        [layout.organisations.rdn_attribute], scope="one")]
    with transaction(rt.engine, readonly=True) as conn:
        members = Counter(grants.held_role_keys(conn))
    return plan_mapping_change(new, groups, orgs, members)
