"""« Vous avez oublié votre mot de passe ? » through the API: one answer for every address, a mail
only for an active account, and limits that hold whichever web process a call reaches."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from syncd import operator
from syncd.jobs import habilitations
from syncd.web import create_app
from syncd.web.portal_api import FORGOTTEN_PER_ADDRESS, FORGOTTEN_PER_CLIENT
from tests.scenarios.helpers import ADMIN, REQUESTER, mails_to, people, person
from tests.web.conftest import CLIENTS, SignedClient
from tests.web.test_password_reset_page import GOOD, RESET_LINK, form_of

pytestmark = pytest.mark.slapd

DISABLED = "parti@lassuranceretraite.fr"
UNKNOWN = "personne@lassuranceretraite.fr"


def forgot(api, email, client_address="192.0.2.10"):
    return api.post("/api/v1/password/forgotten", {"email": email, "client_address": client_address})


def test_known_unknown_and_disabled_addresses_get_the_same_answer_and_only_the_active_one_a_mail(
        api, client, rt, daemon, smtp_server):
    ids = people(rt, correspondent=False, admin=False)
    operator.add_account(rt, DISABLED, "Paul", "Parti", "CARSAT-RA")
    habilitations.set_account_status(rt, DISABLED, "disabled")
    answers = [forgot(api, email) for email in (REQUESTER, UNKNOWN, DISABLED, "pas une adresse")]
    assert {(a.status_code, a.text) for a in answers} == {(202, answers[0].text)}
    assert answers[0].json()["status"] == "accepted"
    daemon.run_job("deliver")
    assert [m["To"] for m in smtp_server.messages] == [REQUESTER]
    [mail] = mails_to(smtp_server, REQUESTER)
    [url] = RESET_LINK.findall(mail.get_body(("plain",)).get_content())
    # The person follows the link and chooses a password: LDAP takes it.
    parts = urlsplit(url)
    link = f"{parts.path}?{parts.query}"
    done = client.post("/password/reset", data=form_of(client, link) | {"password": GOOD, "confirmation": GOOD})
    assert done.status_code == 200
    assert rt.directory.can_bind(person(rt, ids["requester"]), GOOD)


def test_an_address_is_sent_at_most_the_limit_of_mails_whatever_process_answers(api, rt, daemon, smtp_server, clock):
    people(rt, correspondent=False, admin=False)
    # Two web processes over one database: each has its own memory, the limit is the database's.
    with TestClient(create_app(rt, clients=CLIENTS, rate_per_second=None)) as other_client:
        other = SignedClient(other_client, clock)
        answers = [forgot(api if n % 2 else other, REQUESTER, f"192.0.2.{n}") for n in range(FORGOTTEN_PER_ADDRESS + 1)]
    assert [a.status_code for a in answers] == [202] * FORGOTTEN_PER_ADDRESS + [429]
    refused = answers[-1]
    assert refused.json()["error"] == "rate_limited" and int(refused.headers["Retry-After"]) > 0
    # An unknown address is limited the same way: the limit tells nothing about accounts either.
    unknown = [forgot(api, UNKNOWN, f"198.51.100.{n}").status_code for n in range(FORGOTTEN_PER_ADDRESS + 1)]
    assert unknown == [202] * FORGOTTEN_PER_ADDRESS + [429]
    daemon.run_job("deliver")
    assert len(mails_to(smtp_server, REQUESTER)) == FORGOTTEN_PER_ADDRESS
    clock.advance(hours=1)
    assert forgot(api, REQUESTER).status_code == 202


def test_one_person_trying_many_addresses_is_limited(api, rt, daemon):
    people(rt, correspondent=False, admin=False)
    codes = [forgot(api, f"essai{n}@lassuranceretraite.fr", "203.0.113.7").status_code
             for n in range(FORGOTTEN_PER_CLIENT + 1)]
    assert codes == [202] * FORGOTTEN_PER_CLIENT + [429]
    assert forgot(api, ADMIN, "203.0.113.8").status_code == 202   # another person is not held up
