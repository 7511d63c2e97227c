from __future__ import annotations

from datetime import datetime, timezone

import pytest
from jinja2 import meta

from syncd.errors import PermanentError
from syncd.mail.render import LANGUAGES, TEMPLATES, MailTemplateError, _environment, render

from .samples import OPTIONAL_KEYS, SAMPLE_CONTEXTS


def test_every_template_has_a_sample_context():
    assert set(SAMPLE_CONTEXTS) == set(TEMPLATES)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_renders_in_every_language(template, language):
    mail = render(template, language, SAMPLE_CONTEXTS[template])

    assert mail.subject and "\n" not in mail.subject
    assert mail.text.startswith(("Bonjour Aristide Charenne,", "Bonjour Lucie Martin,",
                                 "Hello Aristide Charenne,", "Hello Lucie Martin,"))
    assert "None" not in mail.text and "{{" not in mail.text
    assert mail.html is not None and f'<html lang="{language}">' in mail.html
    for key, value in SAMPLE_CONTEXTS[template].items():
        if key.endswith("_url"):
            assert value in mail.text
            assert f'<a href="{value.replace("&", "&amp;")}">' in mail.html


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_renders_with_only_its_required_keys(template):
    sample = SAMPLE_CONTEXTS[template]
    minimal = {k: v for k, v in sample.items() if k in TEMPLATES[template]}
    for language in LANGUAGES:
        assert "None" not in render(template, language, minimal).text


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_a_missing_required_variable_is_an_error(template):
    for key in TEMPLATES[template]:
        if key == "kind":
            continue  # an unknown kind fails too, tested below
        context = {k: v for k, v in SAMPLE_CONTEXTS[template].items() if k != key}
        with pytest.raises(MailTemplateError):
            render(template, "fr", context)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_the_templates_use_no_variable_they_do_not_declare(template, language):
    env = _environment(language)

    def used(name: str) -> set[str]:
        source = env.loader.get_source(env, name)[0]
        ast = env.parse(source)
        names = set(meta.find_undeclared_variables(ast)) - {"fail"}
        for included in meta.find_referenced_templates(ast):
            if included != "_macros.txt":
                names |= used(included)
        return names

    variables = used(f"{template}.subject.txt") | used(f"{template}.txt")
    assert variables <= TEMPLATES[template] | OPTIONAL_KEYS[template]
    assert set(SAMPLE_CONTEXTS[template]) <= TEMPLATES[template] | OPTIONAL_KEYS[template] | {"kind"}


def test_an_empty_role_label_shortens_the_wording_instead_of_showing_empty_quotes():
    context = {**SAMPLE_CONTEXTS["request_accepted"], "role_label": "", "application_label": ""}
    mail = render("request_accepted", "fr", context)

    assert mail.subject == "Votre demande d'habilitation a été acceptée"
    assert "Votre demande d'habilitation, formulée le 02/03/2026 13:33, a été acceptée le 05/03/2026 09:15." in mail.text
    assert "Votre habilitation sera active dans les minutes qui suivent." in mail.text
    assert "« »" not in mail.text and "«  »" not in mail.text


def test_a_none_printed_as_it_is_is_an_error_not_the_word_none():
    context = {**SAMPLE_CONTEXTS["request_to_decide"], "requester_name": None}
    with pytest.raises(MailTemplateError, match="None"):
        render("request_to_decide", "fr", context)


def test_an_unknown_kind_or_template_is_a_permanent_error():
    with pytest.raises(MailTemplateError, match="kind"):
        render("request_accepted", "fr", {**SAMPLE_CONTEXTS["request_accepted"], "kind": "promotion"})
    with pytest.raises(PermanentError):
        render("no_such_template", "fr", {})


def test_a_request_to_decide_says_who_asks_what_and_until_when_in_french():
    mail = render("request_to_decide", "fr", SAMPLE_CONTEXTS["request_to_decide"])

    assert mail.subject == (
        "Demande d'habilitation « Egap - Guides d'administration du personnel » à valider – Aristide Charenne"
    )
    assert "Bonjour Lucie Martin," in mail.text
    assert (
        "Aristide Charenne (a.charenne@lassuranceretraite.fr), de l'organisme CARSAT Rhône-Alpes, a formulé le "
        "02/03/2026 13:33 une demande d'habilitation « Egap - Guides d'administration du personnel » pour "
        "l'application Guides juridiques (Gap, Paie, Jurisprudence)." in mail.text
    )
    assert "Sauf refus formel de votre part avant le 12/03/2026 13:33, cette demande sera acceptée tacitement." in mail.text
    assert "https://habilitations.example.org/decide/42?token=abc&v=1" in mail.text


def test_an_account_request_to_decide_needs_no_application_or_role():
    context = {**SAMPLE_CONTEXTS["request_to_decide"], "application_label": "", "role_label": ""}
    mail = render("request_to_decide", "fr", {**context, "kind": "account", "internal": False})

    assert mail.subject == "Demande de création de compte d'accès à valider – Aristide Charenne"
    assert "une demande de création de compte d'accès." in mail.text
    assert "compte externe" in mail.text


def test_dates_are_shown_in_paris_time_in_winter_and_in_summer():
    winter = render("password_reset", "fr", {**SAMPLE_CONTEXTS["password_reset"],
                                             "expires_at": datetime(2026, 1, 15, 23, 30, tzinfo=timezone.utc)})
    summer = render("password_reset", "fr", {**SAMPLE_CONTEXTS["password_reset"],
                                             "expires_at": "2026-07-01T21:59:00+00:00"})

    assert "valable jusqu'au 16/01/2026 00:30." in winter.text
    assert "valable jusqu'au 01/07/2026 23:59." in summer.text


def test_the_refusal_carries_the_deciders_comment_on_several_lines():
    context = {**SAMPLE_CONTEXTS["request_refused"], "comment": "Pas de besoin.\nVoir avec votre manager."}
    mail = render("request_refused", "fr", context)

    assert "Motif indiqué :\nPas de besoin.\nVoir avec votre manager.\n" in mail.text
    assert "Pas de besoin.<br>\nVoir avec votre manager." in mail.html


def test_a_refusal_without_comment_says_no_reason_was_given():
    for comment in ("", None):
        mail = render("request_refused", "fr", {**SAMPLE_CONTEXTS["request_refused"], "comment": comment})
        assert "Aucun motif n'a été indiqué." in mail.text


def test_the_decision_reminder_counts_the_days_left():
    base = SAMPLE_CONTEXTS["decision_reminder"]
    assert "Il vous reste 2 jours" in render("decision_reminder", "fr", base).text
    assert "Il vous reste un jour" in render("decision_reminder", "fr", {**base, "days_before": 1}).text
    assert "Rappel : demande d'habilitation" in render("decision_reminder", "fr", base).subject


def test_html_is_escaped_and_only_trusted_links_are_clickable():
    context = {
        **SAMPLE_CONTEXTS["request_to_decide"],
        "requester_name": "<script>alert(1)</script> http://evil.example.com",
        "organisation_name": 'CPAM "<b>"',
    }
    mail = render("request_to_decide", "fr", context)

    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert 'href="http://evil' not in mail.html
    assert '<a href="https://habilitations.example.org/decide/42?token=abc&amp;v=1">' in mail.html
    assert "<script>alert(1)</script>" in mail.text  # plain text is not HTML


def test_a_line_break_in_a_value_cannot_break_the_subject_or_forge_lines():
    context = {**SAMPLE_CONTEXTS["request_to_decide"], "requester_name": "Eve\r\nBcc: victim@example.org\x00"}
    mail = render("request_to_decide", "fr", context)

    assert mail.subject.endswith("– Eve Bcc: victim@example.org")
    assert "\n" not in mail.subject and "\r" not in mail.subject and "\x00" not in mail.text
    assert "\nBcc:" not in mail.text


def test_an_unsupported_language_falls_back_to_french_and_a_region_is_ignored():
    context = SAMPLE_CONTEXTS["password_reset"]
    assert render("password_reset", "de", context) == render("password_reset", "fr", context)
    assert render("password_reset", "en-GB", context) == render("password_reset", "en", context)


def test_an_english_mail_reads_in_english():
    mail = render("request_refused", "en", SAMPLE_CONTEXTS["request_refused"])
    assert mail.subject == 'Your request for the habilitation "Egap - Guides d\'administration du personnel" has been refused'
    assert "Reason given:\nCette application est réservée au service RH." in mail.text


def test_the_mobility_mail_names_the_new_organisation_and_the_rights_withdrawn():
    mail = render("mobility_accepted", "fr", SAMPLE_CONTEXTS["mobility_accepted"])
    assert mail.subject == "Votre changement d'organisme vers CPAM de Paris a été accepté"
    assert "- Accords locaux - Accès organisme" in mail.text
    kept = render("mobility_accepted", "fr", {**SAMPLE_CONTEXTS["mobility_accepted"], "withdrawn": []})
    assert "retirées" not in kept.text and "conservées" in kept.text
