from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from syncd.core.model import Status
from syncd.mail import outbox as mail_outbox
from syncd.mail.outbox import enqueue
from syncd.store.outbox import oldest_pending_age, pending_count
from syncd.store.tables import outbox

from .samples import SAMPLE_CONTEXTS


def _enqueue(conn, now, **overrides):
    values = dict(recipient="a.charenne@lassuranceretraite.fr", template="request_accepted",
                  context=SAMPLE_CONTEXTS["request_accepted"], now=now)
    values.update(overrides)
    return enqueue(conn, **values)


def test_a_mail_enqueued_is_a_pending_row_with_its_context(mail_engine, now):
    with mail_engine.begin() as conn:
        outbox_id = _enqueue(conn, now, dedupe_key="request:1:accepted")

    with mail_engine.connect() as conn:
        row = conn.execute(select(outbox).where(outbox.c.id == outbox_id)).one()
    assert row.status == "pending" and row.attempts == 0 and row.next_attempt_at is None
    assert row.template == "request_accepted" and row.language == "fr"
    assert row.context["role_label"] == "Egap - Guides d'administration du personnel"
    assert row.context["decided_at"] == "2026-03-05T08:15:00+00:00"  # datetimes stored as ISO UTC


def test_the_mail_is_written_in_the_callers_transaction_and_rolls_back_with_it(mail_engine, now):
    with pytest.raises(RuntimeError):
        with mail_engine.begin() as conn:
            _enqueue(conn, now)
            raise RuntimeError("the state change failed")

    with mail_engine.connect() as conn:
        assert pending_count(conn) == 0


def test_the_same_dedupe_key_enqueued_twice_makes_one_row(mail_engine, now):
    with mail_engine.begin() as conn:
        first = _enqueue(conn, now, dedupe_key="request:7:accepted")
        second = _enqueue(conn, now, dedupe_key="request:7:accepted")
    with mail_engine.begin() as conn:
        third = _enqueue(conn, now + timedelta(hours=1), dedupe_key="request:7:accepted")
        other = _enqueue(conn, now, dedupe_key="request:8:accepted")

    assert isinstance(first, int) and isinstance(other, int) and other != first
    assert second is None and third is None
    with mail_engine.connect() as conn:
        assert pending_count(conn) == 2


def test_mails_without_a_dedupe_key_are_never_deduplicated(mail_engine, now):
    with mail_engine.begin() as conn:
        ids = {_enqueue(conn, now), _enqueue(conn, now)}
    assert None not in ids and len(ids) == 2


def test_pending_count_and_oldest_pending_age_watch_the_backlog(mail_engine, now):
    with mail_engine.begin() as conn:
        assert pending_count(conn) == 0
        assert oldest_pending_age(conn, now) is None
        _enqueue(conn, now - timedelta(minutes=30))
        _enqueue(conn, now - timedelta(minutes=5))
        sent = _enqueue(conn, now - timedelta(hours=2))
        conn.execute(outbox.update().where(outbox.c.id == sent).values(status="sent", sent_at=now))

    with mail_engine.connect() as conn:
        assert pending_count(conn) == 2
        assert oldest_pending_age(conn, now) == 1800.0
        assert oldest_pending_age(conn, now.astimezone(ZoneInfo("Europe/Paris"))) == 1800.0


def test_an_unknown_template_or_a_missing_context_key_fails_in_the_callers_transaction(sqlite_engine, now):
    with sqlite_engine.begin() as conn:
        with pytest.raises(ValueError, match="unknown mail template"):
            _enqueue(conn, now, template="request_acepted")
        context = {k: v for k, v in SAMPLE_CONTEXTS["request_accepted"].items() if k != "submitted_at"}
        with pytest.raises(ValueError, match="submitted_at"):
            _enqueue(conn, now, context=context)


@pytest.mark.parametrize("recipient", ["", "no-at-sign", "a@b.fr, c@d.fr", "a@b.fr\r\nBcc: c@d.fr", "Eve <e@x.fr>"])
def test_a_recipient_that_is_not_one_address_is_refused(sqlite_engine, now, recipient):
    with sqlite_engine.begin() as conn, pytest.raises(ValueError, match="address"):
        _enqueue(conn, now, recipient=recipient)


def _one_address(recipient: str) -> bool:
    """What the outbox takes for one address, said character by character."""
    address = recipient.strip()
    return (0 < len(address) <= 254 and address.count("@") == 1
            and not any(c.isspace() or ord(c) < 32 or c in '<>,;"()' for c in address))


@given(st.text(st.characters(codec="utf-8"), max_size=30), st.text(st.characters(codec="utf-8"), max_size=30))
def test_a_recipient_is_refused_exactly_when_it_holds_a_space_a_control_character_or_a_list(local, domain):
    recipient = f"{local}@{domain}"
    try:
        mail_outbox._check(recipient, "request_accepted", SAMPLE_CONTEXTS["request_accepted"])
    except ValueError:
        taken = False
    else:
        taken = True
    assert taken == _one_address(recipient)


def test_nested_context_values_are_made_json_and_a_refusal_names_where_the_value_is(sqlite_engine, now):
    context = {**SAMPLE_CONTEXTS["request_accepted"], "labels": ("a", Status.PENDING, {"at": datetime(2026, 3, 5)})}
    with sqlite_engine.begin() as conn:
        outbox_id = _enqueue(conn, now, context=context)
        row = conn.execute(select(outbox.c.context).where(outbox.c.id == outbox_id)).one()
        assert row.context["labels"] == ["a", "pending", {"at": "2026-03-05T00:00:00+00:00"}]
        with pytest.raises(ValueError, match=r"context\.labels\[1\]\.bad: a object"):
            _enqueue(conn, now, context={**context, "labels": [1, {"bad": object()}]})


def test_context_values_are_made_json_and_others_refused(sqlite_engine, now):
    context = {**SAMPLE_CONTEXTS["request_accepted"], "kind": "habilitation", "status": Status.ACCEPTED,
               "decided_at": datetime(2026, 3, 5, 9, 15, tzinfo=ZoneInfo("Europe/Paris"))}
    with sqlite_engine.begin() as conn:
        outbox_id = _enqueue(conn, now, context=context)
        row = conn.execute(select(outbox.c.context).where(outbox.c.id == outbox_id)).one()
        assert row.context["status"] == "accepted"
        assert row.context["decided_at"] == "2026-03-05T08:15:00+00:00"
        with pytest.raises(ValueError, match="JSON"):
            _enqueue(conn, now, context={**context, "bad": object()})


def test_the_language_is_normalised_to_a_supported_one(sqlite_engine, now):
    with sqlite_engine.begin() as conn:
        en = _enqueue(conn, now, language="en-GB")
        de = _enqueue(conn, now, language="de")
        rows = dict(conn.execute(select(outbox.c.id, outbox.c.language)).all())
    assert rows[en] == "en" and rows[de] == "fr"


def test_created_at_is_stored_in_utc_whatever_the_zone_of_now(sqlite_engine):
    paris_now = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
    with sqlite_engine.begin() as conn:
        outbox_id = _enqueue(conn, paris_now)
        created = conn.execute(select(outbox.c.created_at).where(outbox.c.id == outbox_id)).scalar_one()
    assert created.replace(tzinfo=timezone.utc) == datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def test_mails_enqueued_by_the_batch_skip_dedupe_keys_already_there(mail_engine, now):
    from syncd.mail.outbox import Mail, enqueue_many
    mail = dict(recipient="a.charenne@lassuranceretraite.fr", template="request_accepted",
                context=SAMPLE_CONTEXTS["request_accepted"])
    with mail_engine.begin() as conn:
        _enqueue(conn, now, dedupe_key="request:1:accepted")
        enqueue_many(conn, [Mail(**mail, dedupe_key=f"request:{n}:accepted") for n in (1, 2, 3)]
                     + [Mail(**mail, dedupe_key="request:3:accepted")], now)
    with mail_engine.connect() as conn:
        keys = sorted(r.dedupe_key for r in conn.execute(select(outbox)))
    assert keys == ["request:1:accepted", "request:2:accepted", "request:3:accepted"]


def test_a_mail_enqueued_by_the_batch_is_stored_as_one_enqueued_alone(mail_engine, now):
    from syncd.mail.outbox import Mail, enqueue_many
    context = {**SAMPLE_CONTEXTS["request_accepted"], "requester_name": 'Zoë "l\'Ouvrière" 日本',
               "nested": {"at": "2026-03-05T08:15:00+00:00", "n": [1, None, True]}}
    shared = dict(recipient=" zoe@lassuranceretraite.fr ", template="request_accepted", context=context)
    with mail_engine.begin() as conn:
        alone = _enqueue(conn, now, **shared, language="en-GB", dedupe_key="alone")
        enqueue_many(conn, [Mail(**shared, language="en-GB", dedupe_key="batch"),
                            Mail(**shared, language="de"), Mail(**shared, language="fr")], now)
    with mail_engine.connect() as conn:
        rows = conn.execute(select(outbox).order_by(outbox.c.id)).mappings().all()
    def stored(row):
        return {k: v for k, v in row.items() if k not in ("id", "dedupe_key")}
    assert rows[0]["id"] == alone and [r["dedupe_key"] for r in rows] == ["alone", "batch", None, None]
    assert stored(rows[1]) == stored(rows[0])
    assert [r["language"] for r in rows[1:]] == ["en", "fr", "fr"]
    assert rows[1]["context"]["requester_name"] == 'Zoë "l\'Ouvrière" 日本'


def test_a_bad_mail_in_a_batch_writes_none_of_it(sqlite_engine, now):
    from syncd.mail.outbox import Mail, enqueue_many
    good = Mail(recipient="a@b.fr", template="request_accepted", context=SAMPLE_CONTEXTS["request_accepted"])
    with pytest.raises(ValueError, match="not a single e-mail address"):
        with sqlite_engine.begin() as conn:
            enqueue_many(conn, [good, Mail(recipient="a@b.fr, c@d.fr", template="request_accepted",
                                           context=SAMPLE_CONTEXTS["request_accepted"])], now)
    with sqlite_engine.connect() as conn:
        assert pending_count(conn) == 0
