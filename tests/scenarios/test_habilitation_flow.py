"""A habilitation request from the queue table to group membership in LDAP, and its variants."""

from __future__ import annotations

import threading

import pytest

from syncd.core.model import Verdict
from syncd.errors import DecisionRefused
from syncd.jobs.decisions import decide_request
from syncd.store import repo
from tests.scenarios.helpers import (ADMIN, CORRESPONDENT, REQUESTER, events, habilitation, mails_to,
                                     member_dns, people, person, request_row)
from tests.store.rows import end_held_claims

pytestmark = pytest.mark.slapd


def test_an_accepted_habilitation_becomes_group_membership_and_member_of_in_ldap(rt, daemon, smtp_server):
    ids = people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    row = request_row(rt, request_id)
    assert row["status"] == "pending"
    assert row["deadline_at"] == rt.clock() + __import__("datetime").timedelta(days=10)
    daemon.run_job("deliver")
    assert mails_to(smtp_server, CORRESPONDENT), "the correspondent is asked to decide"

    decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    assert request_row(rt, request_id)["applied_at"] is None
    daemon.run_job("apply")
    daemon.run_job("deliver")

    assert person(rt, ids["requester"]) in member_dns(rt, "accords-locaux-acces")
    assert any("app-accords-locaux-acces" in g.lower() for g in rt.directory.groups_of_person(ids["requester"]))
    row = request_row(rt, request_id)
    assert row["status"] == "accepted" and row["applied_at"] is not None
    assert events(rt, request_id) == ["submitted", "routed", "decided", "applied"]
    assert mails_to(smtp_server, REQUESTER), "the requester is told of the acceptance"


def test_a_request_not_refused_within_ten_days_is_accepted_tacitly_and_applied(rt, daemon, clock):
    ids = people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    clock.advance(days=10, seconds=-1)
    daemon.run_job("tacit")
    assert request_row(rt, request_id)["status"] == "pending"
    clock.advance(seconds=1)
    daemon.run_job("tacit")
    daemon.run_job("apply")
    row = request_row(rt, request_id)
    assert row["status"] == "accepted_tacitly" and row["decided_by"] == "tacit" and row["applied_at"]
    assert person(rt, ids["requester"]) in member_dns(rt, "accords-locaux-acces")


def test_a_role_with_its_own_tacit_delay_uses_it(rt, daemon, clock):
    people(rt)
    request_id = habilitation(rt, role="opim-local")   # tacit_delay_days: 5, centrally managed
    daemon.run_job("intake")
    clock.advance(days=5)
    daemon.run_job("tacit")
    assert request_row(rt, request_id)["status"] == "accepted_tacitly"


def test_an_organisation_without_correspondent_falls_back_to_the_central_administrator(rt, daemon, smtp_server):
    ids = people(rt, correspondent=False)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    daemon.run_job("deliver")
    assert mails_to(smtp_server, ADMIN)
    with pytest.raises(DecisionRefused):
        decide_request(rt, request_id, REQUESTER, Verdict.ACCEPT)
    decide_request(rt, request_id, ADMIN, Verdict.ACCEPT)
    daemon.run_job("apply")
    assert person(rt, ids["requester"]) in member_dns(rt, "accords-locaux-acces")


def test_pending_requests_are_rerouted_when_the_organisation_gains_a_correspondent(rt, daemon, smtp_server):
    from syncd import operator
    people(rt, correspondent=False)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    operator.add_account(rt, CORRESPONDENT, "Claire", "Martin", "CARSAT-RA")
    operator.add_decider(rt, CORRESPONDENT, "CARSAT-RA")
    daemon.run_job("reroute")
    daemon.run_job("deliver")
    assert "rerouted" in events(rt, request_id)
    assert mails_to(smtp_server, CORRESPONDENT)
    with pytest.raises(DecisionRefused) as refused:
        decide_request(rt, request_id, ADMIN, Verdict.ACCEPT)
    assert refused.value.code == "not_authorised"
    decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)


def test_a_refusal_needs_a_comment_and_the_requester_receives_it(rt, daemon, smtp_server):
    ids = people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    with pytest.raises(DecisionRefused) as refused:
        decide_request(rt, request_id, CORRESPONDENT, Verdict.REFUSE, "  ")
    assert refused.value.code == "comment_required"
    assert request_row(rt, request_id)["status"] == "pending"
    decide_request(rt, request_id, CORRESPONDENT, Verdict.REFUSE, "Poste sans lien avec les accords locaux")
    daemon.run_job("apply")
    daemon.run_job("deliver")
    assert request_row(rt, request_id)["status"] == "refused"
    assert person(rt, ids["requester"]) not in member_dns(rt, "accords-locaux-acces")
    mail = mails_to(smtp_server, REQUESTER)[-1]
    assert "Poste sans lien avec les accords locaux" in mail.get_body(("plain",)).get_content()
    assert events(rt, request_id).count("decision_refused") == 1


def test_a_late_refusal_after_tacit_acceptance_is_refused_and_revokes_nothing(rt, daemon, clock):
    ids = people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    clock.advance(days=11)
    daemon.run_job("tacit")
    daemon.run_job("apply")
    with pytest.raises(DecisionRefused) as refused:
        decide_request(rt, request_id, CORRESPONDENT, Verdict.REFUSE, "Trop tard")
    assert refused.value.code == "already_tacitly_accepted"
    assert request_row(rt, request_id)["status"] == "accepted_tacitly"
    assert person(rt, ids["requester"]) in member_dns(rt, "accords-locaux-acces")


def test_a_second_decision_on_a_decided_request_is_refused_and_recorded(rt, daemon):
    people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    with pytest.raises(DecisionRefused) as refused:
        decide_request(rt, request_id, CORRESPONDENT, Verdict.REFUSE, "Finalement non")
    assert refused.value.code == "already_decided"
    assert "decision_refused" in events(rt, request_id)


def test_an_invalid_row_is_rejected_with_its_reason_and_does_not_block_the_rows_behind(rt, daemon):
    people(rt)
    bad = habilitation(rt, role="no-such-role")
    worse = habilitation(rt, email="not an email")
    good = habilitation(rt)
    daemon.run_job("intake")
    assert request_row(rt, bad)["status"] == "rejected"
    assert "inconnue" in request_row(rt, bad)["reason"]
    assert request_row(rt, worse)["status"] == "rejected"
    assert request_row(rt, good)["status"] == "pending"


def test_a_duplicate_request_for_a_role_already_pending_is_rejected(rt, daemon):
    people(rt)
    first = habilitation(rt)
    daemon.run_job("intake")
    second = habilitation(rt)
    daemon.run_job("intake")
    assert request_row(rt, first)["status"] == "pending"
    assert request_row(rt, second)["status"] == "rejected"


def test_an_ldap_outage_during_apply_backs_off_shows_in_status_and_recovers(rt, daemon, clock):
    from syncd import operator
    from syncd.directory.adapter import Directory
    ids = people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    down = rt.settings.ldap.model_copy(update={"urls": ["ldap://127.0.0.1:9"], "timeout_seconds": 1})
    rt._directory = Directory(down, rt.mappings.directory)
    daemon.run_job("apply")
    row = request_row(rt, request_id)
    assert row["status"] == "accepted" and row["applied_at"] is None
    assert row["attempts"] == 1 and row["last_error"] and row["next_attempt_at"] > clock()
    report = operator.status_report(rt)
    assert report["accepted_not_applied"] == 1 and report["failing_requests"][0]["id"] == request_id

    rt._directory = None                       # the directory is back
    daemon.run_job("apply")
    assert request_row(rt, request_id)["applied_at"] is None, "not retried before its backoff"
    clock.advance(seconds=row["next_attempt_at"].timestamp() - clock().timestamp())
    daemon.run_job("apply")
    row = request_row(rt, request_id)
    assert row["applied_at"] is not None and row["last_error"] is None
    assert person(rt, ids["requester"]) in member_dns(rt, "accords-locaux-acces")


def test_deciders_are_reminded_three_days_and_one_day_before_the_deadline_once_each(rt, daemon, clock, smtp_server):
    people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    clock.advance(days=6)
    daemon.run_job("remind")
    assert events(rt, request_id).count("reminded") == 0
    clock.advance(days=1)                      # D-3
    daemon.run_job("remind")
    daemon.run_job("remind")
    assert events(rt, request_id).count("reminded") == 1
    clock.advance(days=2)                      # D-1
    daemon.run_job("remind")
    daemon.run_job("deliver")
    assert events(rt, request_id).count("reminded") == 2
    reminders = [m for m in mails_to(smtp_server, CORRESPONDENT) if "rappel" in m["Subject"].lower()]
    assert len(reminders) == 2


def test_the_audit_trail_records_the_decision_and_the_ldap_change_with_the_request(rt, daemon):
    from syncd.store import audit
    from syncd.store.db import transaction
    people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    daemon.run_job("apply")
    daemon.run_job("audit_seal")
    with transaction(rt.engine) as conn:
        trail = [(r["action"], r["request_id"]) for r in audit.rows(conn) if r["request_id"] == request_id]
        assert audit.verify(conn) is None
    assert trail == [("decided", request_id), ("ldap_member_added", request_id)]


@pytest.mark.parametrize("overlap", [False, True], ids=["recorded-at-the-end", "recorded-while-writing"])
def test_a_pass_over_many_groups_marks_each_request_applied_once_with_its_event_audit_row_and_mail(
        rt, daemon, clock, smtp_server, monkeypatch, overlap):
    from sqlalchemy import select

    from syncd.jobs import apply
    if overlap:     # the bookkeeping of written groups in a thread of its own, while the next are written
        monkeypatch.setattr(apply, "_OVERLAP_MIN", 2)

    from syncd import operator
    from syncd.store import audit
    from syncd.store.db import transaction
    from syncd.store.tables import memberships, outbox
    ids = people(rt)
    others = [operator.add_account(rt, f"agent{n}@lassuranceretraite.fr", "Agent", f"N{n}", "CARSAT-RA")
              for n in range(3)]
    roles = ("accords-locaux-acces", "opim-local", "greve-declaration")
    asked = [(habilitation(rt, role, f"agent{n}@lassuranceretraite.fr"), role) for n in range(3) for role in roles[:2]]
    daemon.run_job("intake")
    for request_id, role in asked:      # opim-local is centrally managed
        decide_request(rt, request_id, ADMIN if role == "opim-local" else CORRESPONDENT, Verdict.ACCEPT)
    explicit = [request_id for request_id, _ in asked]
    tacit = [habilitation(rt, roles[2], f"agent{n}@lassuranceretraite.fr") for n in range(3)]
    daemon.run_job("intake")
    clock.advance(days=11)
    daemon.run_job("tacit")

    assert daemon.run_job("apply") == 9, "one pass applies the whole backlog"
    assert daemon.run_job("apply") == 0
    for account_id in others:
        for role in roles:
            assert person(rt, account_id) in member_dns(rt, role)
    with transaction(rt.engine) as conn:
        assert audit.seal(conn) > 0 and audit.verify(conn) is None
        added = [r["request_id"] for r in audit.rows(conn) if r["action"] == "ldap_member_added"]
        granted = list(conn.execute(select(memberships.c.applied_at).where(memberships.c.account_id.in_(others))))
        mails = sorted((r.request_id, r.template) for r in conn.execute(select(outbox).where(
            outbox.c.template.like("request_accepted%"))))
    assert sorted(added) == sorted(explicit + tacit)
    assert len(granted) == 9 and all(g.applied_at == rt.clock() for g in granted)
    assert mails == sorted([(i, "request_accepted") for i in explicit] +
                           [(i, "request_accepted_tacitly") for i in tacit])
    for request_id in explicit + tacit:
        row = request_row(rt, request_id)
        assert row["applied_at"] == rt.clock() and row["claimed_by"] is None and row["last_error"] is None
        assert events(rt, request_id).count("applied") == 1
    assert ids["requester"] not in others


def test_when_the_bookkeeping_fails_mid_pass_nothing_is_marked_applied_that_ldap_lacks_and_the_rest_follows(
        rt, daemon, clock, monkeypatch):
    from syncd import operator
    from syncd.errors import StoreUnavailable
    from syncd.jobs import apply
    people(rt)
    others = [operator.add_account(rt, f"agent{n}@lassuranceretraite.fr", "Agent", f"N{n}", "CARSAT-RA")
              for n in range(3)]
    roles = ("accords-locaux-acces", "greve-declaration")
    asked = [(habilitation(rt, role, f"agent{n}@lassuranceretraite.fr"), role) for role in roles for n in range(3)]
    daemon.run_job("intake")
    for request_id, _ in asked:
        decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    monkeypatch.setattr(apply, "_OVERLAP_MIN", 2)
    real, calls, first_recorded = apply.record_outcomes, [], threading.Event()

    def failing(rt_, applied, *args, **kwargs):     # the first group's chunk is recorded, the second's fails
        calls.append(len(applied))
        if len(calls) == 2:
            raise StoreUnavailable("the database went away")
        real(rt_, applied, *args, **kwargs)
        first_recorded.set()
    monkeypatch.setattr(apply, "record_outcomes", failing)
    add_members, groups = rt.directory.add_members, []

    def one_chunk_per_group(group, dns):
        groups.append(group)
        if len(groups) == 2:
            assert first_recorded.wait(10)
        return add_members(group, dns)
    monkeypatch.setattr(rt.directory, "add_members", one_chunk_per_group)
    with pytest.raises(StoreUnavailable):
        apply.apply_accepted(rt)
    assert calls == [3, 3]
    marked = [(i, role) for i, role in asked if request_row(rt, i)["applied_at"] is not None]
    assert len(marked) == 3
    for request_id, role in marked:
        assert person(rt, request_row(rt, request_id)["account_id"]) in member_dns(rt, role), "applied: in LDAP"
    monkeypatch.undo()

    clock.advance(seconds=rt.settings.database.lease_seconds + 1)     # the failed pass's claims run out
    assert daemon.run_job("apply") == 3, "written again (already there: success), then marked"
    for request_id, _ in asked:
        assert request_row(rt, request_id)["applied_at"] is not None
        assert events(rt, request_id).count("applied") == 1
    for account_id in others:
        for role in roles:
            assert person(rt, account_id) in member_dns(rt, role)


@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_on_postgresql_a_pass_whose_lease_fails_to_commit_stops_writing_and_records_nothing(rt, daemon, monkeypatch):
    """The pass writes its first groups while its lease is written (queue.hold_request_rows): if
    the lease fails, the rows were never ours, and another worker may be writing them already."""
    from syncd.errors import StoreUnavailable
    from syncd.jobs import apply
    asked = _backlog_over_three_groups(rt, daemon)
    lease_failed, groups = threading.Event(), []
    hold = repo.hold_with_accounts

    def held_then_lost(engine, **claim):
        views, held = hold(engine, **claim)
        write_lease = held.lease

        def lease():
            try:
                assert end_held_claims(engine) == 1      # the held session ends before its lease is written
                write_lease()
            finally:
                lease_failed.set()
        held.lease = lease
        return views, held
    monkeypatch.setattr(repo, "hold_with_accounts", held_then_lost)
    add_members = rt.directory.add_members

    def after_the_lease(group, dns):
        assert lease_failed.wait(10)
        groups.append(group)
        return add_members(group, dns)
    monkeypatch.setattr(rt.directory, "add_members", after_the_lease)
    with pytest.raises(StoreUnavailable):
        apply.apply_accepted(rt)
    assert len(groups) <= rt.settings.ldap.write_connections, "each connection stops before its next group"
    for request_id, _ in asked:
        row = request_row(rt, request_id)
        assert row["applied_at"] is None and row["claimed_by"] is None and "applied" not in events(rt, request_id)
    monkeypatch.undo()

    assert daemon.run_job("apply") == 9, "claimable at once, written (or found there) and marked"
    for request_id, _ in asked:
        assert events(rt, request_id).count("applied") == 1


def _backlog_over_three_groups(rt, daemon) -> list[tuple[int, str]]:
    """Three agents each granted three roles (three groups): (request id, role) of the nine."""
    from syncd import operator
    people(rt)
    for n in range(3):
        operator.add_account(rt, f"agent{n}@lassuranceretraite.fr", "Agent", f"N{n}", "CARSAT-RA")
    roles = ("accords-locaux-acces", "opim-local", "greve-declaration")
    asked = [(habilitation(rt, role, f"agent{n}@lassuranceretraite.fr"), role) for role in roles for n in range(3)]
    daemon.run_job("intake")
    for request_id, role in asked:      # opim-local is centrally managed
        decide_request(rt, request_id, ADMIN if role == "opim-local" else CORRESPONDENT, Verdict.ACCEPT)
    return asked


def test_a_pass_writes_its_groups_on_two_connections_at_once_and_a_group_the_directory_refuses_fails_alone(
        rt, daemon, monkeypatch):
    from syncd.errors import DirectoryRejected
    from syncd.jobs.apply import apply_accepted
    asked = _backlog_over_three_groups(rt, daemon)
    refused = rt.mappings.role("greve-declaration").group
    add_members, lock, threads = rt.directory.add_members, threading.Lock(), []
    both_writing = threading.Barrier(2, timeout=10)     # broken, and the pass fails, unless two meet

    def add(group, dns):
        with lock:
            threads.append(threading.get_ident())
            first_two = len(threads) <= 2
        if first_two:
            both_writing.wait()
        if group == refused:
            raise DirectoryRejected("modify refused: constraint violation")
        return add_members(group, dns)
    monkeypatch.setattr(rt.directory, "add_members", add)
    assert rt.settings.ldap.write_connections == 2
    assert apply_accepted(rt) == 6
    assert len(threads) == 3 and len(set(threads)) == 2
    for request_id, role in asked:
        row = request_row(rt, request_id)
        if role == "greve-declaration":
            assert row["applied_at"] is None and "constraint violation" in row["last_error"]
            assert person(rt, row["account_id"]) not in member_dns(rt, role)
        else:
            assert row["applied_at"] is not None and row["last_error"] is None
            assert person(rt, row["account_id"]) in member_dns(rt, role)


def test_a_directory_outage_on_one_connection_stops_the_other_before_its_next_group_and_the_rest_follows(
        rt, daemon, clock, monkeypatch):
    import time

    from syncd.errors import DirectoryUnavailable
    from syncd.jobs.apply import apply_accepted
    asked = _backlog_over_three_groups(rt, daemon)
    add_members, lock, written = rt.directory.add_members, threading.Lock(), []
    both_writing, outage_raised = threading.Barrier(2, timeout=10), threading.Event()

    def add(group, dns):
        with lock:
            written.append(group)
            call = len(written)
        if call <= 2:
            both_writing.wait()
        if call == 1:
            outage_raised.set()
            raise DirectoryUnavailable("the server went away")
        assert outage_raised.wait(10)
        time.sleep(0.2)     # the failing connection sets the pass's stop as it unwinds: a few bytecodes
        return add_members(group, dns)
    monkeypatch.setattr(rt.directory, "add_members", add)
    assert apply_accepted(rt) == 3, "the group written beside the outage is applied"
    assert len(written) == 2, "no connection starts another group once one met the outage"
    applied = [(i, role) for i, role in asked if request_row(rt, i)["applied_at"] is not None]
    assert len(applied) == 3 and len({role for _, role in applied}) == 1
    assert all(request_row(rt, i)["next_attempt_at"] is not None for i, _ in asked if (i, _) not in applied)
    monkeypatch.undo()

    clock.advance(days=1)   # past every backoff
    assert daemon.run_job("apply") == 6
    for request_id, role in asked:
        assert request_row(rt, request_id)["applied_at"] is not None
        assert events(rt, request_id).count("applied") == 1
        assert person(rt, request_row(rt, request_id)["account_id"]) in member_dns(rt, role)


def test_a_decision_on_a_request_that_does_not_exist_is_refused_and_audited(rt, daemon):
    from syncd.store import audit
    from syncd.store.db import transaction
    people(rt)
    with pytest.raises(DecisionRefused) as refused:
        decide_request(rt, 987654, CORRESPONDENT, Verdict.ACCEPT, channel="api")
    assert refused.value.code == "not_found"
    with transaction(rt.engine) as conn:
        audit.seal(conn)
        trail = [r for r in audit.rows(conn) if r["action"] == "decision_refused"]
        assert audit.verify(conn) is None
    assert [(r["request_id"], r["detail"]["code"], r["detail"]["channel"]) for r in trail] == [(None, "not_found", "api")]
