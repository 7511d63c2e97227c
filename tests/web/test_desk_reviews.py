"""The desk's « Revue des habilitations » tab: a reviewer opens it from the campaign's mail, confirms
and withdraws rights in bulk (CSRF, a reason to withdraw), on slapd and the SMTP fixture; and in a
real headless Chromium (JavaScript off), a correspondent completes a review."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from syncd.jobs import reviews
from syncd.store.db import transaction
from syncd.store.tables import review_items
from tests.scenarios.helpers import CORRESPONDENT, REQUESTER, mails_to, member_dns, people, person
from tests.scenarios.shipped_mappings import use_mappings
from tests.scenarios.test_reviews import HOLDERS, LOCAL, grant, reviewed
from tests.web.conftest import SQLITE_ONLY
from tests.web.test_browser import browser, port, server, web_base_url  # noqa: F401 - fixtures
from tests.web.test_desk import CSRF
from tests.web.test_desk_browser import shots

pytestmark = pytest.mark.slapd

REVIEW_LINK = re.compile(r"https?://[^\s]+(/desk/open/[A-Za-z0-9_.\-]+\?tab=reviews)")


def campaign_with_three_rights(rt, smtp_server):
    """Three people of CARSAT-RA hold the reviewed local role; a campaign opens; the
    correspondent's mail is delivered. Returns (daemon, account ids by e-mail, the link's path)."""
    from syncd import operator
    daemon = use_mappings(rt, reviewed(rt.mappings, LOCAL))
    ids = people(rt)
    for email in HOLDERS:
        ids[email] = operator.add_account(rt, email, "Bea", email.split("@")[0].split(".")[1].title(), "CARSAT-RA")
    ids[REQUESTER] = ids["requester"]
    grant(rt, daemon, [(email, LOCAL, CORRESPONDENT) for email in (REQUESTER, *HOLDERS)])
    reviews.start(rt, ["CARSAT-RA"])
    daemon.run_job("deliver")
    [mail] = [m for m in mails_to(smtp_server, CORRESPONDENT) if "Revue des habilitations" in m["Subject"]]
    return daemon, ids, REVIEW_LINK.search(mail.get_body(("plain",)).get_content()).group(1)


def answers(rt) -> dict[str, str | None]:
    with transaction(rt.engine, readonly=True) as conn:
        return {r.account_id: r.decision for r in conn.execute(review_items.select())}


@SQLITE_ONLY
def test_a_reviewer_confirms_and_withdraws_in_bulk_from_the_mails_link_with_csrf_and_a_reason(
        rt, client, smtp_server):
    daemon, ids, path = campaign_with_three_rights(rt, smtp_server)
    opened = client.get(path)
    assert opened.status_code == 200 and 'url=/desk/reviews"' in opened.text
    page = client.get("/desk/reviews")
    assert page.status_code == 200 and "CARSAT Rhône-Alpes : 3 habilitation(s) à revoir" in page.text
    items = {i.holder_email: str(i.id) for i in reviews.items_for(rt, CORRESPONDENT)}
    csrf = CSRF.search(page.text).group(1)

    assert client.post("/desk/reviews", data={"item": items[REQUESTER], "action": "confirm"}).status_code == 403
    refused = client.post("/desk/reviews", data={"item": items[HOLDERS[0]], "action": "withdraw", "csrf": csrf})
    assert refused.status_code == 400 and "indiquer le motif du retrait" in refused.text
    assert set(answers(rt).values()) == {None}, "nothing answered by a refused form"

    done = client.post("/desk/reviews", data={"item": [items[REQUESTER], items[HOLDERS[1]]], "action": "confirm",
                                              "csrf": csrf})
    assert done.status_code == 200 and "Habilitation(s) confirmée(s) : 2" in done.text
    again = client.post("/desk/reviews", data={"item": [items[REQUESTER]], "action": "confirm", "csrf": csrf})
    assert "Habilitation(s) confirmée(s) : 0" in again.text, "a second submit answers nothing twice"
    client.post("/desk/reviews", data={"item": items[HOLDERS[0]], "action": "withdraw", "csrf": csrf,
                                       "reason": "N'utilise plus l'application."})
    assert answers(rt) == {ids[REQUESTER]: "confirmed", ids[HOLDERS[1]]: "confirmed", ids[HOLDERS[0]]: "withdrawn"}
    daemon.run_job("accounts")
    assert person(rt, ids[HOLDERS[0]]) not in member_dns(rt, LOCAL)


@SQLITE_ONLY
def test_a_correspondent_completes_a_review_in_a_browser(browser, server, rt, smtp_server, tmp_path):  # noqa: F811
    daemon, ids, path = campaign_with_three_rights(rt, smtp_server)
    context = browser.new_context(locale="fr-FR", java_script_enabled=False, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        assert page.goto(server + path).status == 200
        expect(page).to_have_url(server + "/desk/reviews")
        expect(page.get_by_role("heading", level=1)).to_have_text("Revue des habilitations")
        expect(page.get_by_role("link", name="Revue des habilitations")).to_have_attribute("aria-current", "page")
        page.screenshot(path=str(shots(tmp_path) / "desk-reviews.png"), full_page=True)

        page.get_by_role("checkbox", name="Choisir : Accords locaux - Accès organisme, Aristide Charenne").check()
        page.get_by_role("checkbox", name=re.compile(r"^Choisir : .*, Bea Colin$")).check()
        with page.expect_navigation() as nav:
            page.get_by_role("button", name="Confirmer la sélection").click()
        assert nav.value.status == 200
        expect(page.get_by_role("status")).to_contain_text("Habilitation(s) confirmée(s) : 2")

        page.get_by_role("checkbox", name=re.compile(r"^Choisir : .*, Bea Bernard$")).check()
        with page.expect_navigation() as nav:
            page.get_by_role("button", name="Retirer la sélection").click()
        assert nav.value.status == 400
        expect(page.get_by_role("alert")).to_contain_text("Merci d'indiquer le motif du retrait")
        expect(page.get_by_label("Motif du retrait")).to_be_focused()
        page.get_by_label("Motif du retrait").fill("A quitté le service.")
        with page.expect_navigation() as nav:
            page.get_by_role("button", name="Retirer la sélection").click()
        assert nav.value.status == 200
        expect(page.get_by_role("status")).to_contain_text("Habilitation(s) retirée(s) : 1")
        assert page.get_by_role("checkbox").count() == 0, "every right answered"
    finally:
        context.close()
    assert sorted(answers(rt).values()) == ["confirmed", "confirmed", "withdrawn"]
    daemon.run_job("accounts")
    daemon.run_job("deliver")
    assert any("A quitté le service." in m.get_body(("plain",)).get_content() for m in mails_to(smtp_server, HOLDERS[0]))
