"""The tacit clock configured through the shipped mappings: business days, reminders, per-kind delays.

Each test edits ``mappings/`` as an operator would (``shipped_mappings``), runs the daemon's jobs
on SQLite and PostgreSQL, a real slapd and the in-process SMTP server, and reads the outcome
where the portal and the deciders see it: the request row, its history and the mails.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from syncd.store import repo
from syncd.store.db import transaction
from tests.scenarios.helpers import CORRESPONDENT, habilitation, mails_to, people, portal_inserts, request_row
from tests.scenarios.shipped_mappings import shipped_mappings, use_mappings

pytestmark = pytest.mark.slapd

PARIS = ZoneInfo("Europe/Paris")
BUSINESS_DAYS = {"calendar": "business_days_fr"}


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def history(rt, request_id) -> list[dict]:
    with transaction(rt.engine) as conn:
        return [dict(e) for e in repo.events_of(conn, request_id)]


@pytest.fixture
def business_days(rt, ldap_layout, tmp_path):
    """``rt`` and its daemon on the shipped mappings with ``policy.calendar: business_days_fr``."""
    return use_mappings(rt, shipped_mappings(tmp_path, ldap_layout.base_dn, policy=BUSINESS_DAYS))


@pytest.mark.parametrize("submitted, role, delay, expected", [
    # Thursday 9 July 2026 + 5 business days: Fri 10, Mon 13, (Tue 14 July), Wed 15, Thu 16, Fri 17.
    (paris(2026, 7, 9, 10, 0), "greve-declaration-mouvements", 5, paris(2026, 7, 17, 10, 0)),
    # Wednesday 29 April 2026 + 10: Thu 30, (Fri 1 May), Mon 4 - Thu 7, (Fri 8 May), Mon 11 - Wed 13,
    # (Thu 14, Ascension), Fri 15, Mon 18.
    (paris(2026, 4, 29, 10, 0), "accords-locaux-acces-organisme", 10, paris(2026, 5, 18, 10, 0)),
], ids=["around-14-july", "around-1-and-8-may"])
def test_under_the_business_day_calendar_a_roles_deadline_skips_weekends_and_french_public_holidays_in_its_history(
        rt, business_days, clock, submitted, role, delay, expected):
    daemon = business_days
    assert rt.mappings.tacit_delay_of(role) == delay
    people(rt)
    clock.now = submitted.astimezone(timezone.utc)
    request_id = habilitation(rt, role=role)
    daemon.run_job("intake")

    row = request_row(rt, request_id)
    assert row["status"] == "pending" and row["deadline_at"] == expected
    assert expected > submitted + timedelta(days=delay), "later than the same number of calendar days"
    routed = [e for e in history(rt, request_id) if e["event"] == "routed"]
    assert len(routed) == 1 and datetime.fromisoformat(routed[0]["detail"]["deadline_at"]) == expected

    clock.now = expected.astimezone(timezone.utc) - timedelta(seconds=1)
    daemon.run_job("tacit")
    assert request_row(rt, request_id)["status"] == "pending"
    clock.now = expected.astimezone(timezone.utc)
    daemon.run_job("tacit")
    assert request_row(rt, request_id)["status"] == "accepted_tacitly"


def test_a_request_submitted_late_on_sunday_utc_counts_its_business_days_from_monday_in_paris(rt, business_days, clock):
    daemon = business_days
    people(rt)
    clock.now = datetime(2026, 7, 5, 23, 30, tzinfo=timezone.utc)       # Monday 6 July, 01:30 in Paris
    request_id = habilitation(rt, role="greve-declaration-mouvements")
    daemon.run_job("intake")
    # 7, 8, 9, 10 and 13 July: the deadline is a Monday in Paris, not the Saturday before.
    assert request_row(rt, request_id)["deadline_at"] == paris(2026, 7, 13, 1, 30)


def test_under_the_business_day_calendar_deciders_are_reminded_on_the_business_days_before_the_deadline(
        rt, business_days, clock, smtp_server):
    daemon = business_days
    people(rt)
    clock.now = paris(2026, 10, 30, 10, 30).astimezone(timezone.utc)     # a Friday
    request_id = habilitation(rt, role="accords-locaux-acces-organisme")
    daemon.run_job("intake")
    # Mon 2 - Fri 6, Mon 9, Tue 10, (Wed 11 November), Thu 12, Fri 13, Mon 16.
    assert request_row(rt, request_id)["deadline_at"] == paris(2026, 11, 16, 10, 30)

    def remind_at(*moment) -> list[int]:
        clock.now = paris(*moment).astimezone(timezone.utc)
        daemon.run_job("remind")
        return [e["detail"]["days_before"] for e in history(rt, request_id) if e["event"] == "reminded"]

    assert remind_at(2026, 11, 10, 10, 29, 59) == []
    assert remind_at(2026, 11, 10, 10, 30) == [3], "D-3 is three business days before: Tuesday"
    assert remind_at(2026, 11, 13, 10, 29, 59) == [3]
    assert remind_at(2026, 11, 13, 10, 30) == [3, 1], "D-1 is the business day before: Friday, not Sunday"
    assert remind_at(2026, 11, 15, 12, 0) == [3, 1]

    daemon.run_job("deliver")
    bodies = [m.get_body(("plain",)).get_content() for m in mails_to(smtp_server, CORRESPONDENT)
              if m["Subject"].startswith("Rappel")]
    assert len(bodies) == 2
    assert "Il vous reste 3 jours ouvrés pour vous prononcer" in bodies[0]
    assert "Il vous reste un jour ouvré pour vous prononcer" in bodies[1]


def test_an_account_request_gets_the_policys_account_delay_and_a_habilitation_its_own(
        rt, ldap_layout, tmp_path, clock):
    daemon = use_mappings(rt, shipped_mappings(tmp_path, ldap_layout.base_dn, policy={
        "account_tacit_delay_days": "3", "tacit_delay_days": "12"}))
    people(rt)
    account_id = portal_inserts(rt, kind="account", email="b.durand@lassuranceretraite.fr", civility="Mme",
                                given_name="Béatrice", family_name="Durand", internal=True,
                                organisation_code="CARSAT-RA", terms_accepted=True, terms_version="2026-01")
    policy_role = habilitation(rt, role="accords-locaux-acces-organisme")
    own_delay_role = habilitation(rt, role="greve-declaration-mouvements")       # tacit_delay_days: 5
    daemon.run_job("intake")
    submitted = clock()
    assert request_row(rt, account_id)["deadline_at"] == submitted + timedelta(days=3)
    assert request_row(rt, policy_role)["deadline_at"] == submitted + timedelta(days=12)
    assert request_row(rt, own_delay_role)["deadline_at"] == submitted + timedelta(days=5)

    clock.advance(days=3)
    daemon.run_job("tacit")
    daemon.run_job("apply")
    account = request_row(rt, account_id)
    assert account["status"] == "accepted_tacitly" and account["applied_at"] is not None
    assert rt.directory.read_entry(
        f"uid={account['account_id']},ou=people,{ldap_layout.base_dn}", ["mail"])["mail"] == \
        ["b.durand@lassuranceretraite.fr"]
    assert request_row(rt, policy_role)["status"] == request_row(rt, own_delay_role)["status"] == "pending"
