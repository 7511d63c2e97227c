"""A correspondent works at the desk in a real headless Chromium (Debian's ``chromium``, JavaScript
off): opens it from the digest mail's link, selects three requests and accepts them, tries to
refuse one without a reason and reads the French error, then withdraws a right.

One test, one browser, one server (those of ``test_browser``): browsers are slow to start. With
``SYNCD_SCREENSHOTS=DIR`` (``make screenshots``: docs/images) the pages docs/web.md shows are
saved there. Skipped with a loud reason without ``/usr/bin/chromium``, unless ``CI=true``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from syncd import operator
from syncd.store.db import transaction
from syncd.store.tables import memberships
from tests.scenarios.helpers import CORRESPONDENT, REQUESTER, habilitation, mails_to, people, request_row
from tests.web.conftest import SQLITE_ONLY
from tests.web.test_browser import browser, port, server, web_base_url  # noqa: F401,F811 - fixtures
from tests.web.test_desk import DESK_LINK, LOCAL_ROLES

pytestmark = pytest.mark.slapd


def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SYNCD_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@SQLITE_ONLY
def test_a_correspondent_accepts_three_requests_is_told_a_refusal_needs_a_reason_and_withdraws_a_right(
        browser, server, rt, daemon, smtp_server, tmp_path):  # noqa: F811 - pytest fixtures imported above
    folder = shots(tmp_path)
    people(rt)
    three = [habilitation(rt, role) for role in LOCAL_ROLES]
    operator.add_account(rt, "b.roux@lassuranceretraite.fr", "Bernard", "Roux", "CARSAT-RA")
    fourth = habilitation(rt, email="b.roux@lassuranceretraite.fr")
    daemon.run_job("intake")
    daemon.run_job("digest")
    daemon.run_job("deliver")
    [digest] = [m for m in mails_to(smtp_server, CORRESPONDENT) if "récapitulatif" in m["Subject"]]
    url = DESK_LINK.search(digest.get_body(("plain",)).get_content()).group(0)
    assert url.startswith(server + "/desk/open/")

    context = browser.new_context(locale="fr-FR", java_script_enabled=False, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        assert page.goto(url).status == 200
        expect(page).to_have_url(server + "/desk")                     # the page of the link sends on
        assert page.get_attribute("html", "lang") == "fr"
        expect(page.get_by_role("heading", level=1)).to_have_text("Demandes à traiter")
        expect(page.get_by_role("heading", name="Demandes en attente de votre décision (4)")).to_be_visible()
        page.screenshot(path=str(folder / "desk.png"), full_page=True)

        # Three requests: two by clicking, one from the keyboard (focus, Space).
        boxes = [page.get_by_role("checkbox", name=re.compile(rf"^n° {i} ")) for i in three]
        boxes[0].check()
        boxes[1].check()
        boxes[2].focus()
        page.keyboard.press("Space")
        expect(boxes[2]).to_be_checked()
        with page.expect_navigation() as nav:
            page.get_by_role("button", name="Accepter la sélection").click()
        assert nav.value.status == 200
        expect(page.get_by_role("status")).to_contain_text("Demande acceptée")
        assert page.locator('[data-outcome="accepted"]').count() == 3
        assert [request_row(rt, i)["status"] for i in three] == ["accepted"] * 3

        # The fourth, refused without a reason: the French error, nothing decided.
        page.get_by_role("checkbox", name=re.compile(rf"^n° {fourth} ")).check()
        with page.expect_navigation() as nav:
            page.get_by_role("button", name="Refuser la sélection").click()
        assert nav.value.status == 400
        expect(page.get_by_role("alert")).to_contain_text("Merci d'indiquer le motif du refus")
        expect(page.get_by_label("Motif du refus")).to_have_attribute("aria-invalid", "true")
        expect(page.get_by_label("Motif du refus")).to_be_focused()
        expect(page.get_by_role("checkbox", name=re.compile(rf"^n° {fourth} "))).to_be_checked()
        page.screenshot(path=str(folder / "desk-refusal-needs-a-reason.png"), full_page=True)
        assert request_row(rt, fourth)["status"] == "pending"

        # The rights tab: the three rights once applied; one withdrawn, with a reason.
        daemon.run_job("apply")
        page.get_by_role("link", name="Habilitations de l'organisme").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Habilitations de l'organisme")
        expect(page.get_by_role("heading", name="Accords locaux", exact=True)).to_be_visible()
        page.screenshot(path=str(folder / "desk-rights.png"), full_page=True)
        page.get_by_role("checkbox", name="Retirer : Accords locaux - Accès organisme, Aristide Charenne").check()
        page.get_by_label("Motif du retrait").fill("Changement de poste")
        with page.expect_navigation() as nav:
            page.get_by_role("button", name="Retirer la sélection").click()
        assert nav.value.status == 200
        expect(page.get_by_role("status")).to_contain_text("Habilitation retirée")

        page.get_by_role("button", name="Se déconnecter").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Vous êtes déconnecté(e)")
        assert page.goto(server + "/desk").status == 401                   # no session any more
        expect(page.get_by_role("heading", level=1)).to_have_text("Votre session a expiré")
    finally:
        context.close()

    with transaction(rt.engine, readonly=True) as conn:
        held = {m.role_key: m.revoked_at for m in conn.execute(memberships.select())}
    assert held["accords-locaux-acces"] is not None
    assert held["annuaire-redacteur"] is None and held["greve-declaration"] is None
    daemon.run_job("accounts")
    daemon.run_job("deliver")
    assert any("Changement de poste" in m.get_body(("plain",)).get_content() for m in mails_to(smtp_server, REQUESTER))
