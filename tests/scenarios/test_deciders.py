"""No grant without a decider's chance: requests nobody can decide wait, visible; every decider gets a
minimum window; external accounts are never accepted tacitly; reminders say what really remains.

Each test runs the daemon's jobs on SQLite and PostgreSQL, a real slapd and the in-process SMTP
server, from rows the portal inserts, and reads the outcome where people see it: the request row,
the portal's history label, ``syncd status`` and the mails. T0 is Monday 2 November 2026, 10:30 in
Paris; Wednesday 11 November is a French public holiday.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from syncd import operator
from syncd.store import queries
from syncd.cli import main
from syncd.core.model import Verdict
from syncd.daemon import Daemon
from syncd.errors import DecisionRefused
from syncd.jobs.decisions import decide_request
from syncd.store import repo
from syncd.store.db import transaction
from tests.factories import mappings
from tests.scenarios.helpers import (ADMIN, CORRESPONDENT, REQUESTER, events, habilitation, mails_to, people,
                                     portal_inserts, request_row)

pytestmark = pytest.mark.slapd

EXTERNAL = "jeanne.dupuis@gmail.com"
NEWCOMER = "b.durand@lassuranceretraite.fr"
WAITING_LABEL = "En attente validation d'un gestionnaire"


def run(daemon, *jobs):
    for job in jobs:
        daemon.run_job(job)


def account_request(rt, *, email=NEWCOMER, internal=True, **over) -> int:
    return portal_inserts(rt, kind="account", email=email, civility="Mme", given_name="Jeanne",
                          family_name="Dupuis", internal=internal, organisation_code="CARSAT-RA",
                          terms_accepted=True, terms_version="2026-01", **over)


def routed_to(rt, request_id) -> set[str]:
    with transaction(rt.engine) as conn:
        return set(repo.routed_to(conn, request_id))


def history_label(rt, request_id, account_id=None, email=None) -> str:
    with transaction(rt.engine) as conn:
        items = queries.request_history(conn, account_id, rt.mappings, email=email)
    return next(i.status_label for i in items if i.request_id == request_id)


def bodies(smtp_server, address, subject_start=""):
    return [m.get_body(("plain",)).get_content() for m in mails_to(smtp_server, address)
            if m["Subject"].startswith(subject_start)]


@pytest.fixture
def cli(db_url, tmp_path, monkeypatch, capsys):
    """``syncd -c CONFIG ARGS...`` in-process on the test's database; returns (exit code, out, err)."""
    shutil.copytree(Path(__file__).resolve().parents[2] / "mappings", tmp_path / "mappings")
    config = tmp_path / "syncd.yaml"
    config.write_text(f"mappings: mappings\ndatabase:\n  url: {json.dumps(db_url)}\nlog:\n  level: warning\n")
    for name in list(os.environ):
        if name.startswith("SYNCD_"):
            monkeypatch.delenv(name)

    def run_cli(*args):
        capsys.readouterr()
        code = main(["-c", str(config), *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run_cli


def metrics(rt) -> dict[str, float]:
    from syncd.web.metrics import DatabaseCollector
    return {s.name + (f"{{{s.labels['status']}}}" if "status" in s.labels else ""): s.value
            for family in DatabaseCollector(lambda: rt.engine, rt.clock).collect() for s in family.samples}


def add_central_administrator(rt) -> str:
    account_id = operator.add_account(rt, ADMIN, "Alice", "Admin", "CARSAT-RA")
    operator.add_decider(rt, ADMIN, None)
    return account_id


# --- nobody can decide --------------------------------------------------------------------------

def test_on_a_fresh_install_a_request_submitted_11_days_ago_waits_visible_until_an_administrator_comes(
        rt, daemon, clock, smtp_server, cli):
    ids = people(rt, correspondent=False, admin=False)
    request_id = portal_inserts(rt, kind="habilitation", email=REQUESTER, role_key="accords-locaux-acces",
                                submitted_at=clock() - timedelta(days=11))
    run(daemon, "intake", "reroute", "tacit")
    clock.advance(days=30)
    run(daemon, "reroute", "tacit", "apply")

    row = request_row(rt, request_id)
    assert row["status"] == "awaiting_decider" and row["decided_at"] is None and row["first_routed_at"] is None
    assert history_label(rt, request_id, ids["requester"]) == WAITING_LABEL
    report = operator.status_report(rt)
    assert report["requests"]["awaiting_decider"] == 1
    assert report["awaiting_decider_oldest_age_seconds"] == pytest.approx(timedelta(days=41).total_seconds())
    assert report["central_administrators"] == 0
    status_text = operator.format_status(report)
    assert "NO CENTRAL ADMINISTRATOR" in status_text and "awaiting_decider   1" in status_text
    seen = metrics(rt)
    assert seen["syncd_requests{awaiting_decider}"] == 1 and seen["syncd_central_administrators"] == 0
    assert seen["syncd_awaiting_decider_oldest_seconds"] == pytest.approx(timedelta(days=41).total_seconds())

    admin_id = operator.add_account(rt, ADMIN, "Alice", "Admin", "CARSAT-RA")
    code, _, err = cli("check-config")
    assert code == 0 and "NO CENTRAL ADMINISTRATOR" in err
    assert cli("decider", "add", ADMIN, "--central")[0] == 0
    assert "NO CENTRAL ADMINISTRATOR" not in cli("check-config")[2]
    run(daemon, "reroute", "tacit", "deliver")
    row = request_row(rt, request_id)
    assert row["status"] == "pending" and routed_to(rt, request_id) == {admin_id}
    assert row["first_routed_at"] == clock()
    assert row["deadline_at"] == clock() + timedelta(days=2), "two business days: Monday to Wednesday"
    assert bodies(smtp_server, ADMIN), "the administrator is asked to decide"
    code, out, _ = cli("status", "--json")
    assert code == 0 and json.loads(out)["central_administrators"] == 1
    assert json.loads(out)["requests"].get("awaiting_decider", 0) == 0

    clock.advance(days=2, seconds=-1)
    run(daemon, "tacit")
    assert request_row(rt, request_id)["status"] == "pending"
    clock.advance(seconds=1)
    run(daemon, "tacit")
    assert request_row(rt, request_id)["status"] == "accepted_tacitly"


def test_a_request_of_an_organisation_whose_only_correspondent_left_goes_back_to_waiting_and_is_never_granted(
        rt, daemon, clock):
    ids = people(rt, admin=False)
    request_id = habilitation(rt)
    run(daemon, "intake")
    deadline = request_row(rt, request_id)["deadline_at"]
    assert routed_to(rt, request_id) == {ids["correspondent"]}

    operator.remove_decider(rt, CORRESPONDENT, "CARSAT-RA")
    run(daemon, "reroute")
    assert request_row(rt, request_id)["status"] == "awaiting_decider"
    assert routed_to(rt, request_id) == set()
    clock.advance(days=20)
    run(daemon, "tacit", "reroute")
    assert request_row(rt, request_id)["status"] == "awaiting_decider"
    assert "awaiting_decider" in events(rt, request_id)

    operator.add_decider(rt, CORRESPONDENT, "CARSAT-RA")
    run(daemon, "reroute")
    row = request_row(rt, request_id)
    assert row["status"] == "pending" and row["deadline_at"] == deadline, "the first routing's window stands"


def test_a_decider_added_before_the_reroute_cannot_decide_a_request_still_waiting(rt, daemon):
    people(rt, correspondent=False, admin=False)
    request_id = habilitation(rt)
    run(daemon, "intake")
    add_central_administrator(rt)
    with pytest.raises(DecisionRefused) as refused:
        decide_request(rt, request_id, ADMIN, Verdict.ACCEPT)
    assert refused.value.code == "not_routed"


# --- the minimum decision window ----------------------------------------------------------------

def test_a_request_already_past_its_deadline_when_taken_in_gives_its_deciders_two_business_days(
        rt, daemon, clock, smtp_server):
    people(rt)
    request_id = portal_inserts(rt, kind="habilitation", email=REQUESTER, role_key="accords-locaux-acces",
                                submitted_at=clock() - timedelta(days=11))
    run(daemon, "intake", "tacit", "remind", "deliver")
    row = request_row(rt, request_id)
    assert row["status"] == "pending", "not accepted seconds after the deciders were told"
    assert row["deadline_at"] == clock() + timedelta(days=2)
    [asked] = bodies(smtp_server, CORRESPONDENT, "Demande")
    assert "avant le 04/11/2026 10:30, cette demande sera acceptée tacitement" in asked
    [reminder] = bodies(smtp_server, CORRESPONDENT, "Rappel")       # D-3 is past: the late reminder
    assert "Il vous reste 2 jours pour vous prononcer" in reminder

    decide_request(rt, request_id, CORRESPONDENT, Verdict.REFUSE, "Non.")
    assert request_row(rt, request_id)["status"] == "refused"


def test_a_reroute_does_not_restart_the_window(rt, daemon, clock):
    people(rt)
    request_id = portal_inserts(rt, kind="habilitation", email=REQUESTER, role_key="accords-locaux-acces",
                                submitted_at=clock() - timedelta(days=11))
    run(daemon, "intake")
    first = request_row(rt, request_id)
    clock.advance(days=1)
    second = operator.add_account(rt, "p.durand@lassuranceretraite.fr", "Paul", "Durand", "CARSAT-RA")
    operator.add_decider(rt, "p.durand@lassuranceretraite.fr", "CARSAT-RA")
    run(daemon, "reroute")
    assert second in routed_to(rt, request_id)
    row = request_row(rt, request_id)
    assert (row["deadline_at"], row["first_routed_at"]) == (first["deadline_at"], first["first_routed_at"])
    clock.now = first["deadline_at"]
    run(daemon, "tacit")
    assert request_row(rt, request_id)["status"] == "accepted_tacitly"


# --- account requests ---------------------------------------------------------------------------

def test_an_external_account_request_is_never_accepted_tacitly_but_escalated_to_the_central_administrators(
        rt, daemon, clock, smtp_server):
    ids = people(rt)
    request_id = account_request(rt, email=EXTERNAL, internal=False)
    run(daemon, "intake", "deliver")
    assert routed_to(rt, request_id) == {ids["correspondent"]}
    [asked] = bodies(smtp_server, CORRESPONDENT)
    assert "sera acceptée tacitement" not in asked and "jamais acceptée tacitement" in asked

    clock.advance(days=60)
    run(daemon, "tacit", "reroute", "tacit", "apply", "deliver")
    row = request_row(rt, request_id)
    assert row["status"] == "pending" and row["account_id"] is None
    assert routed_to(rt, request_id) == {ids["admin"]}
    assert "escalated" in events(rt, request_id)
    [escalation] = bodies(smtp_server, ADMIN)
    assert EXTERNAL in escalation and "n'a pas été traitée dans le délai" in escalation
    assert history_label(rt, request_id, email=EXTERNAL) == WAITING_LABEL

    decide_request(rt, request_id, ADMIN, Verdict.ACCEPT)
    assert request_row(rt, request_id)["status"] == "accepted"


def test_an_external_account_request_with_no_central_administrator_waits_visible(rt, daemon, clock):
    people(rt, admin=False)
    request_id = account_request(rt, email=EXTERNAL, internal=False)
    run(daemon, "intake")
    clock.advance(days=11)
    run(daemon, "tacit", "reroute", "tacit")
    assert request_row(rt, request_id)["status"] == "awaiting_decider"
    assert operator.status_report(rt)["requests"]["awaiting_decider"] == 1

    admin_id = add_central_administrator(rt)
    run(daemon, "reroute", "tacit")
    assert request_row(rt, request_id)["status"] == "pending"
    assert routed_to(rt, request_id) == {admin_id}


def test_an_internal_account_request_is_still_accepted_tacitly_by_default(rt, daemon, clock):
    people(rt)
    request_id = account_request(rt)
    run(daemon, "intake")
    clock.advance(days=10)
    run(daemon, "tacit")
    assert request_row(rt, request_id)["status"] == "accepted_tacitly"


def test_with_internal_account_tacit_off_an_internal_account_request_is_escalated_too(
        make_runtime, ldap_layout, clock):
    rt = make_runtime()
    rt.mappings = mappings(base_dn=ldap_layout.base_dn, internal_account_tacit=False)
    daemon = Daemon(rt)
    run(daemon, "provision")
    ids = people(rt)
    request_id = account_request(rt)
    run(daemon, "intake")
    clock.advance(days=10)
    run(daemon, "tacit", "reroute", "tacit")
    assert request_row(rt, request_id)["status"] == "pending"
    assert routed_to(rt, request_id) == {ids["admin"]}


# --- reminders ----------------------------------------------------------------------------------

def test_a_late_reminder_states_the_days_that_really_remain(rt, daemon, clock, smtp_server):
    people(rt)
    request_id = habilitation(rt)
    run(daemon, "intake")
    deadline = request_row(rt, request_id)["deadline_at"]
    clock.now = deadline - timedelta(days=2, hours=1)     # D-3 is a day late
    run(daemon, "remind", "deliver")
    [reminder] = bodies(smtp_server, CORRESPONDENT, "Rappel")
    assert "Il vous reste 2 jours pour vous prononcer" in reminder


def test_check_config_points_at_the_upgrade_note_and_says_nothing_of_a_database_not_created_yet(
        cli_config, capsys):
    assert main(["-c", str(cli_config), "check-config"]) == 0
    captured = capsys.readouterr()
    assert "docs/upgrading.md" in captured.out and captured.err == ""
    assert not Path("syncd.db").exists(), "check-config creates no database"


def test_a_request_an_older_version_routed_to_nobody_is_not_granted_after_the_upgrade_and_gets_a_full_window(
        rt, daemon, clock):
    people(rt, correspondent=False, admin=False)
    submitted = clock() - timedelta(days=11)
    # As 0.1 left it, and migration 0007 after it: pending, routed to nobody, first routed at submission.
    request_id = portal_inserts(rt, kind="habilitation", email=REQUESTER, role_key="accords-locaux-acces",
                                submitted_at=submitted, status="pending", organisation_code="CARSAT-RA",
                                account_id=people_id(rt, REQUESTER),
                                deadline_at=submitted + timedelta(days=10), first_routed_at=submitted)
    run(daemon, "tacit")
    assert request_row(rt, request_id)["status"] == "pending", "the sweep grants nothing routed to nobody"
    run(daemon, "reroute", "tacit")
    row = request_row(rt, request_id)
    assert (row["status"], row["first_routed_at"], row["deadline_at"]) == ("awaiting_decider", None, None)

    add_central_administrator(rt)
    run(daemon, "reroute", "tacit")
    row = request_row(rt, request_id)
    assert row["status"] == "pending" and row["deadline_at"] == clock() + timedelta(days=2)


def people_id(rt, email) -> str:
    with transaction(rt.engine) as conn:
        return repo.account_by_email(conn, email).id


def test_under_business_days_a_late_reminder_counts_the_business_days_that_remain(
        rt, ldap_layout, tmp_path, clock, smtp_server):
    from zoneinfo import ZoneInfo

    from tests.scenarios.shipped_mappings import shipped_mappings, use_mappings
    daemon = use_mappings(rt, shipped_mappings(tmp_path, ldap_layout.base_dn, policy={"calendar": "business_days_fr"}))
    paris = ZoneInfo("Europe/Paris")
    people(rt)
    clock.now = datetime(2026, 10, 30, 10, 30, tzinfo=paris).astimezone(timezone.utc)      # a Friday
    request_id = habilitation(rt, role="accords-locaux-acces-organisme")
    run(daemon, "intake")
    assert request_row(rt, request_id)["deadline_at"] == datetime(2026, 11, 16, 10, 30, tzinfo=paris)
    # D-3 was Tuesday 10 November; the daemon comes back on Thursday 12: Friday 13 and Monday 16 remain.
    clock.now = datetime(2026, 11, 12, 9, 0, tzinfo=paris).astimezone(timezone.utc)
    run(daemon, "remind", "deliver")
    [reminder] = bodies(smtp_server, CORRESPONDENT, "Rappel")
    assert "Il vous reste 2 jours ouvrés pour vous prononcer" in reminder
