"""Whatever people type in their names and comments, mails render, send, and forge no header."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.mail.delivery import DeliveryReport, deliver_pending
from syncd.mail.outbox import enqueue
from syncd.mail.render import LANGUAGES, TEMPLATES, render
from syncd.mail.smtp import SmtpSender

from .samples import SAMPLE_CONTEXTS

RECIPIENT = "a.charenne@lassuranceretraite.fr"
EXPECTED_HEADERS = {
    "from", "to", "subject", "date", "message-id", "x-syncd-outbox-id", "auto-submitted",
    "mime-version", "content-type",
}

header_tricks = st.lists(
    st.sampled_from([
        "\r\n", "\n", "\r", "\r\n\r\n", "Bcc: victim@example.org", "Subject: forged", "\x00", "\t", " ",
        "é", "« »", "\u2028", "\x85", "\u202e", "=?utf-8?q?=41?=", "<b>", "&amp;", "{{ x }}", "%s", "-- ",
        "😀", "\ufeff", ":", ";",
    ]),
    max_size=12,
).map("".join)
people_text = st.one_of(st.text(), header_tricks, st.text(alphabet=st.characters(codec="utf-8"), min_size=150))

STRING_KEYS = ("requester_name", "decider_name", "requester_email", "organisation_name", "application_label",
               "role_label", "comment", "reason", "login")


@settings(max_examples=300, deadline=None)
@given(template=st.sampled_from(sorted(TEMPLATES)), language=st.sampled_from(LANGUAGES),
       values=st.fixed_dictionaries({k: people_text for k in STRING_KEYS}))
def test_any_unicode_in_names_and_comments_renders_with_a_one_line_subject(template, language, values):
    sample = SAMPLE_CONTEXTS[template]
    context = {**sample, **{k: v for k, v in values.items() if k in sample}}

    mail = render(template, language, context)

    assert mail.subject and not any(c in mail.subject for c in "\r\n\x00\x85\u2028")
    assert "\x00" not in mail.text and "\r" not in mail.text
    assert "<b>" not in (mail.html or "").replace("<br>", "")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(template=st.sampled_from(["request_to_decide", "request_refused", "habilitation_revoked"]),
       name=people_text, comment=people_text, role=people_text)
def test_any_unicode_in_names_and_comments_is_sent_without_crashing_or_forging_a_header(
    sqlite_engine, smtp_server, now, template, name, comment, role
):
    context = {**SAMPLE_CONTEXTS[template], "role_label": role, "requester_name": name}
    context.update({"comment": comment} if template == "request_refused" else {"reason": comment})
    before = len(smtp_server.messages)
    with sqlite_engine.begin() as conn:
        outbox_id = enqueue(conn, recipient=RECIPIENT, template=template, context=context, now=now)

    report = deliver_pending(sqlite_engine, SmtpSender(smtp_server.settings()), now=now, worker_id="prop")

    assert report == DeliveryReport(sent=1)
    [received] = smtp_server.messages[before:]
    assert smtp_server.envelopes[-1].rcpt_tos == [RECIPIENT]
    assert {k.lower() for k in received.keys()} == EXPECTED_HEADERS
    assert received["X-Syncd-Outbox-Id"] == str(outbox_id)
    expected = render(template, "fr", context)
    assert received["Subject"] == expected.subject
    body = received.get_body(("plain",)).get_content()
    assert body.split() == expected.text.split()
