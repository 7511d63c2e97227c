"""`syncd outbox`: the mails given up on are listed, and sent again on request."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select, update

from syncd.cli import main
from syncd.mail.outbox import enqueue
from syncd.store.db import make_engine, transaction
from syncd.store.tables import outbox
from tests.mail.samples import SAMPLE_CONTEXTS

T = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def given_up(cli_config):
    """Two mails given up on: a refusal, and a password link (erased once it failed, as delivery does)."""
    assert main(["-c", str(cli_config), "db", "upgrade"]) == 0
    engine = make_engine(f"sqlite:///{cli_config.parent / 'syncd.db'}")
    with transaction(engine) as conn:
        refused = enqueue(conn, recipient="a.charenne@lassuranceretraite.fr", template="request_refused",
                          context=SAMPLE_CONTEXTS["request_refused"], now=T)
        link = enqueue(conn, recipient="a.charenne@lassuranceretraite.fr", template="password_reset",
                       context={**SAMPLE_CONTEXTS["password_reset"], "reset_url": None, "secret_keys": ["reset_url"]},
                       now=T)
        conn.execute(update(outbox).values(status="failed", attempts=10, last_error="550 mailbox unavailable"))
    yield engine, refused, link
    engine.dispose()


def test_the_failed_mails_are_listed_with_why_and_whether_they_can_be_sent_again(cli_config, given_up, capsys):
    _, refused, link = given_up
    assert main(["-c", str(cli_config), "outbox", "failed"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "2 failed mails"
    assert any(line.split()[0] == str(refused) and "550 mailbox unavailable" in line and "erased" not in line
               for line in out)
    assert any(line.split()[0] == str(link) and "needs a new one" in line for line in out)


def test_retrying_queues_the_mail_again_with_its_tries_from_zero_and_leaves_an_erased_link_failed(
        cli_config, given_up, capsys, smtp_server, monkeypatch):
    engine, refused, link = given_up
    assert main(["-c", str(cli_config), "outbox", "retry", "--all-failed"]) == 0
    out = capsys.readouterr().out
    assert "1 mails queued again" in out and f"their link or content erased (they cannot be sent again): {link}" in out
    with transaction(engine) as conn:
        rows = {r.id: r for r in conn.execute(select(outbox))}
    assert (rows[refused].status, rows[refused].attempts, rows[refused].last_error) == ("pending", 0,
                                                                                      "550 mailbox unavailable")
    assert rows[link].status == "failed"

    monkeypatch.setenv("SYNCD_SMTP__HOST", smtp_server.host)
    monkeypatch.setenv("SYNCD_SMTP__PORT", str(smtp_server.port))
    assert main(["-c", str(cli_config), "once"]) in (0, 3)     # 3: LDAP jobs fail here, there is no slapd
    with transaction(engine) as conn:
        assert conn.execute(select(outbox.c.status).where(outbox.c.id == refused)).scalar() == "sent"
    assert [m["X-Syncd-Outbox-Id"] for m in smtp_server.messages] == [str(refused)]


def test_retrying_a_mail_that_did_not_fail_says_so_and_exits_non_zero(cli_config, given_up, capsys):
    _, refused, _ = given_up
    assert main(["-c", str(cli_config), "outbox", "retry", str(refused), "987654"]) == 1
    captured = capsys.readouterr()
    assert "1 mails queued again" in captured.out and "not failed mails, nothing done: 987654" in captured.err


def test_a_failed_mail_emptied_by_the_retention_job_is_listed_as_not_sendable_again(cli_config, given_up, capsys):
    engine, refused, _ = given_up
    with transaction(engine) as conn:
        conn.execute(update(outbox).where(outbox.c.id == refused).values(context={}, last_error=None,
                                                                         content_erased_at=T))
    assert main(["-c", str(cli_config), "outbox", "failed"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.split()[0] == str(refused) and "content was erased" in line and "cannot be sent again" in line
               for line in out)
    assert main(["-c", str(cli_config), "outbox", "retry", str(refused)]) == 0
    assert f"cannot be sent again): {refused}" in capsys.readouterr().out
