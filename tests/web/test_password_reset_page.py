"""The page behind the « mot de passe oublié » link: ``/password/reset`` (no browser: see
test_password_reset_browser). A real slapd takes the password; a bind proves it."""

from __future__ import annotations

import html
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
import structlog
from sqlalchemy import select
from starlette.testclient import TestClient

from syncd.directory.connection import error_for_result
from syncd.jobs import passwords
from syncd.mail import links
from syncd.store.db import transaction
from syncd.store.tables import password_resets
from syncd.web import create_app, password_page
from tests.fixtures_smtp import free_port
from tests.fixtures_runtime import WEB_BASE_URL
from tests.scenarios.helpers import REQUESTER, mails_to, people, person
from tests.web.conftest import CLIENTS, SIGNING_KEY, SQLITE_ONLY

pytestmark = pytest.mark.slapd

RESET = "/password/reset"
GOOD = "trois petits chats blancs"
OTHER = "un cheval sur la colline"
RESET_LINK = re.compile(r"https?://[^\s]+/password/reset\?token=[A-Za-z0-9_\-]+")


@pytest.fixture
def account(rt, daemon) -> str:
    return people(rt, correspondent=False, admin=False)["requester"]


def mailed_link(rt, daemon, smtp_server) -> str:
    passwords.request_reset(rt, REQUESTER)
    daemon.run_job("deliver")
    [url] = RESET_LINK.findall(mails_to(smtp_server, REQUESTER)[-1].get_body(("plain",)).get_content())
    assert url.startswith(WEB_BASE_URL + RESET + "?token=")
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.fixture
def link(account, rt, daemon, smtp_server) -> str:
    """The path and query of the link the person received."""
    return mailed_link(rt, daemon, smtp_server)


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def text(response) -> str:
    return html.unescape(response.text)


def field(page_html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]+)"', page_html).group(1)


def form_of(client, link: str) -> dict[str, str]:
    page = client.get(link)
    assert page.status_code == 200
    return {"token": field(page.text, "token"), "csrf": field(page.text, "csrf")}


def reset_row(rt, token: str):
    with transaction(rt.engine) as conn:
        return conn.execute(select(password_resets)
                            .where(password_resets.c.token_hash == passwords.token_hash(token))).mappings().first()


def binds(rt, account_id: str, password: str) -> bool:
    return rt.directory.can_bind(person(rt, account_id), password)


def test_opening_the_link_shows_a_french_form_and_consumes_nothing(link, client, account, rt):
    token = token_of(link)
    for _ in range(3):
        page = client.get(link)
        assert page.status_code == 200
        assert client.head(link).status_code == 200
    shown = text(page)
    assert '<html lang="fr">' in shown and "<script" not in shown
    assert "Choisir un nouveau mot de passe" in shown
    for label in ('<label for="password">', '<label for="confirmation">', 'autocomplete="new-password"',
                  'aria-describedby="password-hint"', 'method="post"', f'action="{RESET}"'):
        assert label in page.text
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert "form-action 'self'" in page.headers["Content-Security-Policy"]
    # The token goes back in the body, not in the form's address.
    assert field(page.text, "token") == token and f"{RESET}?" not in page.text
    # Stored hashed only, and still unused after every GET and HEAD.
    row = reset_row(rt, token)
    assert row["used_at"] is None and row["token_hash"] == passwords.token_hash(token) != token
    with transaction(rt.engine) as conn:
        assert all(token not in str(value) for r in conn.execute(select(password_resets)).all() for value in r)
    done = client.post(RESET, data=form_of(client, link) | {"password": GOOD, "confirmation": GOOD})
    assert done.status_code == 200 and binds(rt, account, GOOD)


@SQLITE_ONLY
def test_two_different_entries_show_the_error_and_keep_the_link(link, client, account, rt):
    refused = client.post(RESET, data=form_of(client, link) | {"password": GOOD, "confirmation": GOOD + "s"})
    assert refused.status_code == 400
    assert 'role="alert"' in refused.text and password_page.CONFIRMATION_MISMATCH in text(refused)
    assert re.search(r'id="confirmation"[^>]*aria-invalid="true"[^>]*autofocus', refused.text)
    assert 'aria-describedby="confirmation-error confirmation-hint"' in refused.text
    assert GOOD not in refused.text                 # what was typed is never sent back
    assert reset_row(rt, token_of(link))["used_at"] is None and not binds(rt, account, GOOD)
    # The page that comes back carries a fresh form: it works.
    retry = {"token": field(refused.text, "token"), "csrf": field(refused.text, "csrf")}
    assert client.post(RESET, data=retry | {"password": GOOD, "confirmation": GOOD}).status_code == 200
    assert binds(rt, account, GOOD)


@SQLITE_ONLY
@pytest.mark.parametrize("password, code", [
    ("", "empty"), ("court", "too_short"), ("onze-signes", "too_short"), ("aaaaaaaaaaaaaaaa", "too_simple"),
    ("abababababab", "too_simple"), ("123456789012", "too_simple"), ("AZERTYUIOPQS", "too_simple"),
    ("MotDePasse2024!", "common"), ("Azerty123456789", "common"), ("charenne et ses chats", "personal"),
    ("aristide-2026-printemps", "personal"), ("abcde\nfghijklm", "characters"), ("abcde\tfghijklm", "characters"),
    ("mot\u00addepasse-invisible", "characters"), ("private\ue000character", "characters"),
    ("mélange عربي and latin", "characters"),
    ("Une phrase très longue " * 12, "too_long"),
])
def test_a_password_the_policy_refuses_shows_why_and_keeps_the_link(link, client, account, rt, password, code):
    refused = client.post(RESET, data=form_of(client, link) | {"password": password, "confirmation": password})
    assert refused.status_code == 400
    assert password_page.PASSWORD_ERRORS_FR[code] in text(refused)
    assert re.search(r'id="password"[^>]*aria-invalid="true"[^>]*autofocus', refused.text)
    assert reset_row(rt, token_of(link))["used_at"] is None
    if code != "characters":       # those an LDAP client refuses to send at all
        assert not binds(rt, account, password)


@SQLITE_ONLY
def test_the_minimum_length_is_twelve_characters(link, client, account, rt):
    assert passwords.MIN_PASSWORD_LENGTH == 12
    refused = client.post(RESET, data=form_of(client, link) | {"password": "onze chiens", "confirmation": "onze chiens"})
    assert refused.status_code == 400 and "au moins 12 caractères" in text(refused)
    done = client.post(RESET, data=form_of(client, link) | {"password": "douze chiens", "confirmation": "douze chiens"})
    assert done.status_code == 200 and binds(rt, account, "douze chiens")


@SQLITE_ONLY
def test_a_post_without_a_genuine_form_token_is_refused_and_changes_nothing(link, client, account, rt, clock):
    token = token_of(link)
    forged = [
        {},                                                                        # no form token
        {"csrf": "x"},
        {"csrf": links.form_token("another-key-" + "0" * 32, password_page._reset_binding(SIGNING_KEY, token), clock())},
        {"csrf": links.form_token(SIGNING_KEY, "some-decision-link-id", clock())},  # a decision form's
        {"csrf": links.form_token(SIGNING_KEY, password_page._reset_binding(SIGNING_KEY, secrets.token_urlsafe(32)),
                                  clock())},                                       # another reset link's
    ]
    for extra in forged:
        response = client.post(RESET, data={"token": token, "password": GOOD, "confirmation": GOOD} | extra)
        assert response.status_code == 403 and "Formulaire expiré" in text(response)
    # A form older than the form token's lifetime (12 hours; the link lives 24).
    stale = form_of(client, link)
    clock.advance(hours=13)
    response = client.post(RESET, data=stale | {"password": GOOD, "confirmation": GOOD})
    assert response.status_code == 403
    # Not a form at all.
    assert client.post(RESET, json={"token": token, "password": GOOD, "confirmation": GOOD}).status_code < 500
    assert reset_row(rt, token)["used_at"] is None and not binds(rt, account, GOOD)


def test_setting_the_password_uses_the_link_up(link, client, account, rt):
    form = form_of(client, link)
    done = client.post(RESET, data=form | {"password": GOOD, "confirmation": GOOD})
    assert done.status_code == 200
    assert "Votre mot de passe a été enregistré" in text(done) and 'class="success"' in done.text
    assert binds(rt, account, GOOD) and not binds(rt, account, OTHER)
    assert reset_row(rt, token_of(link))["used_at"] is not None

    again = client.post(RESET, data=form | {"password": OTHER, "confirmation": OTHER})
    assert again.status_code == 410 and "Ce lien n'est plus valable" in text(again)
    assert client.get(link).status_code == 410
    assert binds(rt, account, GOOD) and not binds(rt, account, OTHER)


@SQLITE_ONLY
def test_an_expired_link_is_refused(link, client, account, rt, clock):
    clock.advance(hours=23)
    form = form_of(client, link)                  # a form still fresh, on a link about to expire
    clock.advance(hours=1, seconds=1)
    page = client.get(link)
    assert page.status_code == 410 and "<form" not in page.text
    assert "Vous avez oublié votre mot de passe ?" in text(page)     # how to ask for a new one
    assert client.post(RESET, data=form | {"password": GOOD, "confirmation": GOOD}).status_code == 410
    assert not binds(rt, account, GOOD)


@SQLITE_ONLY
def test_an_unknown_link_gets_the_same_answer_as_a_used_or_expired_one(link, client, account, rt, clock):
    unknown = client.get(f"{RESET}?token={secrets.token_urlsafe(32)}")
    assert unknown.status_code == 410
    for odd in (RESET, f"{RESET}?token=", f"{RESET}?token=%27%3B--", f"{RESET}?token={'A' * 5000}",
                f"{RESET}?token={token_of(link)[:-1]}"):
        response = client.get(odd)
        assert (response.status_code, response.text) == (410, unknown.text)
    client.post(RESET, data=form_of(client, link) | {"password": GOOD, "confirmation": GOOD})
    assert client.get(link).text == unknown.text                    # used
    clock.advance(days=2)
    assert client.get(link).text == unknown.text                    # used and expired
    forged = {"token": secrets.token_urlsafe(32), "password": GOOD, "confirmation": GOOD}
    forged["csrf"] = links.form_token(SIGNING_KEY, password_page._reset_binding(SIGNING_KEY, forged["token"]), clock())
    response = client.post(RESET, data=forged)
    assert (response.status_code, response.text) == (410, unknown.text)


@SQLITE_ONLY
def test_ldap_unavailable_answers_503_and_keeps_the_link(link, client, account, rt, make_runtime, ldap_settings):
    form = form_of(client, link)
    ldap_down = ldap_settings.model_dump() | {"urls": [f"ldap://127.0.0.1:{free_port()}"], "timeout_seconds": 2}
    down = make_runtime(ldap=ldap_down, web={"base_url": WEB_BASE_URL, "signing_key": SIGNING_KEY})
    with TestClient(create_app(down, clients=CLIENTS, rate_per_second=None)) as offline:
        response = offline.post(RESET, data=form | {"password": GOOD, "confirmation": GOOD})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "Réessayez" in text(response) or "réessayez" in text(response)
    assert reset_row(rt, token_of(link))["used_at"] is None
    assert client.post(RESET, data=form | {"password": GOOD, "confirmation": GOOD}).status_code == 200
    assert binds(rt, account, GOOD)


@SQLITE_ONLY
def test_a_password_the_directory_refuses_is_a_form_error(link, client, account, rt, monkeypatch):
    def ppolicy(account_id, new_password):
        raise error_for_result({"result": 19, "description": "constraintViolation",
                                "message": "Password is in history of old passwords"},
                               operation="password modify", dn="uid=x")
    monkeypatch.setattr(rt.directory, "set_password", ppolicy)
    refused = client.post(RESET, data=form_of(client, link) | {"password": GOOD, "confirmation": GOOD})
    assert refused.status_code == 400 and password_page.PASSWORD_ERRORS_FR["history"] in text(refused)
    assert 'aria-invalid="true"' in refused.text
    assert reset_row(rt, token_of(link))["used_at"] is None

    def broken(account_id, new_password):
        raise error_for_result({"result": 50, "description": "insufficientAccessRights", "message": ""},
                               operation="password modify", dn="uid=x")
    monkeypatch.setattr(rt.directory, "set_password", broken)
    failed = client.post(RESET, data=form_of(client, link) | {"password": GOOD, "confirmation": GOOD})
    assert failed.status_code == 500 and "n'a pas pu être enregistré" in text(failed)
    assert reset_row(rt, token_of(link))["used_at"] is None


@SQLITE_ONLY
def test_failed_attempts_are_rate_limited_per_address(link, client, app, account, rt):
    now = [0.0]
    app.state.password_reset_limit = password_page.FailureLimit(burst=3, refill_seconds=60, monotonic=lambda: now[0])
    for _ in range(3):
        assert client.get(f"{RESET}?token={secrets.token_urlsafe(32)}").status_code == 410
    limited = client.get(f"{RESET}?token={secrets.token_urlsafe(32)}")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) == 60
    assert "Trop de tentatives" in text(limited)
    assert client.get(link).status_code == 429          # a good token waits too: no oracle while limited
    assert client.post(RESET, data={"token": token_of(link), "csrf": "x"}).status_code == 429
    now[0] += 60
    assert client.get(link).status_code == 200          # one attempt back per minute
    # Successful opening does not drain the bucket; failures do.
    assert client.get(link).status_code == 200
    assert client.get(f"{RESET}?token={secrets.token_urlsafe(32)}").status_code == 410
    assert client.get(link).status_code == 429


@SQLITE_ONLY
def test_neither_the_token_nor_the_password_is_logged(link, client, account, rt):
    token = token_of(link)
    with structlog.testing.capture_logs() as events:
        form = form_of(client, link)
        client.post(RESET, data=form | {"password": GOOD, "confirmation": GOOD + "x"})
        client.post(RESET, data=form | {"password": GOOD, "confirmation": GOOD})
        client.post(RESET, data=form | {"password": GOOD, "confirmation": GOOD})
    assert binds(rt, account, GOOD)
    logged = repr(events)
    assert "password_set" in logged and "password_reset_link_refused" in logged
    assert token not in logged and GOOD not in logged and passwords.token_hash(token) not in logged


@SQLITE_ONLY
def test_without_a_signing_key_the_page_is_not_served(account, make_runtime, daemon, smtp_server):
    plain = make_runtime(web={"base_url": WEB_BASE_URL})
    with TestClient(create_app(plain, clients=CLIENTS, rate_per_second=None)) as c:
        response = c.get(f"{RESET}?token={secrets.token_urlsafe(32)}")
        assert response.status_code == 404 and "pas activé" in text(response)
        assert c.post(RESET, data={"token": "x" * 43}).status_code == 404
