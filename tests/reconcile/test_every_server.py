"""Reconciliation on every server syncd supports (``server_kind``, tests/fixtures_kinds.py), syncd
bound as its service account: a directory in line with the database reconciles clean (each
server's spelling of DNs, AD's ``displayName`` for the full name and its disable bit among the
domain's own bits), drift in memberships and accounts is repaired without the permissive-modify
control where the server has none, a lock lifted behind syncd's back is set again, a missing
branch is no empty branch, an incremental run finds what others changed since the last run by
each server's change stamp (entryCSN, entryUSN, uSNChanged), and a group of 5,000 members is read
whole (through range retrieval on AD) and repaired member by member.

What differs by server is asked of its traits (``syncd.directory.servers``) or of the test
server's facts (``KindServer``), never of its name.
"""

from __future__ import annotations

import pytest
from ldap3 import MODIFY_DELETE, MODIFY_REPLACE
from sqlalchemy import insert, update
from structlog.testing import capture_logs

from syncd.core.model import DirectoryKind
from syncd.directory import names, ranges, servers
from syncd.directory.connection import NoSuchEntry, open_connection, safe_close
from syncd.directory.stamps import stamp_profile
from syncd.jobs import provision
from syncd.reconcile.config import ReconcileConfig
from syncd.reconcile.ldapread import LeanReader
from syncd.reconcile.service import run_reconcile
from syncd.store.db import transaction
from syncd.mappings import Mappings
from syncd.store.tables import accounts, memberships
from tests.fixtures_ad import BULK_GROUP, BULK_MEMBERS, ad_mappings, ad_sample_layout, bulk_members
from tests.fixtures_kinds import SUFFIX, shows_locked
from tests.fixtures_runtime import build_runtime
from tests.reconcile.conftest import reconcile_mappings
from tests.reconcile.helpers import Ldap, account, dn, entry, grant, key, members, reconcile

pytestmark = [pytest.mark.slapd, pytest.mark.long(60)]

ROLE = "accords-locaux-acces"
PASSWORD = "Un mot de passe solide 42"


@pytest.fixture
def rt(make_kind_runtime):
    runtime = make_kind_runtime(reconcile_mappings)
    provision.provision(runtime)
    return runtime


def as_admin(kind_server, op: str, *args) -> None:
    """A change behind syncd's back, as the directory's administrator."""
    conn = open_connection(kind_server.admin_settings)
    try:
        _, result, _, _ = getattr(conn, op)(*args)
    finally:
        safe_close(conn)
    assert result["result"] == 0, result


def disable_in_database(rt, account_id: str) -> None:
    with transaction(rt.engine) as conn:
        conn.execute(update(accounts).where(accounts.c.id == account_id).values(status="disabled"))


def status_attribute(rt) -> str:
    return rt.mappings.directory.people.attributes["status"].ldap


def test_a_directory_in_line_with_the_database_reconciles_clean(rt):
    a, b = account(rt, "alice"), account(rt, "bruno")
    grant(rt, a, ROLE)
    grant(rt, b, ROLE)
    outcome = reconcile(rt)
    assert outcome.plan.clean and outcome.state == "clean"
    t = outcome.plan.totals()
    assert (t["people_in_ldap"], t["accounts_expected"], t["member_values"]) == (2, 2, 2)


def test_drift_in_memberships_and_accounts_is_repaired_and_a_disabled_account_is_locked(rt, kind_server):
    a, b, c = account(rt, "alice"), account(rt, "bruno"), account(rt, "chloe")
    grant(rt, a, ROLE)
    grant(rt, b, ROLE)
    Ldap(rt).remove_member(ROLE, dn(rt, a))            # lost from the directory
    Ldap(rt).add_member(ROLE, dn(rt, c))               # added behind syncd's back
    full_name = kind_server.traits.common_name_attribute     # cn, or AD's displayName
    as_admin(kind_server, "modify", dn(rt, a), {full_name: [(MODIFY_REPLACE, ["Quelqu'un d'autre"])]})
    disable_in_database(rt, b)
    rt.directory.set_password(b, PASSWORD)
    assert rt.directory.can_bind(dn(rt, b), PASSWORD) is True

    outcome = reconcile(rt)
    assert outcome.state == "applied"
    assert members(rt, ROLE) == {key(rt, a)}
    assert entry(rt, a, full_name) == {full_name: ["Alice Testeur"]}
    assert entry(rt, b, status_attribute(rt))[status_attribute(rt)] == ["disabled"]
    assert shows_locked(rt.directory, dn(rt, b)) is True
    assert rt.directory.can_bind(dn(rt, b), PASSWORD) is False
    assert reconcile(rt).plan.clean


def test_a_disabled_account_whose_lock_was_lifted_behind_syncds_back_is_locked_again(rt, kind_server):
    # also what an upgrade finds: accounts disabled before syncd wrote the server's lock
    a = account(rt, "alice")
    rt.directory.set_password(a, PASSWORD)
    disable_in_database(rt, a)
    reconcile(rt)
    assert rt.directory.can_bind(dn(rt, a), PASSWORD) is False
    t = kind_server.traits
    if t.lock_bit:            # AD: the disable bit cleared, the domain's other bits kept
        uac = int(entry(rt, a, t.lock_attribute)[t.lock_attribute][0])
        lifted = {t.lock_attribute: [(MODIFY_REPLACE, [str(uac & ~t.lock_bit)])]}
    elif t.lock_attribute:    # 389-DS: nsAccountLock removed
        lifted = {t.lock_attribute: [(MODIFY_DELETE, [])]}
    else:                     # OpenLDAP: the access rules read the status
        lifted = {status_attribute(rt): [(MODIFY_REPLACE, ["active"])]}
    as_admin(kind_server, "modify", dn(rt, a), lifted)
    assert rt.directory.can_bind(dn(rt, a), PASSWORD) is True

    plan = reconcile(rt, dry_run=True).plan
    assert [(x.account_id, x.action) for x in plan.accounts] == [(a, "update")]
    reconcile(rt)
    assert rt.directory.can_bind(dn(rt, a), PASSWORD) is False
    assert reconcile(rt).plan.clean


def test_a_missing_branch_is_no_such_entry_for_the_reader_not_an_empty_branch(rt):
    # 389-DS answers a paged search of a missing base with success and no entry
    people = names.branch_dn(rt.mappings.directory, "people")
    missing = "ou=nope," + people
    a = account(rt, "alice")
    with LeanReader(rt.settings.ldap) as reader:
        assert list(reader.search(missing, "(objectClass=*)", ["cn"], missing_ok=True)) == []
        with pytest.raises(NoSuchEntry):
            list(reader.search(missing, "(objectClass=*)", ["cn"]))
        assert [names.normalise_dn(d) for d, _ in reader.search(people, "(objectClass=*)", ["cn"])] == [key(rt, a)]


# -- incremental runs: each server's change stamp ------------------------------------------------

def run(rt, *, since_last: bool = False, dry_run: bool = True):
    """A run, and what it read (its ``reconcile_entries_read`` event)."""
    with capture_logs() as logs:
        outcome = run_reconcile(rt, ReconcileConfig(max_percent=None), dry_run=dry_run, since_last=since_last)
    reads = [e for e in logs if e["event"] == "reconcile_entries_read"]
    assert len(reads) == 1, logs
    return outcome, reads[0]


def test_drift_made_by_others_after_the_last_run_is_found_by_the_incremental_run(rt, kind_server):
    a, b = account(rt, "alice"), account(rt, "bruno")
    grant(rt, a, ROLE)
    grant(rt, b, ROLE)
    outcome, _ = run(rt)
    assert outcome.plan.clean

    Ldap(rt).replace(dn(rt, a), "mail", ["someone.else@example.org"])
    Ldap(rt).remove_member(ROLE, dn(rt, b))
    outcome, reads = run(rt, since_last=True)
    assert outcome.plan.scope == "incremental"
    assert [(x.account_id, x.kind) for x in outcome.plan.accounts] == [(a, "renamed")]
    assert [(g.role_key, g.add) for g in outcome.plan.groups] == [(ROLE, [b])]
    # Only the entries whose stamp moved were compared: alice's (her mail), and bruno's where
    # the server wrote his memberOf when he left the group (389-DS); a margin before the last
    # run (entryCSN) returns both, the other trusted.
    assert reads["changed_entries"] >= 1 + kind_server.member_of_moves_stamp, reads
    assert reads["compared"] == 1 + kind_server.member_of_moves_stamp, reads


def test_an_incremental_run_repairs_what_it_found_and_the_next_one_finds_nothing(rt):
    a = account(rt, "alice")
    run(rt)
    phone = rt.mappings.directory.people.attributes["phone"].ldap
    Ldap(rt).replace(dn(rt, a), phone, ["+33 1 00 00 00 00"])
    outcome, _ = run(rt, since_last=True, dry_run=False)
    assert outcome.state == "applied" and outcome.plan.scope == "incremental"
    assert entry(rt, a, phone)[phone] == []
    # A write returns the entry's new stamp where the server has the post-read control; AD's
    # uSNChanged is not returned with a write, so the entry is compared once more, then trusted.
    outcome, reads = run(rt, since_last=True)
    assert outcome.plan.clean
    assert reads.get("compared", 0) == (0 if stamp_profile(rt.mappings.directory.kind).post_read else 1), reads
    outcome, reads = run(rt, since_last=True)
    assert outcome.plan.clean and reads.get("compared", 0) == 0, reads


# -- a group of many members: read whole (by ranges on AD), repaired member by member ---------------

BULK_ROLE = "bulk-readers"


def bulk_mappings(base_dn: str) -> Mappings:
    """The reconcile mappings plus a role whose group is the bulk group of tests/fixtures_ad.py."""
    data = reconcile_mappings(base_dn).model_dump(mode="json")
    data["applications"].append({"key": "bulk", "label": "Bulk", "management": "central", "roles": [
        {"key": BULK_ROLE, "label": "Bulk - lecture", "group": BULK_GROUP}]})
    return Mappings.model_validate(data)


@pytest.fixture
def bulk_rt(server_kind, request, db_url, smtp_settings, clock):
    """A syncd whose role ``BULK_ROLE`` has ``BULK_MEMBERS`` members, in the database and in the
    directory: on AD the DC copied from the bulk template (its 5,000 users are built once per run),
    elsewhere a group of that many member values (they need not name entries there)."""
    if server_kind == DirectoryKind.ACTIVE_DIRECTORY.value:
        dc = request.getfixturevalue("samba_ad_bulk")
        ldap = dict(dc.ldap_settings().model_dump(), bind_password=dc.service_password)
        rt = build_runtime(db_url, ldap, ad_mappings(bulk_mappings(SUFFIX), ad_sample_layout()), smtp_settings, clock)
        request.addfinalizer(rt.close)
    else:
        rt = request.getfixturevalue("make_kind_runtime")(bulk_mappings)
    provision.provision(rt)
    bulk = bulk_members(rt.mappings.directory)
    if server_kind != DirectoryKind.ACTIVE_DIRECTORY.value:
        rt.directory.add_members(BULK_GROUP, [dn for dn, _ in bulk])
    now = rt.clock()
    with transaction(rt.engine) as conn:
        conn.execute(insert(accounts), [
            {"id": i, "email": f"{i}@example.org", "given_name": "Bulk", "family_name": i, "status": "active",
             "primary_organisation": "CARSAT-RA", "internal": False, "created_at": now, "updated_at": now}
            for _, i in bulk])
        conn.execute(insert(memberships), [{"account_id": i, "role_key": BULK_ROLE, "granted_at": now,
                                            "applied_at": now} for _, i in bulk])
    return rt


@pytest.mark.timeout(900)     # on AD, the first test to ask builds the bulk template: minutes
def test_a_group_of_5000_members_is_read_whole_and_only_its_drift_is_repaired(bulk_rt, monkeypatch):
    rt = bulk_rt
    bulk = bulk_members(rt.mappings.directory)
    (lost_dn, lost), (_, revoked) = bulk[0], bulk[-1]
    Ldap(rt).remove_member(BULK_ROLE, lost_dn)              # lost from the directory
    with transaction(rt.engine) as conn:                   # revoked in the database, still a member
        conn.execute(update(memberships).where(memberships.c.account_id == revoked).values(revoked_at=rt.clock()))
    asked: list[str] = []
    real = ranges.ranged
    monkeypatch.setattr(ranges, "ranged", lambda *a, **k: asked.append(real(*a, **k)) or asked[-1])

    [drift] = reconcile(rt, group=BULK_ROLE, dry_run=True).plan.groups
    assert (drift.add, len(drift.remove), drift.current, drift.desired) == ([lost], 1, BULK_MEMBERS - 1,
                                                                           BULK_MEMBERS - 1)
    assert names.normalise_dn(drift.remove[0]) == key(rt, revoked)
    assert reconcile(rt, group=BULK_ROLE).state == "applied"
    assert members(rt, BULK_ROLE) == {names.normalise_dn(dn) for dn, _ in bulk[:-1]}
    assert reconcile(rt, group=BULK_ROLE).plan.clean
    # AD caps a plain read of a member list (MaxValRange): syncd asks by ranges there, whole elsewhere
    assert bool(asked) is servers.traits(rt.mappings.directory.kind).ranged_members
