"""Poison items: an item the directory refuses for good, or that crashes intake again and again,
is parked with its reason and time; it is never retried blind and never in the way of the others.

The poison items are built so that no input check can stop them, now or later (a syntax check at
intake would not see them): they collide with something already in the directory.

* a poison **account**: an entry ``uid=<id>`` already exists with the structural class
  ``account`` (cosine), as left by another tool; slapd refuses to turn it into an
  ``inetOrgPerson`` (objectClassViolation / objectClassModsProhibited), whatever the values;
* a poison **membership**: a role's group name is taken in the directory by an
  ``organizationalRole`` entry, which may not hold ``member`` (objectClassViolation);
* an **intake crash**: intake raises on one row (a bug, simulated by wrapping the validator).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from syncd import operator
from syncd.core.model import Verdict
from syncd.directory import names
from syncd.directory.connection import open_connection, safe_close
from syncd.jobs import habilitations
from syncd.jobs.accounts import sync_accounts
from syncd.jobs.apply import apply_accepted
from syncd.jobs.decisions import decide_request
from syncd.store.queries import request_history
from syncd.store.db import transaction
from syncd.store.tables import accounts, outbox, requests
from tests.scenarios.helpers import ADMIN, CORRESPONDENT, REQUESTER, habilitation, people, request_row

pytestmark = pytest.mark.slapd

POISON_ROLE = "opim-local"


def ldap_add(rt, entries: list[tuple[str, dict]]) -> None:
    """Add entries behind syncd's back, as another tool would."""
    conn = open_connection(rt.settings.ldap)
    try:
        for dn, attrs in entries:
            _, result, _, _ = conn.add(dn, attributes=attrs)
            assert result["result"] == 0, result
    finally:
        safe_close(conn)


def ldap_delete(rt, dn: str) -> None:
    conn = open_connection(rt.settings.ldap)
    try:
        _, result, _, _ = conn.delete(dn)
        assert result["result"] == 0, result
    finally:
        safe_close(conn)


def poison_accounts(rt, count: int) -> list[str]:
    """``count`` active accounts, changed a day ago, whose LDAP entry slapd will never accept."""
    layout = rt.mappings.directory
    ids = [f"poison{n:05d}" for n in range(count)]
    ldap_add(rt, [(names.person_dn(layout, i), {"objectClass": ["account"], "uid": i}) for i in ids])
    day_ago = rt.clock() - timedelta(days=1)
    with transaction(rt.engine) as conn:
        conn.execute(insert(accounts), [
            dict(id=i, email=f"{i}@lassuranceretraite.fr", given_name="Paul", family_name="Poison",
                 primary_organisation="CARSAT-RA", internal=True, status="active", created_at=day_ago,
                 updated_at=day_ago) for i in ids])
    return ids


def poison_group(rt) -> None:
    """The poison role's group name is held by an entry that may not have members."""
    layout = rt.mappings.directory
    dn = names.group_dn(layout, rt.mappings.role(POISON_ROLE).group)
    ldap_delete(rt, dn)
    ldap_add(rt, [(dn, {"objectClass": ["organizationalRole"], "cn": rt.mappings.role(POISON_ROLE).group})])


def accepted(rt, daemon, role="accords-locaux-acces") -> int:
    """A habilitation request of the requester, taken in and accepted by its decider."""
    request_id = habilitation(rt, role=role)
    daemon.run_job("intake")
    decide_request(rt, request_id, ADMIN if role == POISON_ROLE else CORRESPONDENT, Verdict.ACCEPT)
    return request_id


def ldap_status(rt, account_id: str) -> list[str]:
    entry = rt.directory.read_entry(names.person_dn(rt.mappings.directory, account_id), ["syncdAccountStatus"])
    return entry["syncdAccountStatus"]


def accepted_poison_requests(rt, account_id: str, count: int) -> list[int]:
    """``count`` accepted habilitation requests for the poison role, written as decisions leave them."""
    now = rt.clock()
    with transaction(rt.engine) as conn:
        conn.execute(insert(requests), [
            dict(kind="habilitation", submitted_at=now - timedelta(days=2), email=REQUESTER, role_key=POISON_ROLE,
                 account_id=account_id, organisation_code="CARSAT-RA", status="accepted", decided_at=now,
                 decided_by="tacit", updated_at=now) for _ in range(count)])
        return list(conn.execute(select(requests.c.id).where(requests.c.role_key == POISON_ROLE)
                                 .order_by(requests.c.id)).scalars())


def scraped(rt, name: str, **labels) -> float:
    """One value of the web process's /metrics, read from the database as a scrape does."""
    from syncd.web.metrics import DatabaseCollector
    for family in DatabaseCollector(lambda: rt.engine, rt.clock).collect():
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise AssertionError(f"no {name} {labels}")


# --- accounts ------------------------------------------------------------------------------------

def test_as_many_poison_accounts_as_the_batch_size_do_not_keep_a_disable_from_ldap(make_runtime, daemon):
    rt = make_runtime(jobs={"batch_size": 8, "max_backoff_seconds": 60})
    ids = people(rt)
    poison_accounts(rt, 8)
    habilitations.set_account_status(rt, REQUESTER, "disabled")
    sync_accounts(rt)
    sync_accounts(rt)
    assert ldap_status(rt, ids["requester"]) == ["disabled"]


def test_with_1000_parked_accounts_ahead_a_disable_reaches_ldap_in_one_pass(make_runtime, daemon, clock):
    big = make_runtime(jobs={"batch_size": 1000, "max_backoff_seconds": 60})
    ids = people(big)
    poison = poison_accounts(big, 1000)
    sync_accounts(big)                     # each write refused: all parked
    report = operator.status_report(big)
    assert report["parked"]["accounts"]["count"] == 1000
    assert report["parked"]["accounts"]["oldest"] in {f"account:{p}" for p in poison}
    clock.advance(minutes=20)
    assert scraped(big, "syncd_parked_items", kind="accounts") == 1000
    assert scraped(big, "syncd_parked_oldest_age_seconds", kind="accounts") == 20 * 60
    assert scraped(big, "syncd_parked_items", kind="requests") == 0

    clock.advance(hours=1)                 # far past any backoff: a blind retry would be due
    habilitations.set_account_status(big, REQUESTER, "disabled")
    rt = make_runtime(jobs={"batch_size": 8, "max_backoff_seconds": 60})
    sync_accounts(rt)
    assert ldap_status(rt, ids["requester"]) == ["disabled"]


def test_a_refused_account_write_is_parked_with_its_reason_and_left_alone(make_runtime, daemon, clock):
    rt = make_runtime(jobs={"batch_size": 8, "max_backoff_seconds": 60})
    people(rt)
    [poison] = poison_accounts(rt, 1)
    sync_accounts(rt)
    with transaction(rt.engine) as conn:
        row = conn.execute(select(accounts).where(accounts.c.id == poison)).mappings().one()
    assert row["ldap_parked_at"] == clock.now
    assert "objectClass" in row["ldap_parked_reason"] or "object class" in row["ldap_parked_reason"].lower()
    assert row["ldap_attempts"] == 1
    clock.advance(hours=5)
    sync_accounts(rt)
    with transaction(rt.engine) as conn:
        assert conn.execute(select(accounts.c.ldap_attempts).where(accounts.c.id == poison)).scalar() == 1


# --- apply ---------------------------------------------------------------------------------------

def test_a_request_whose_ldap_write_is_refused_for_good_is_parked_not_retried_for_ever(rt, daemon, clock):
    ids = people(rt)
    poison_group(rt)
    request_id = accepted(rt, daemon, role=POISON_ROLE)
    apply_accepted(rt)
    row = request_row(rt, request_id)
    assert row["parked_at"] == clock.now and row["applied_at"] is None
    assert "objectClassViolation" in row["parked_reason"]
    for _ in range(3):                       # past the backoff ceiling (60 s here), again and again
        clock.advance(seconds=rt.settings.jobs.max_backoff_seconds + 1)
        apply_accepted(rt)
    assert request_row(rt, request_id)["attempts"] == 1
    with rt.engine.connect() as conn:        # closed: an open read would hold a lock on PostgreSQL
        [item] = [i for i in request_history(conn, ids["requester"], rt.mappings) if i.request_id == request_id]
    assert item.parked and item.status_label == "En attente de traitement"


def test_with_1000_parked_membership_writes_ahead_the_next_request_reaches_ldap_in_one_pass(
        make_runtime, daemon, clock):
    big = make_runtime(jobs={"apply_batch_size": 5000, "max_backoff_seconds": 60})
    ids = people(big)
    poison_group(big)
    poison = accepted_poison_requests(big, ids["admin"], 1000)
    apply_accepted(big)                      # the poison group refuses them: all parked
    assert operator.status_report(big)["parked"]["requests"]["count"] == 1000
    clock.advance(seconds=big.settings.jobs.max_backoff_seconds + 1)

    good = accepted(big, daemon)
    rt = make_runtime(jobs={"apply_batch_size": 8, "max_backoff_seconds": 60})
    assert apply_accepted(rt) == 1
    assert request_row(rt, good)["applied_at"] is not None
    assert request_row(rt, poison[0])["attempts"] == 1


# --- intake --------------------------------------------------------------------------------------

def test_a_request_that_crashes_intake_again_and_again_is_parked_and_the_requester_still_waits(
        rt, daemon, clock, monkeypatch):
    ids = people(rt)
    from syncd.core import intake as core_intake
    validate = core_intake.validate_row
    request_id = habilitation(rt)

    def crashes_on_one_row(values, facts, mappings):
        if values["id"] == request_id:
            raise RuntimeError("a bug in intake, simulated")
        return validate(values, facts, mappings)

    monkeypatch.setattr(core_intake, "validate_row", crashes_on_one_row)
    for _ in range(8):
        daemon.run_job("intake")
        clock.advance(hours=2)
    row = request_row(rt, request_id)
    assert row["status"] == "new" and row["parked_at"] is not None
    assert "RuntimeError" in row["parked_reason"]
    with transaction(rt.engine) as conn:
        [item] = [i for i in request_history(conn, ids["requester"], rt.mappings) if i.request_id == request_id]
        mails = list(conn.execute(select(outbox.c.template).where(outbox.c.request_id == request_id)).scalars())
    assert item.status_label == "En attente validation d'un gestionnaire" and item.parked
    assert "request_rejected" not in mails
    # Counted as parked, not as a request intake or the tacit sweep is late with (their alerts).
    assert scraped(rt, "syncd_parked_items", kind="requests") == 1
    assert scraped(rt, "syncd_oldest_pending_seconds") == 0
    assert operator.status_report(rt)["oldest_pending_age_seconds"] is None


# --- what decides parking ------------------------------------------------------------------------

def test_only_a_refusal_of_the_item_parks_it_at_once_and_a_refusal_of_syncd_itself_never_does():
    from syncd.directory.connection import error_for_result
    from syncd.errors import DirectoryUnavailable
    from syncd.jobs import parking

    def refusal(code):
        return error_for_result({"result": code, "description": "x"}, operation="modify", dn="uid=x")

    assert parking.parks(refusal(65), 1)                           # objectClassViolation: the item
    assert parking.parks(refusal(21), 1)                           # invalidAttributeSyntax: the item
    assert not parking.parks(DirectoryUnavailable("down"), 100)
    for code in (49, 50, 53):                                      # credentials, rights, read-only
        assert not parking.parks(refusal(code), 100)
    assert [parking.parks(refusal(32), n) for n in range(1, 6)] == [False] * 4 + [True]   # missing entry
    assert [parking.parks(RuntimeError("bug"), n) for n in range(1, 6)] == [False] * 4 + [True]
    assert [parking.backoff_seconds(n, 60) for n in range(1, 6)] == [5, 10, 20, 40, 60]


# --- the operator's commands ---------------------------------------------------------------------

def command(rt, *argv: str, capsys=None) -> tuple[int, str]:
    """Run ``syncd ARGV`` in-process on this test's runtime (the parser and dispatch of the CLI)."""
    from syncd import cli, parked_commands
    args = cli._parser().parse_args(list(argv))
    code = parked_commands.dispatch(args, lambda: rt)
    if code is None:
        code = cli._dispatch_runtime(args, rt)
    return code, capsys.readouterr().out if capsys else ""


def test_the_operator_lists_parked_items_retries_them_after_a_fix_and_status_counts_them(
        rt, daemon, clock, capsys):
    import json
    ids = people(rt)
    [poison] = poison_accounts(rt, 1)
    poison_group(rt)
    request_id = accepted(rt, daemon, role=POISON_ROLE)
    daemon.run_job("apply")
    daemon.run_job("accounts")
    capsys.readouterr()

    code, out = command(rt, "parked", "list", capsys=capsys)
    assert code == 0 and f"request:{request_id} (accepted)" in out and f"account:{poison}" in out
    assert "2 parked items" in out
    code, out = command(rt, "parked", "list", "--json", capsys=capsys)
    listed = {i["ref"]: i for i in json.loads(out)}
    assert listed[f"request:{request_id}"]["status"] == "accepted" and listed[f"account:{poison}"]["attempts"] == 1
    code, out = command(rt, "status", "--json", capsys=capsys)
    parked = json.loads(out)["parked"]
    assert parked["requests"]["count"] == 1 and parked["requests"]["oldest"] == f"request:{request_id}"
    assert parked["accounts"]["count"] == 1 and "objectClassViolation" in parked["accounts"]["oldest_reason"]
    code, out = command(rt, "status", capsys=capsys)
    assert f"requests     1, oldest request:{request_id} since" in out and f"account:{poison} since" in out

    # The fix: the entries in the way are removed, provisioning makes the group again.
    ldap_delete(rt, names.person_dn(rt.mappings.directory, poison))
    ldap_delete(rt, names.group_dn(rt.mappings.directory, rt.mappings.role(POISON_ROLE).group))
    daemon.run_job("provision")
    code, out = command(rt, "parked", "retry", str(request_id), f"account:{poison}", capsys=capsys)
    assert code == 0 and "2 items back in line" in out
    daemon.run_job("apply")
    daemon.run_job("accounts")
    assert request_row(rt, request_id)["applied_at"] is not None
    assert rt.directory.read_entry(names.person_dn(rt.mappings.directory, poison), ["sn"])["sn"] == ["Poison"]
    assert names.normalise_dn(names.person_dn(rt.mappings.directory, ids["requester"])) in \
        rt.directory.members_of_group(rt.mappings.role(POISON_ROLE).group)
    code, out = command(rt, "parked", "retry", "account:nobody", capsys=capsys)
    assert code == 1


def test_resolving_a_parked_request_refuses_it_and_the_requester_gets_the_reason(
        rt, daemon, clock, capsys, monkeypatch, smtp_server):
    ids = people(rt)
    from syncd.core import intake as core_intake
    request_id = habilitation(rt)
    monkeypatch.setattr(core_intake, "validate_row", lambda *a: (_ for _ in ()).throw(RuntimeError("bug")))
    for _ in range(5):
        daemon.run_job("intake")
        clock.advance(minutes=5)
    assert request_row(rt, request_id)["parked_at"] is not None
    reason = "Ce rôle n'est plus attribué dans votre organisme."
    code, _ = command(rt, "parked", "resolve", str(request_id), "--refuse", "--reason", reason, capsys=capsys)
    assert code == 0
    row = request_row(rt, request_id)
    assert row["status"] == "refused" and row["parked_at"] is None and row["comment"] == reason
    daemon.run_job("deliver")
    [mail] = [m for m in smtp_server.messages if REQUESTER in m["To"]][-1:]
    assert reason in mail.get_body(("plain",)).get_content()
    with transaction(rt.engine) as conn:
        [item] = [i for i in request_history(conn, ids["requester"], rt.mappings) if i.request_id == request_id]
    assert item.status_label == "Refusée" and not item.parked
    code, _ = command(rt, "parked", "resolve", f"account:{ids['requester']}", "--refuse", "--reason", "x",
                      capsys=capsys)
    assert code == 1


def test_a_withdrawn_membership_whose_role_left_the_mappings_is_parked_and_settled_by_hand(
        make_runtime, daemon, clock, capsys):
    from syncd.mappings import Mappings
    from syncd.store.tables import memberships
    rt = make_runtime()
    ids = people(rt)
    accepted(rt, daemon, role=POISON_ROLE)
    daemon.run_job("apply")
    habilitations.revoke(rt, REQUESTER, POISON_ROLE, ADMIN, "plus nécessaire")
    later = make_runtime()                   # the role is taken out of the mappings meanwhile
    kept = rt.mappings.model_dump()
    kept["applications"] = [a for a in kept["applications"] if a["key"] != "opim"]
    later.mappings = Mappings.model_validate(kept)
    sync_accounts(later)
    with transaction(rt.engine) as conn:
        row = conn.execute(select(memberships).where(memberships.c.role_key == POISON_ROLE)).mappings().one()
    assert row["parked_at"] == clock.now and "no longer in the mappings" in row["parked_reason"]
    assert row["applied_at"] is None
    assert operator.status_report(rt)["parked"]["memberships"] == {
        "count": 1, "oldest": f"membership:{ids['requester']}:{POISON_ROLE}", "oldest_parked_at": clock.now,
        "oldest_reason": row["parked_reason"]}
    clock.advance(hours=1)
    sync_accounts(later)
    with transaction(rt.engine) as conn:
        assert conn.execute(select(memberships.c.attempts).where(memberships.c.role_key == POISON_ROLE)).scalar() == 1

    code, _ = command(later, "parked", "resolve", f"membership:{ids['requester']}:{POISON_ROLE}", "--settled",
                      "--reason", "group deleted with the application", capsys=capsys)
    assert code == 0
    with transaction(rt.engine) as conn:
        row = conn.execute(select(memberships).where(memberships.c.role_key == POISON_ROLE)).mappings().one()
    assert row["parked_at"] is None and row["applied_at"] == clock.now


def test_an_accepted_account_request_the_directory_refuses_is_parked_then_refused_and_may_be_asked_again(
        rt, daemon, clock, capsys, smtp_server):
    from tests.scenarios.test_accounts import NEWCOMER, account_request
    people(rt)
    request_id = account_request(rt)
    daemon.run_job("intake")
    decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    account_id = request_row(rt, request_id)["account_id"]
    # Another tool left an entry at that DN that can never be an inetOrgPerson.
    ldap_add(rt, [(names.person_dn(rt.mappings.directory, account_id), {"objectClass": ["account"], "uid": account_id})])
    daemon.run_job("apply")
    row = request_row(rt, request_id)
    assert row["status"] == "accepted" and row["parked_at"] is not None and row["applied_at"] is None
    with transaction(rt.engine) as conn:
        [item] = request_history(conn, account_id, rt.mappings)
    assert item.status_label == "En attente de traitement" and item.parked

    reason = "Votre compte n'a pas pu être créé : merci de refaire la demande."
    code, _ = command(rt, "parked", "resolve", f"request:{request_id}", "--refuse", "--reason", reason,
                      capsys=capsys)
    assert code == 0 and request_row(rt, request_id)["status"] == "refused"
    daemon.run_job("deliver")
    assert reason in [m for m in smtp_server.messages if NEWCOMER in m["To"]][-1].get_body(("plain",)).get_content()
    again = account_request(rt)
    daemon.run_job("intake")
    assert request_row(rt, again)["status"] == "pending"


def test_a_parked_request_replayed_by_hand_once_fixed_is_applied_and_no_longer_parked(rt, daemon, clock):
    from syncd.reconcile.replay import replay
    ids = people(rt)
    poison_group(rt)
    request_id = accepted(rt, daemon, role=POISON_ROLE)
    apply_accepted(rt)
    assert request_row(rt, request_id)["parked_at"] is not None
    ldap_delete(rt, names.group_dn(rt.mappings.directory, rt.mappings.role(POISON_ROLE).group))
    daemon.run_job("provision")
    replay(rt, request_id)
    row = request_row(rt, request_id)
    assert row["applied_at"] is not None and row["parked_at"] is None and row["parked_reason"] is None
    with transaction(rt.engine) as conn:
        [item] = [i for i in request_history(conn, ids["requester"], rt.mappings) if i.request_id == request_id]
    assert item.status_label == "Acceptée" and not item.parked


def test_disabling_an_account_parked_for_a_refused_value_still_locks_it_and_empties_its_groups(
        rt, daemon, clock):
    from sqlalchemy import update
    ids = people(rt)
    accepted(rt, daemon)
    daemon.run_job("apply")
    # A value written straight into the table (older data, another tool), that telephoneNumber refuses.
    with transaction(rt.engine) as conn:
        conn.execute(update(accounts).where(accounts.c.id == ids["requester"])
                     .values(phone="01 23 45 67 89 ; poste 4", version=accounts.c.version + 1))
    sync_accounts(rt)
    with transaction(rt.engine) as conn:
        reason = conn.execute(select(accounts.c.ldap_parked_reason).where(accounts.c.id == ids["requester"])).scalar()
    assert "telephoneNumber" in reason
    habilitations.set_account_status(rt, REQUESTER, "disabled")
    sync_accounts(rt)
    assert ldap_status(rt, ids["requester"]) == ["disabled"]
    assert names.normalise_dn(names.person_dn(rt.mappings.directory, ids["requester"])) not in \
        rt.directory.members_of_group(rt.mappings.role("accords-locaux-acces").group)
    with transaction(rt.engine) as conn:
        assert conn.execute(select(accounts.c.ldap_parked_at).where(accounts.c.id == ids["requester"])).scalar()
