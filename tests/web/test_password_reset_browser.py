"""Someone who forgot their password follows the mail's link in a real headless Chromium (Debian's
``chromium``, JavaScript off), gets the confirmation wrong once, then sets the password; a plain
LDAP simple bind with it then succeeds against the real slapd.

Served by uvicorn on a free loopback port, as in test_browser; skipped with a loud reason without
``/usr/bin/chromium``, unless ``CI=true``.
"""

from __future__ import annotations

import re

import ldap3
import pytest
from playwright.sync_api import expect

from syncd.jobs import passwords
from tests.scenarios.helpers import REQUESTER, mails_to, people, person
from tests.web.conftest import SQLITE_ONLY
from tests.web.test_browser import browser, port, server, web_base_url  # noqa: F401,F811 - fixtures
from tests.web.test_browser import french_page_without_javascript

pytestmark = pytest.mark.slapd

NEW_PASSWORD = "Quatre chats roux sur le toit"
RESET_LINK = re.compile(r"https?://[^\s]+/password/reset\?token=[A-Za-z0-9_\-]+")


def simple_bind(ldap_settings, dn: str, password: str) -> bool:
    """A plain LDAP simple bind, on a connection of its own: what an application does at log-in."""
    conn = ldap3.Connection(ldap3.Server(ldap_settings.urls[0], connect_timeout=5), user=dn, password=password,
                            authentication=ldap3.SIMPLE, receive_timeout=5)
    try:
        return conn.bind()
    finally:
        conn.unbind()


@SQLITE_ONLY
def test_a_person_sets_a_new_password_from_the_mail_link_in_a_browser(browser, server, rt, daemon, smtp_server,  # noqa: F811 - pytest fixtures imported above
                                                                      ldap_settings, tmp_path):
    account_id = people(rt, correspondent=False, admin=False)["requester"]
    dn = person(rt, account_id)
    passwords.request_reset(rt, REQUESTER)
    daemon.run_job("deliver")
    [url] = RESET_LINK.findall(mails_to(smtp_server, REQUESTER)[-1].get_body(("plain",)).get_content())
    assert url.startswith(server + "/password/reset?token=")

    with french_page_without_javascript(browser, url) as page:
        assert page.get_by_role("heading", level=1).inner_text() == "Choisir un nouveau mot de passe"
        password = page.get_by_label("Nouveau mot de passe (obligatoire)", exact=True)
        confirmation = page.get_by_label("Confirmation du nouveau mot de passe (obligatoire)", exact=True)
        assert password.get_attribute("type") == confirmation.get_attribute("type") == "password"
        page.screenshot(path=str(tmp_path / "reset.png"), full_page=True)

        # From the keyboard: type, Tab, type the confirmation wrong, Enter.
        password.focus()
        page.keyboard.type(NEW_PASSWORD)
        page.keyboard.press("Tab")
        expect(confirmation).to_be_focused()
        page.keyboard.type(NEW_PASSWORD.replace("roux", "noirs"))
        with page.expect_navigation() as nav:
            page.keyboard.press("Enter")
        assert nav.value.status == 400
        assert "ne sont pas identiques" in page.get_by_role("alert").inner_text()
        assert confirmation.get_attribute("aria-invalid") == "true"
        expect(confirmation).to_be_focused()                 # autofocus: no script needed
        expect(password).to_have_value("")                   # nothing typed comes back
        assert not simple_bind(ldap_settings, dn, NEW_PASSWORD)
        page.screenshot(path=str(tmp_path / "mismatch.png"), full_page=True)

        # Again, both the same; the button this time.
        password.fill(NEW_PASSWORD)
        confirmation.fill(NEW_PASSWORD)
        with page.expect_navigation() as nav:
            page.get_by_role("button", name="Enregistrer le mot de passe").click()
        assert nav.value.status == 200
        assert page.get_by_role("heading", level=1).inner_text() == "Votre mot de passe a été enregistré"
        assert "/password/reset" == page.url.removeprefix(server)   # the token was posted, not put in the address
        page.screenshot(path=str(tmp_path / "done.png"), full_page=True)

        # The mail's link now leads nowhere.
        assert page.goto(url).status == 410
        assert "Ce lien n'est plus valable" in page.get_by_role("heading", level=1).inner_text()

    assert simple_bind(ldap_settings, dn, NEW_PASSWORD)
    assert not simple_bind(ldap_settings, dn, NEW_PASSWORD.replace("roux", "noirs"))
