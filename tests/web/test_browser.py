"""A correspondent decides from the link in their mail, in a real headless Chromium (Debian's ``chromium``).

The app is served by uvicorn on a free loopback port; the mail comes from the in-process SMTP
server. Without ``/usr/bin/chromium`` the test is skipped with a loud reason, unless ``CI=true``.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from syncd.web import create_app
from tests.fixtures_smtp import free_port
from tests.scenarios.helpers import CORRESPONDENT, REQUESTER, events, mails_to, request_row
from tests.web.conftest import CLIENTS, SQLITE_ONLY, links_in

pytestmark = pytest.mark.slapd

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        message = f"SKIPPING BROWSER TESTS: {CHROMIUM} is missing (apt-get install chromium)"
        if _in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def web_base_url(port) -> str:
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def server(rt, port):
    config = uvicorn.Config(create_app(rt, clients=CLIENTS), host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@contextmanager
def french_page_without_javascript(browser, url: str):
    """A tab of a French browser with JavaScript off, opened on ``url``, which must answer 200 in French."""
    context = browser.new_context(locale="fr-FR", java_script_enabled=False)
    page = context.new_page()
    try:
        response = page.goto(url)
        assert response.status == 200
        assert page.get_attribute("html", "lang") == "fr"
        yield page
    finally:
        context.close()


@SQLITE_ONLY
def test_a_correspondent_refuses_from_the_mail_link_in_a_browser(browser, server, rt, daemon, smtp_server, tmp_path):
    from tests.scenarios.helpers import habilitation, people
    people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    daemon.run_job("deliver")
    [url] = links_in(mails_to(smtp_server, CORRESPONDENT)[-1])
    assert url.startswith(server + "/decide/")

    with french_page_without_javascript(browser, url) as page:
        assert page.get_by_role("heading", level=1).inner_text() == "Demande d'habilitation à valider"
        assert page.get_by_text("Accords locaux - Accès organisme").is_visible()
        page.screenshot(path=str(tmp_path / "decide.png"), full_page=True)

        # Refuse without a comment: the page comes back with the error, focused on the field.
        with page.expect_navigation() as nav:
            page.get_by_role("button", name="Refuser la demande").click()
        assert nav.value.status == 400
        assert "Merci d'indiquer le motif du refus" in page.get_by_role("alert").inner_text()
        comment = page.get_by_label("Motif du refus")
        assert comment.get_attribute("aria-invalid") == "true"
        assert request_row(rt, request_id)["status"] == "pending"

        # Refuse with one, from the keyboard: type, Tab to the button, Enter.
        comment.focus()
        page.keyboard.type("Poste sans lien avec les accords locaux")
        page.keyboard.press("Tab")
        with page.expect_navigation() as nav:
            page.keyboard.press("Enter")
        assert nav.value.status == 200
        assert "Votre décision a été enregistrée" in page.get_by_role("heading", level=1).inner_text()
        page.screenshot(path=str(tmp_path / "done.png"), full_page=True)

    row = request_row(rt, request_id)
    assert (row["status"], row["comment"]) == ("refused", "Poste sans lien avec les accords locaux")
    assert events(rt, request_id).count("decided") == 1
    daemon.run_job("deliver")
    refusal = mails_to(smtp_server, REQUESTER)[-1]
    assert "Poste sans lien avec les accords locaux" in refusal.get_body(("plain",)).get_content()
