"""Change stamps and incremental runs, on a real slapd with SQLite and PostgreSQL; on a Samba AD
DC, the cursor tied to the domain controller that counted it (the same runs on every server:
tests/reconcile/test_every_server.py).

What a run read is asserted from its ``reconcile_entries_read`` event: ``suspects`` (entries
whose stamp or fields moved), ``entries`` (read in full by a full run), ``compared`` (compared
attribute by attribute), ``changed_entries`` (returned by an incremental run's search).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from ldap3 import BASE
from sqlalchemy import select
from structlog.testing import capture_logs

from syncd.directory.connection import open_connection, safe_close
from syncd.directory.stamps import stamp_profile
from syncd.jobs import provision
from syncd.reconcile.config import ReconcileConfig
from syncd.reconcile.service import run_reconcile
from syncd.store import stamps as stamp_store
from syncd.store.db import transaction
from syncd.store.tables import ldap_stamps
from tests.reconcile.conftest import reconcile_mappings
from tests.reconcile.helpers import Ldap, account, dn, entry, grant

pytestmark = pytest.mark.slapd

ROLE = "accords-locaux-acces"


def run(rt, *, since_last: bool = False, dry_run: bool = True):
    """A run, and what it read (its ``reconcile_entries_read`` event)."""
    with capture_logs() as logs:
        outcome = run_reconcile(rt, ReconcileConfig(max_percent=None), dry_run=dry_run, since_last=since_last)
    reads = [e for e in logs if e["event"] == "reconcile_entries_read"]
    assert len(reads) == 1, logs
    return outcome, reads[0]


def recorded_stamp(rt, account_id: str) -> str | None:
    with transaction(rt.engine) as conn:
        return conn.execute(select(ldap_stamps.c.stamp).where(ldap_stamps.c.account_id == account_id)).scalar()


def test_a_write_records_the_stamp_the_server_gave_the_entry(rt):
    a = account(rt, "alice")
    assert recorded_stamp(rt, a) == entry(rt, a, "entryCSN")["entryCSN"][0]


def test_a_steady_full_run_reads_in_full_only_the_entry_whose_stamp_moved(rt):
    a, b, _c = account(rt, "alice"), account(rt, "bruno"), account(rt, "chloe")
    grant(rt, a, ROLE)
    outcome, reads = run(rt)
    assert outcome.plan.clean and reads.get("suspects", 0) == 0 and reads.get("entries", 0) == 0

    Ldap(rt).replace(dn(rt, b), "telephoneNumber", ["+33 1 00 00 00 00"])
    outcome, reads = run(rt)
    assert [(x.account_id, x.kind) for x in outcome.plan.accounts] == [(b, "changed")]
    assert (reads["suspects"], reads["entries"], reads["compared"]) == (1, 1, 1)


def test_an_entry_changed_but_still_equal_is_read_once_then_trusted_again(rt):
    a = account(rt, "alice")
    Ldap(rt).replace(dn(rt, a), "description", ["not an attribute syncd owns"])   # moves entryCSN
    outcome, reads = run(rt)
    assert outcome.plan.clean and reads["suspects"] == 1 and reads["stamps_recorded"] == 1
    assert recorded_stamp(rt, a) == entry(rt, a, "entryCSN")["entryCSN"][0]
    outcome, reads = run(rt)
    assert outcome.plan.clean and reads.get("suspects", 0) == 0


def test_drift_made_by_others_after_the_last_run_is_found_by_the_incremental_run(rt):
    a, b = account(rt, "alice"), account(rt, "bruno")
    grant(rt, a, ROLE)
    grant(rt, b, ROLE)
    outcome, _ = run(rt)
    assert outcome.plan.clean
    with transaction(rt.engine) as conn:
        assert stamp_store.cursor(conn, stamp_profile(rt.mappings.directory.kind).kind)

    Ldap(rt).replace(dn(rt, a), "mail", ["someone.else@example.org"])
    Ldap(rt).remove_member(ROLE, dn(rt, b))
    outcome, reads = run(rt, since_last=True)
    assert outcome.plan.scope == "incremental"
    assert [(x.account_id, x.kind) for x in outcome.plan.accounts] == [(a, "renamed")]
    assert [(g.role_key, g.add) for g in outcome.plan.groups] == [(ROLE, [b])]
    # Only the entry whose stamp moved was compared; the other came back trusted (the search
    # returns every entry changed since the cursor, which is a margin before the last run).
    assert reads["changed_entries"] == 2 and reads["compared"] == 1, reads


def test_an_incremental_run_repairs_what_it_found_and_the_next_one_finds_nothing(rt):
    a = account(rt, "alice")
    run(rt)
    Ldap(rt).replace(dn(rt, a), "telephoneNumber", ["+33 1 00 00 00 00"])
    outcome, _ = run(rt, since_last=True, dry_run=False)
    assert outcome.state == "applied"
    assert entry(rt, a, "telephoneNumber")["telephoneNumber"] == []
    outcome, reads = run(rt, since_last=True)
    assert outcome.plan.clean and reads.get("compared", 0) == 0


def test_a_deletion_is_found_by_the_full_run_only(rt):
    _a, b = account(rt, "alice"), account(rt, "bruno")
    run(rt)
    Ldap(rt).delete(dn(rt, b))
    outcome, _ = run(rt, since_last=True)
    assert outcome.plan.accounts == []
    outcome, _ = run(rt)
    assert [(x.account_id, x.kind) for x in outcome.plan.accounts] == [(b, "missing")]


def test_an_entry_added_by_others_is_reported_by_the_incremental_run(rt):
    account(rt, "alice")
    run(rt)
    Ldap(rt).add_person("intruder", mail="intruder@example.org")
    outcome, _ = run(rt, since_last=True)
    assert [(x.account_id, x.kind, x.action) for x in outcome.plan.accounts] == [("intruder", "extra", "none")]


def test_without_a_previous_run_the_incremental_run_is_a_full_one(rt):
    account(rt, "alice")
    outcome, _ = run(rt, since_last=True)
    assert outcome.plan.scope == "full" and outcome.plan.clean


def test_when_most_entries_are_suspects_one_read_of_the_branch_finds_the_same(rt, monkeypatch):
    from syncd.reconcile import planning
    monkeypatch.setattr(planning, "BULK_SUSPECTS", 0)
    a, b, c = account(rt, "alice"), account(rt, "bruno"), account(rt, "chloe")
    with transaction(rt.engine) as conn:
        stamp_store.forget(conn, [a, b, c])             # as after the upgrade: nothing recorded yet
    Ldap(rt).replace(dn(rt, b), "telephoneNumber", ["+33 1 00 00 00 00"])
    outcome, reads = run(rt)
    assert [(x.account_id, x.kind) for x in outcome.plan.accounts] == [(b, "changed")]
    assert (reads["suspects"], reads["entries"], reads["stamps_recorded"]) == (3, 3, 2)


def test_in_steady_use_only_entries_changed_by_others_become_suspects(rt):
    """What moves a person's entryCSN, measured: a group add does not (memberOf is written
    without it), nor a failed bind; syncd's own writes do but record the new stamp at once; a
    password change does, so that entry is read once at the next run."""
    from syncd.jobs import accounts as accounts_job
    from syncd.jobs import habilitations

    a, b, c, d = account(rt, "alice"), account(rt, "bruno"), account(rt, "chloe"), account(rt, "david")
    run(rt)
    grant(rt, a, ROLE)                                                  # member added to a group
    rt.directory.set_password(b, "Un-mot-de-passe-2026")               # password changed
    habilitations.set_account_status(rt, c, "disabled")                 # syncd writes the status
    habilitations.update_profile(rt, d, {"phone": "+33 4 00 00 00 00"})  # ... and a profile change
    accounts_job.sync_accounts(rt)
    assert not rt.directory.can_bind(dn(rt, a), "not the password")     # a failed bind
    outcome, reads = run(rt)
    assert outcome.plan.clean
    assert reads["suspects"] == 1 and reads["stamps_recorded"] == 1     # bruno, read once
    assert recorded_stamp(rt, b) == entry(rt, b, "entryCSN")["entryCSN"][0]


# -- Active Directory: uSNChanged is counted per domain controller -------------------------------

def invocation_id(samba_ad) -> str:
    """The DC's invocationId, read as its Administrator: the NTDS Settings object the root DSE names."""
    conn = open_connection(samba_ad.admin_settings())
    try:
        _, _, response, _ = conn.search("", "(objectClass=*)", BASE, attributes=["dsServiceName"])
        ntds = response[0]["attributes"]["dsServiceName"]
        _, _, response, _ = conn.search(ntds if isinstance(ntds, str) else ntds[0], "(objectClass=*)", BASE,
                                        attributes=["invocationId"])
        return str(uuid.UUID(bytes_le=response[0]["raw_attributes"]["invocationId"][0]))
    finally:
        safe_close(conn)


@pytest.mark.samba_ad
def test_an_ad_cursor_is_trusted_only_on_the_domain_controller_whose_invocation_id_it_holds(
        make_ad_runtime, samba_ad):
    rt = make_ad_runtime(reconcile_mappings("dc=example,dc=org"))
    provision.provision(rt)
    kind = stamp_profile(rt.mappings.directory.kind).kind
    a = account(rt, "alice")
    outcome, _ = run(rt)
    with transaction(rt.engine) as conn:
        recorded = stamp_store.cursor_of(conn, kind)
    assert recorded.server == invocation_id(samba_ad) and int(recorded.stamp) > 0
    assert run(rt, since_last=True)[0].plan.scope == "incremental"

    # Another DC behind ldap.urls, or this one restored from a backup: another invocationId.
    for other in (str(uuid.uuid4()), None):          # None: a cursor stored before syncd kept the DC
        with transaction(rt.engine) as conn:
            stamp_store.set_cursor(conn, kind, recorded.stamp, rt.clock(), server=other)
        Ldap(rt).replace(dn(rt, a), "telephoneNumber", ["+33 1 00 00 00 00"])
        with capture_logs() as logs:
            outcome = run_reconcile(rt, ReconcileConfig(max_percent=None), since_last=True)
        assert outcome.plan.scope == "full" and outcome.state == "applied"      # not the cursor's word
        assert [e for e in logs if e["event"] == "reconcile_cursor_of_another_server"][0]["recorded"] == other
        with transaction(rt.engine) as conn:
            assert stamp_store.cursor_of(conn, kind).server == invocation_id(samba_ad)   # this DC's, again
        assert run(rt, since_last=True)[0].plan.scope == "incremental"


@pytest.mark.samba_ad
def test_stamps_recorded_on_one_ad_domain_controller_are_not_trusted_on_another(make_ad_runtime, monkeypatch):
    from syncd.reconcile.planning import Planner
    rt = make_ad_runtime(reconcile_mappings("dc=example,dc=org"))
    provision.provision(rt)
    a, b = account(rt, "alice"), account(rt, "bruno")
    outcome, reads = run(rt)
    assert outcome.plan.clean and reads["stamps_recorded"] == 2     # AD gives no stamp with a write
    outcome, reads = run(rt)
    assert outcome.plan.clean and reads.get("suspects", 0) == 0     # trusted on this DC

    other_dc = str(uuid.uuid4())            # the same entries read through another DC
    monkeypatch.setattr(Planner, "read_server_id", lambda self, reader: other_dc)
    outcome, reads = run(rt)
    assert outcome.plan.clean and reads["suspects"] == 2 and reads["stamps_recorded"] == 2
    outcome, reads = run(rt)
    assert reads.get("suspects", 0) == 0    # recorded again, for that DC
    assert {recorded_stamp(rt, a), recorded_stamp(rt, b)} <= {entry(rt, x, "uSNChanged")["uSNChanged"][0]
                                                               for x in (a, b)}


def test_on_postgresql_the_accounts_fetched_beside_the_people_are_the_rows_sqlalchemy_reads(rt):
    a, _b = account(rt, "alice"), account(rt, "bruno")
    planner_columns = stamp_store.source_columns(rt.mappings.directory.people)
    early = stamp_store.prefetch_stamped(rt.engine, planner_columns)
    if rt.engine.dialect.name == "sqlite":
        assert early is None
        return
    assert early is not None
    try:
        fetched = list(early.rows())
    finally:
        early.close()
    with transaction(rt.engine, readonly=True) as conn:
        read = [tuple(r) for r in stamp_store.stream_stamped(conn, planner_columns)]
    assert [tuple(map(repr, r)) for r in fetched] == [tuple(map(repr, r)) for r in read] and len(read) >= 2
    assert any(r[0] == a for r in read)


def test_the_accounts_read_gives_each_row_the_digest_of_the_values_sqlalchemy_reads(rt):
    utc = timezone.utc
    account(rt, "alice", internal=True, director=True, terms_accepted_at=datetime(2025, 1, 4, 0, 51, 55, 120, tzinfo=utc))
    account(rt, "bruno", internal=False, phone=None, terms_accepted_at=datetime(2025, 1, 4, 0, 51, tzinfo=utc))
    account(rt, "chloe", given_name="O'Hé\\ l\xa0\"x", terms_accepted_at=datetime(2025, 1, 4, 7, 0, 9, tzinfo=utc))
    account(rt, "denis", status="pending", terms_accepted_at=None)
    columns = stamp_store.source_columns(rt.mappings.directory.people)
    with transaction(rt.engine, readonly=True) as conn:
        expected = {r["id"]: stamp_store.row_digest(r, columns)
                    for r in stamp_store.stream_stamped(conn, columns).mappings()}
        rows, digest = stamp_store.read_stamped(conn, columns)
        got = {row[0]: digest(row) for row in rows}
    assert got == expected and len(got) == 4


def test_an_account_created_while_the_people_are_read_is_neither_missing_nor_unknown(rt, monkeypatch):
    account(rt, "alice")
    run(rt, dry_run=False)
    real = stamp_store.prefetch_stamped
    late: list[str] = []

    def prefetch_then_create(engine, columns, *args):
        early = real(engine, columns, *args)
        if early is not None:
            early._queue.put(early._queue.get())     # its snapshot is taken: the rows are there
        late.append(account(rt, "bruno"))           # a row and its entry, after that snapshot
        return early

    monkeypatch.setattr(stamp_store, "prefetch_stamped", prefetch_then_create)
    outcome, _ = run(rt)
    assert late and outcome.plan.clean and outcome.plan.extra_accounts_total == 0
