"""The language of the notifications: ``smtp.language`` (``SYNCD_SMTP__LANGUAGE``), French by default.

The setting reaches the outbox row through ``syncd.jobs.notify`` (``language=``), and delivery
renders the row in its language: these tests follow mails to the in-process SMTP server.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from syncd.daemon import Daemon
from syncd.errors import ConfigError
from syncd.jobs import notify
from syncd.settings import Settings, load_settings
from syncd.store import repo
from syncd.store.db import transaction
from syncd.store.tables import outbox
from tests.scenarios.helpers import CORRESPONDENT, REQUESTER, habilitation, mails_to, people


def body(mail) -> str:
    return mail.get_body(("plain",)).get_content()


# -- the setting ------------------------------------------------------------------------------------

def test_the_mail_language_is_french_unless_set_in_the_file_or_the_environment(tmp_path):
    assert Settings().smtp.language == "fr"
    assert load_settings(environ={}).smtp.language == "fr"
    assert load_settings(environ={"SYNCD_SMTP__LANGUAGE": "en"}).smtp.language == "en"
    config = tmp_path / "syncd.yaml"
    config.write_text("smtp:\n  language: en\n")
    assert load_settings(config, environ={}).smtp.language == "en"
    assert load_settings(config, environ={"SYNCD_SMTP__LANGUAGE": "fr"}).smtp.language == "fr"


def test_a_mail_language_without_templates_is_refused_at_start():
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"SYNCD_SMTP__LANGUAGE": "de"})
    assert "smtp.language" in str(refused.value)


# -- reminders, end to end ---------------------------------------------------------------------------

@pytest.fixture
def runtime_in(make_runtime, smtp_settings):
    """A runtime whose ``smtp.language`` is the given one (None: left to its default), provisioned."""
    def make(language=None):
        smtp = smtp_settings.model_dump() | ({"language": language} if language else {})
        rt = make_runtime(smtp=smtp)
        Daemon(rt).run_job("provision")
        return rt
    return make


def _reminded(rt, clock, smtp_server):
    daemon = Daemon(rt)
    people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    clock.advance(days=7)                                   # D-3
    daemon.run_job("remind")
    with transaction(rt.engine) as conn:
        rows = conn.execute(select(outbox.c.language).where(outbox.c.template == "decision_reminder",
                                                            outbox.c.request_id == request_id)).scalars().all()
    daemon.run_job("deliver")
    return rows, [m for m in mails_to(smtp_server, CORRESPONDENT) if "/decisions/" in body(m)][-1]


@pytest.mark.slapd
def test_deciders_are_reminded_in_english_when_the_mail_language_is_english(runtime_in, clock, smtp_server):
    languages, mail = _reminded(runtime_in("en"), clock, smtp_server)
    assert languages == ["en"]
    assert mail["Subject"].startswith("Reminder: request")
    assert "Hello Claire Martin," in body(mail)
    assert "You have 3 days left to decide" in body(mail)
    assert '<html lang="en">' in mail.get_body(("html",)).get_content()


@pytest.mark.slapd
def test_deciders_are_reminded_in_french_by_default(runtime_in, clock, smtp_server):
    languages, mail = _reminded(runtime_in(), clock, smtp_server)
    assert languages == ["fr"]
    assert mail["Subject"].startswith("Rappel : demande")
    assert "Il vous reste 3 jours pour vous prononcer" in body(mail)


# -- the notification helpers ------------------------------------------------------------------------

@pytest.mark.slapd
@pytest.mark.parametrize("language, rejected_subject, to_decide_subject", [
    ("en", "Your request could not be processed", "Request for"),
    (None, "Votre demande n'a pas pu être prise en compte", "Demande d'habilitation"),
], ids=["en", "default"])
def test_the_notification_helpers_write_mails_in_the_configured_language(
        runtime_in, clock, smtp_server, language, rejected_subject, to_decide_subject):
    rt = runtime_in(language)
    expected = language or "fr"
    assert notify.language_of(rt.settings) == expected
    ids = people(rt)
    request_id = habilitation(rt)
    Daemon(rt).run_job("intake")
    with transaction(rt.engine) as conn:
        before = list(conn.execute(select(outbox.c.id)).scalars())
        row = replace(repo.get_request(conn, request_id), reason="Test de langue.")
        notify.to_requester(conn, row, "request_rejected", rt.mappings, rt.settings.web.base_url, clock(),
                            language=notify.language_of(rt.settings))
        notify.to_deciders(conn, row, [ids["correspondent"]], "request_to_decide", rt.mappings, rt.settings.web,
                           clock(), purpose="language_test", language=notify.language_of(rt.settings))
        accepted = notify.requester_mail(row, repo.account_by_id(conn, ids["requester"]), "request_accepted",
                                         rt.mappings, rt.settings.web.base_url,
                                         language=notify.language_of(rt.settings))
    assert accepted.language == expected
    with transaction(rt.engine) as conn:
        written = conn.execute(select(outbox.c.language).where(outbox.c.id.not_in(before))).scalars().all()
    assert written == [expected, expected]
    Daemon(rt).run_job("deliver")
    assert mails_to(smtp_server, REQUESTER)[-1]["Subject"] == rejected_subject
    assert mails_to(smtp_server, CORRESPONDENT)[-1]["Subject"].startswith(to_decide_subject)


@pytest.mark.slapd
def test_a_caller_that_passes_no_language_gets_french(runtime_in, clock):
    rt = runtime_in("en")
    ids = people(rt)
    with transaction(rt.engine) as conn:
        row = repo.request_view({
            "id": None, "kind": "habilitation", "status": "pending", "account_id": ids["requester"],
            "organisation_code": "CARSAT-RA", "role_key": "accords-locaux-acces", "given_name": None,
            "family_name": None, "email": REQUESTER, "deadline_at": clock() + timedelta(days=10),
            "submitted_at": clock(), "comment": None, "reason": None})
        mail = notify.requester_mail(row, repo.account_by_id(conn, ids["requester"]), "request_accepted",
                                     rt.mappings, rt.settings.web.base_url)
    assert mail.language == "fr"


# -- every mail the lifecycle sends ------------------------------------------------------------------

@pytest.mark.slapd
def test_with_english_set_every_mail_of_the_lifecycle_is_written_in_english(runtime_in, smtp_server):
    from syncd.core.model import Verdict
    from syncd.jobs import passwords
    from syncd.jobs.decisions import decide_request
    rt = runtime_in("en")
    people(rt)
    refused = habilitation(rt)
    Daemon(rt).run_job("intake")
    decide_request(rt, refused, CORRESPONDENT, Verdict.REFUSE, "Not in this team.")
    passwords.request_reset(rt, REQUESTER)
    with transaction(rt.engine) as conn:
        sent = conn.execute(select(outbox.c.template, outbox.c.language)).all()
    assert {template for template, _ in sent} >= {"request_to_decide", "request_refused", "password_reset"}
    assert {language for _, language in sent} == {"en"}, sent
    Daemon(rt).run_job("deliver")
    assert mails_to(smtp_server, CORRESPONDENT)[-1]["Subject"].startswith("Request for")
