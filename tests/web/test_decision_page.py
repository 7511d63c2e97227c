"""The one-click link of the deciders' mails, and the decision page it opens (no browser: see test_browser)."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from syncd.mail import links
from syncd.mail.links import decision_link
from tests.scenarios.helpers import CORRESPONDENT, events, mails_to, request_row
from tests.web.conftest import SIGNING_KEY, SQLITE_ONLY, links_in

pytestmark = pytest.mark.slapd


@pytest.fixture
def link(routed, daemon, smtp_server) -> str:
    """The path of the link the correspondent received."""
    daemon.run_job("deliver")
    found = links_in(mails_to(smtp_server, CORRESPONDENT)[-1])
    assert len(found) == 1
    return urlsplit(found[0]).path


def text(response) -> str:
    return html.unescape(response.text)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_the_mail_carries_a_signed_link_of_its_own_that_opens_a_french_page(link, client, routed, rt):
    page = client.get(link)
    assert page.status_code == 200
    shown_html = text(page)
    assert '<html lang="fr">' in shown_html
    for shown in ("Aristide Charenne", "CARSAT Rhône-Alpes", "Accords locaux - Accès organisme",
                  "Date de la demande", "02/11/2026 à 10:30", "12/11/2026 à 10:30", 'for="comment"'):
        assert shown in shown_html
    assert "<script" not in shown_html
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    claims = links.read_token(SIGNING_KEY, link.rsplit("/", 1)[1], rt.clock())
    assert (claims.request_id, claims.decider_id) == (routed["request"], routed["correspondent"])
    assert claims.expires_at == request_row(rt, routed["request"])["deadline_at"] + timedelta(days=1)
@SQLITE_ONLY
def test_opening_the_link_changes_nothing_however_often(link, client, routed, rt):
    for _ in range(3):
        assert client.get(link).status_code == 200
        assert client.get(link + "?verdict=accept").status_code == 200
        assert client.head(link).status_code in (200, 405)
    assert request_row(rt, routed["request"])["status"] == "pending"
    assert "decided" not in events(rt, routed["request"])


def test_accepting_through_the_link_records_the_decision_and_uses_the_link_up(link, client, routed, rt):
    form = client.get(link)
    done = client.post(link, data={"verdict": "accept", "csrf": csrf_of(form.text)})
    assert done.status_code == 200 and "demande acceptée" in text(done)
    row = request_row(rt, routed["request"])
    assert (row["status"], row["decided_by"]) == ("accepted", routed["correspondent"])
    again = client.post(link, data={"verdict": "refuse", "comment": "Non", "csrf": csrf_of(form.text)})
    assert again.status_code == 410 and "déjà été utilisé" in text(again)
    assert client.get(link).status_code == 410
    assert request_row(rt, routed["request"])["status"] == "accepted"


def test_refusing_without_a_comment_shows_the_error_and_keeps_the_link_usable(link, client, routed, rt):
    csrf = csrf_of(client.get(link).text)
    refused = client.post(link, data={"verdict": "refuse", "comment": "  ", "csrf": csrf})
    assert refused.status_code == 400
    assert 'role="alert"' in refused.text and "Merci d'indiquer le motif du refus" in text(refused)
    assert 'aria-invalid="true"' in refused.text
    assert request_row(rt, routed["request"])["status"] == "pending"
    done = client.post(link, data={"verdict": "refuse", "comment": "Poste sans lien", "csrf": csrf_of(refused.text)})
    assert done.status_code == 200 and "demande refusée" in text(done)
    assert request_row(rt, routed["request"])["comment"] == "Poste sans lien"
@SQLITE_ONLY
def test_an_expired_link_is_refused(link, client, routed, rt, clock):
    clock.advance(days=11)    # the deadline is 10 days away, the link lives a day longer
    assert client.get(link).status_code == 410
    assert client.post(link, data={"verdict": "refuse", "comment": "Non", "csrf": "x"}).status_code == 410
    assert request_row(rt, routed["request"])["decided_at"] is None
@SQLITE_ONLY
def test_after_the_deadline_the_page_says_the_request_is_accepted_tacitly(link, client, routed, clock):
    clock.advance(days=10)
    page = client.get(link)
    assert page.status_code == 200 and "délai de réponse est écoulé" in text(page) and "<form" not in page.text
@SQLITE_ONLY
def test_a_tampered_link_is_refused(link, client, routed, rt):
    token = link.rsplit("/", 1)[1]
    payload, signature = token.split(".")
    flipped = payload[:5] + ("A" if payload[5] != "A" else "B") + payload[6:]
    for forged in (f"{flipped}.{signature}", f"{payload}.{signature[:-8]}", token[:20], "x" * 40,
                   links.make_token("another-key-" + "0" * 32, routed["request"], routed["correspondent"],
                                    rt.clock() + timedelta(days=1))):
        assert client.get(f"/decide/{forged}").status_code == 403
        response = client.post(f"/decide/{forged}", data={"verdict": "accept", "csrf": "x"})
        assert response.status_code == 403 and "Lien invalide" in text(response)
    assert request_row(rt, routed["request"])["status"] == "pending"


def test_a_link_made_for_a_correspondent_of_another_organisation_decides_nothing(client, routed, rt):
    path = urlsplit(decision_link(rt, routed["request"], routed["other_correspondent"], rt.clock())).path
    page = client.get(path)
    assert page.status_code == 403 and "<form" not in page.text
    refused = client.post(path, data={"verdict": "accept", "csrf": links.form_token(
        SIGNING_KEY, links.read_token(SIGNING_KEY, path.rsplit("/", 1)[1], rt.clock()).link_id, rt.clock())})
    assert refused.status_code == 403
    assert request_row(rt, routed["request"])["status"] == "pending"
@SQLITE_ONLY
def test_a_link_to_ones_own_request_decides_nothing(client, routed, rt):
    path = urlsplit(decision_link(rt, routed["request"], routed["requester"], rt.clock())).path
    assert client.get(path).status_code == 403
@SQLITE_ONLY
def test_a_form_without_its_token_or_with_another_links_token_is_refused(link, client, routed, rt):
    assert client.post(link, data={"verdict": "accept"}).status_code == 403
    other = decision_link(rt, routed["request"], routed["correspondent"], rt.clock())
    other_csrf = csrf_of(client.get(urlsplit(other).path).text)
    assert client.post(link, data={"verdict": "accept", "csrf": other_csrf}).status_code == 403
    assert request_row(rt, routed["request"])["status"] == "pending"
@SQLITE_ONLY
def test_a_form_left_open_too_long_must_be_reloaded(link, client, routed, rt, clock):
    csrf = csrf_of(client.get(link).text)
    clock.advance(hours=13)
    response = client.post(link, data={"verdict": "accept", "csrf": csrf})
    assert response.status_code == 403 and "Formulaire expiré" in text(response)
    assert request_row(rt, routed["request"])["status"] == "pending"


def test_a_correspondent_removed_since_the_mail_can_no_longer_decide(link, client, routed, rt):
    from syncd import operator
    csrf = csrf_of(client.get(link).text)
    operator.remove_decider(rt, CORRESPONDENT, "CARSAT-RA")
    response = client.post(link, data={"verdict": "accept", "csrf": csrf})
    assert response.status_code == 403 and "pas habilité" in text(response)
    assert request_row(rt, routed["request"])["status"] == "pending"


def test_the_signed_link_is_erased_from_the_outbox_once_sent(link, rt):
    from sqlalchemy import select

    from syncd.store.db import transaction
    from syncd.store.tables import outbox
    with transaction(rt.engine) as conn:
        contexts = [r.context for r in conn.execute(select(outbox.c.context, outbox.c.recipient)
                                                    .where(outbox.c.recipient == CORRESPONDENT))]
    assert contexts and all(c["decide_url"] is None for c in contexts)


def test_each_reminder_carries_a_fresh_link_of_its_own(link, client, routed, rt, daemon, clock, smtp_server):
    clock.advance(days=7)                      # D-3
    daemon.run_job("remind")
    daemon.run_job("deliver")
    reminder = mails_to(smtp_server, CORRESPONDENT)[-1]
    [fresh] = links_in(reminder)
    assert urlsplit(fresh).path != link
    assert client.get(urlsplit(fresh).path).status_code == 200


@SQLITE_ONLY
def test_without_a_signing_key_the_mail_carries_the_plain_address(rt, daemon, smtp_server):
    from tests.scenarios.helpers import habilitation, people
    rt.settings = rt.settings.model_copy(update={"web": rt.settings.web.model_copy(update={"signing_key": None})})
    people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    daemon.run_job("deliver")
    body = mails_to(smtp_server, CORRESPONDENT)[-1].get_body(("plain",)).get_content()
    assert f"https://habilitations.example.org/decisions/{request_id}" in body and "/decide/" not in body


def test_an_account_request_is_decided_from_its_link_too(api, client, routed, rt, daemon, smtp_server):
    submitted = api.post("/api/v1/requests", {
        "kind": "account", "email": "n.nouveau@lassuranceretraite.fr", "civility": "M.", "given_name": "Noé",
        "family_name": "Nouveau", "internal": True, "organisation_code": "CARSAT-RA", "terms_accepted": True,
        "terms_version": "1"})
    request_id = submitted.json()["request_id"]
    daemon.run_job("intake")
    daemon.run_job("deliver")
    path = urlsplit(links_in(mails_to(smtp_server, CORRESPONDENT)[-1])[0]).path
    page = client.get(path)
    assert "Demande de création de compte à valider" in text(page) and "Noé Nouveau" in text(page)
    done = client.post(path, data={"verdict": "accept", "csrf": csrf_of(page.text)})
    assert done.status_code == 200
    assert request_row(rt, request_id)["status"] == "accepted"


def test_a_mobility_submitted_by_the_portal_is_decided_from_the_new_organisations_link(
        api, client, routed, rt, daemon, smtp_server):
    from tests.scenarios.helpers import REQUESTER
    from tests.web.conftest import OTHER_CORRESPONDENT
    unknown = api.post("/api/v1/requests", {"kind": "mobility", "email": REQUESTER, "organisation_code": "NOWHERE"})
    assert unknown.status_code == 400
    submitted = api.post("/api/v1/requests", {"kind": "mobility", "email": REQUESTER, "organisation_code": "CPAM-75"})
    assert submitted.status_code == 201
    request_id = submitted.json()["request_id"]
    daemon.run_job("intake")
    daemon.run_job("deliver")
    asked = [m["Subject"] for m in mails_to(smtp_server, OTHER_CORRESPONDENT)]
    assert asked == ["Demande de changement d'organisme à valider – Aristide Charenne"]
    assert not any("changement d'organisme" in m["Subject"] for m in mails_to(smtp_server, CORRESPONDENT)), \
        "the organisation the person leaves is not asked"
    pending = api.get(f"/api/v1/deciders/{OTHER_CORRESPONDENT}/pending?kind=mobility").json()
    assert [i["description"] for i in pending["items"]] == ["Changement d'organisme vers CPAM de Paris"]
    path = urlsplit(links_in(mails_to(smtp_server, OTHER_CORRESPONDENT)[-1])[0]).path
    page = client.get(path)
    assert "Demande de changement d'organisme à valider" in text(page)
    done = client.post(path, data={"verdict": "accept", "csrf": csrf_of(page.text)})
    assert done.status_code == 200
    assert request_row(rt, request_id)["status"] == "accepted"
    history = api.get(f"/api/v1/accounts/{REQUESTER}/history").json()
    assert any(i["description"] == "Changement d'organisme vers CPAM de Paris" for i in history["items"])
