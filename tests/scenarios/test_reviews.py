"""Access review campaigns, end to end on slapd, SQLite and PostgreSQL: reviewers confirm or
withdraw the rights of their scope; the end of the window keeps or withdraws what nobody
answered, by ``review.unanswered``; a right nobody can review waits; reviewed roles are never
renewed tacitly."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from syncd import operator
from syncd.core.model import Verdict
from syncd.errors import DecisionRefused
from syncd.jobs import reviews
from syncd.jobs.decisions import decide_request
from syncd.mappings import Mappings
from syncd.store import audit
from syncd.store.db import transaction
from syncd.store.tables import memberships, requests, review_campaigns
from tests.scenarios.helpers import (ADMIN, CORRESPONDENT, REQUESTER, habilitation, mails_to, member_dns, people,
                                     person)
from tests.scenarios.shipped_mappings import use_mappings

pytestmark = pytest.mark.slapd

LOCAL, CENTRAL = "accords-locaux-acces", "opim-local"
HOLDERS = ("b.bernard@lassuranceretraite.fr", "c.colin@lassuranceretraite.fr")


def reviewed(m: Mappings, *keys: str) -> Mappings:
    """These mappings with the roles ``keys`` marked ``review: true`` (and so without validity)."""
    data = m.model_dump(mode="json")
    for app in data["applications"]:
        for role in app["roles"]:
            if role["key"] in keys:
                role.update(review=True, validity_months=None)
    return Mappings.model_validate(data)


def grant(rt, daemon, grants: list[tuple[str, str, str]]) -> None:
    """(holder's e-mail, role, decider) each granted through a request, then written to LDAP."""
    ids = [habilitation(rt, role=role, email=email) for email, role, _ in grants]
    daemon.run_job("intake")
    for request_id, (_, _, by) in zip(ids, grants, strict=True):
        decide_request(rt, request_id, by, Verdict.ACCEPT)
    daemon.run_job("apply")


def holders(rt, role):
    return set(member_dns(rt, role)) - {rt.mappings.directory.groups.placeholder_member.lower()}


def audit_actions(rt):
    with transaction(rt.engine) as conn:
        return [(r["action"], r["target"], r["detail"]) for r in audit.unsealed_rows(conn)] + \
            [(r["action"], r["target"], r["detail"]) for r in audit.rows(conn)]


def scraped(rt) -> dict:
    """The web process's database gauges, by (name, label values)."""
    from syncd.web.metrics import DatabaseCollector
    return {(s.name, tuple(s.labels.values())): s.value
            for family in DatabaseCollector(lambda: rt.engine, rt.clock).collect() for s in family.samples}


def campaign_state(rt):
    with transaction(rt.engine) as conn:
        return conn.execute(select(review_campaigns.c.state)).scalar_one()


def test_with_unanswered_withdraw_the_end_removes_exactly_the_unconfirmed_rights_from_ldap_and_tells_holders(
        make_runtime, clock, smtp_server):
    rt = make_runtime(review={"unanswered": "withdraw", "window_days": 30})
    daemon = use_mappings(rt, reviewed(rt.mappings, LOCAL, CENTRAL))
    ids = people(rt)
    for email in HOLDERS:
        ids[email] = operator.add_account(rt, email, "Bea", email.split("@")[0], "CARSAT-RA")
    grant(rt, daemon, [(REQUESTER, LOCAL, CORRESPONDENT), (HOLDERS[0], LOCAL, CORRESPONDENT),
                       (HOLDERS[1], LOCAL, CORRESPONDENT), (REQUESTER, CENTRAL, ADMIN)])

    [opened] = reviews.start(rt, ["CARSAT-RA"])
    assert (opened.rights, opened.reviewers) == (4, 2)
    local = {i.holder_email: i.id for i in reviews.items_for(rt, CORRESPONDENT)}
    central = [i.id for i in reviews.items_for(rt, ADMIN)]
    assert set(local) == {REQUESTER, *HOLDERS} and len(central) == 1, "the correspondent reviews local rights only"
    assert reviews.confirm(rt, [local[REQUESTER]], CORRESPONDENT) == [local[REQUESTER]]
    assert reviews.confirm(rt, [local[REQUESTER]], CORRESPONDENT) == [], "a second submit answers nothing twice"
    reviews.withdraw(rt, [local[HOLDERS[0]]], CORRESPONDENT, "A quitté le service.")
    reviews.confirm(rt, central, ADMIN)
    daemon.run_job("accounts")
    assert person(rt, ids[HOLDERS[0]]) not in holders(rt, LOCAL), "a withdrawal reaches LDAP at once"

    clock.advance(days=29)
    daemon.run_job("reviews")
    assert person(rt, ids[HOLDERS[1]]) in holders(rt, LOCAL), "nothing happens before the end"
    clock.advance(days=1)
    daemon.run_job("reviews")
    daemon.run_job("accounts")
    daemon.run_job("deliver")

    assert holders(rt, LOCAL) == {person(rt, ids["requester"])}
    assert holders(rt, CENTRAL) == {person(rt, ids["requester"])}
    assert campaign_state(rt) == "closed"
    [closed] = [d for action, _, d in audit_actions(rt) if action == "review_closed"]
    assert closed["outcome"] == {"confirmed": 2, "withdrawn": 1, "withdrawn_unanswered": 1}
    assert "A quitté le service." in mails_to(smtp_server, HOLDERS[0])[-1].get_body(("plain",)).get_content()
    unanswered_mail = mails_to(smtp_server, HOLDERS[1])[-1]
    assert "retirée" in unanswered_mail["Subject"] and "revue des habilitations" in unanswered_mail.get_body(("plain",)).get_content()
    assert not any("retirée" in m["Subject"] for m in mails_to(smtp_server, REQUESTER))
    opening = [m for m in mails_to(smtp_server, CORRESPONDENT) if "Revue des habilitations" in m["Subject"]]
    assert len(opening) == 1 and "3 habilitation(s)" in opening[0]["Subject"]


def test_the_schedule_opens_campaigns_and_with_unanswered_keep_the_end_records_each_right_kept_tacitly(
        make_runtime, clock, smtp_server):
    rt = make_runtime(review={"schedule": [f"{clock.now:%m-%d}"], "window_days": 10})
    daemon = use_mappings(rt, reviewed(rt.mappings, LOCAL))
    ids = people(rt)
    grant(rt, daemon, [(REQUESTER, LOCAL, CORRESPONDENT)])

    daemon.run_job("reviews")
    daemon.run_job("reviews")
    with transaction(rt.engine) as conn:
        opened = {r.organisation_code: r.state for r in conn.execute(select(review_campaigns))}
    assert opened == {"CARSAT-RA": "open", "CPAM-75": "closed"}, "once per organisation; nothing to review: closed"
    clock.advance(days=10)
    daemon.run_job("reviews")
    daemon.run_job("accounts")

    assert holders(rt, LOCAL) == {person(rt, ids["requester"])}
    kept = [(target, d) for action, target, d in audit_actions(rt) if action == "review_kept_tacitly"]
    assert [target for target, _ in kept] == [f"{ids['requester']}:{LOCAL}"]
    closed = [d for action, target, d in audit_actions(rt) if action == "review_closed" and target == "CARSAT-RA"]
    assert closed[0]["outcome"] == {"kept_tacitly": 1}
    assert reviews.progress(rt) == [], "nothing under way"


def test_a_right_nobody_can_review_waits_visibly_and_is_not_withdrawn_until_a_reviewer_exists(
        make_runtime, clock, smtp_server):
    rt = make_runtime(review={"unanswered": "withdraw", "window_days": 7})
    daemon = use_mappings(rt, reviewed(rt.mappings, LOCAL))
    ids = people(rt, correspondent=False)
    grant(rt, daemon, [(REQUESTER, LOCAL, ADMIN)])   # no correspondent: the central administrator decided
    operator.remove_decider(rt, ADMIN, None)

    reviews.start(rt, ["CARSAT-RA"])
    [under_way] = reviews.progress(rt)
    assert under_way["no_reviewer"] == 1
    clock.advance(days=8)
    daemon.run_job("reviews")
    daemon.run_job("accounts")
    assert person(rt, ids["requester"]) in holders(rt, LOCAL), "nothing is withdrawn unasked"
    assert campaign_state(rt) == "awaiting_reviewer"
    report = operator.status_report(rt)
    assert "NOBODY CAN REVIEW 1" in operator.format_status(report)
    assert report["reviews"][0]["state"] == "awaiting_reviewer"
    clock.advance(hours=1)
    seen = scraped(rt)
    assert seen["syncd_review_awaiting_reviewer_seconds", ()] == timedelta(days=1, hours=1).total_seconds()
    assert seen["syncd_review_items", ("CARSAT-RA", "undecided")] == 1

    operator.add_decider(rt, ADMIN, None)
    daemon.run_job("reviews")
    daemon.run_job("deliver")
    assert campaign_state(rt) == "open", "a new window, for the reviewer who now exists"
    assert [m for m in mails_to(smtp_server, ADMIN) if "Revue des habilitations" in m["Subject"]]


def test_reviewed_roles_get_no_tacit_renewal_and_a_confirmed_right_outlives_its_old_validity(
        make_runtime, clock):
    rt = make_runtime()
    daemon = use_mappings(rt, rt.mappings)
    ids = people(rt)
    grant(rt, daemon, [(REQUESTER, "annuaire-redacteur", CORRESPONDENT)])   # validity_months: 12
    rt.mappings = reviewed(rt.mappings, "annuaire-redacteur")                # the operator switches to reviews
    with transaction(rt.engine) as conn:
        ends = conn.execute(select(memberships.c.expires_at)).scalar_one()

    clock.now = ends - timedelta(days=10)
    daemon.run_job("expiry")
    reviews.start(rt, ["CARSAT-RA"])
    [item] = [i.id for i in reviews.items_for(rt, CORRESPONDENT)]
    reviews.confirm(rt, [item], CORRESPONDENT)
    clock.now = ends + timedelta(days=60)
    daemon.run_job("reviews")
    daemon.run_job("expiry")
    daemon.run_job("accounts")

    with transaction(rt.engine) as conn:
        assert conn.execute(select(requests.c.id).where(requests.c.kind == "renewal")).first() is None
        assert conn.execute(select(memberships.c.revoked_at)).scalar_one() is None
    assert person(rt, ids["requester"]) in holders(rt, "annuaire-redacteur")


def test_only_a_rights_reviewers_may_answer_for_it_and_a_withdrawal_needs_a_reason(make_runtime):
    rt = make_runtime()
    daemon = use_mappings(rt, reviewed(rt.mappings, LOCAL, CENTRAL))
    people(rt)
    grant(rt, daemon, [(REQUESTER, LOCAL, CORRESPONDENT), (REQUESTER, CENTRAL, ADMIN)])
    reviews.start(rt, ["CARSAT-RA"])
    with pytest.raises(DecisionRefused) as refused:
        reviews.start(rt, ["CARSAT-RA"])
    assert refused.value.code == "review_under_way"
    [central] = [i.id for i in reviews.items_for(rt, ADMIN)]
    [local] = [i.id for i in reviews.items_for(rt, CORRESPONDENT)]
    for items, who, code in (([central], CORRESPONDENT, "not_authorised"), ([local, central], CORRESPONDENT,
                             "not_authorised"), ([local], REQUESTER, "own_request"), ([999], ADMIN, "not_found")):
        with pytest.raises(DecisionRefused) as refused:
            reviews.confirm(rt, items, who)
        assert refused.value.code == code
    with pytest.raises(DecisionRefused) as refused:
        reviews.withdraw(rt, [local], CORRESPONDENT, "  ")
    assert refused.value.code == "reason_required"
    assert [i.decision for i in reviews.items_for(rt, CORRESPONDENT)] == [None], "all or nothing"
