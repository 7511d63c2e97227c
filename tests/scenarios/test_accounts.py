"""Account requests, passwords, profile ownership and disabling, end to end."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update
from structlog.testing import capture_logs

from syncd.core.model import Verdict
from syncd.jobs import passwords
from syncd.jobs.decisions import decide_request
from syncd.errors import StoreUnavailable
from syncd.store.db import make_engine, transaction
from syncd.store.tables import accounts
from tests.scenarios.helpers import (CORRESPONDENT, habilitation, mails_to, member_dns, people, person,
                                     portal_inserts, request_row)

pytestmark = pytest.mark.slapd

NEWCOMER = "b.durand@lassuranceretraite.fr"


def account_request(rt, **over):
    values = dict(kind="account", email=NEWCOMER, civility="Mme", given_name="Béatrice", family_name="Durand",
                  internal=True, organisation_code="CARSAT-RA", terms_accepted=True, terms_version="2026-01")
    values.update(over)
    return portal_inserts(rt, **values)


def test_an_accepted_account_request_creates_the_ldap_entry_and_the_user_sets_a_password_to_bind(
        rt, daemon, smtp_server):
    people(rt)
    request_id = account_request(rt)
    daemon.run_job("intake")
    assert request_row(rt, request_id)["status"] == "pending"
    decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    daemon.run_job("apply")
    daemon.run_job("deliver")
    row = request_row(rt, request_id)
    assert row["applied_at"] is not None and row["account_id"]
    entry_dn = person(rt, row["account_id"])
    assert rt.directory.can_bind(entry_dn, "x" * 20) is False

    mail = mails_to(smtp_server, NEWCOMER)[-1]
    token = re.search(r"token=([A-Za-z0-9_\-]+)", mail.get_body(("plain",)).get_content()).group(1)
    passwords.reset_password(rt, token, "un mot de passe solide")
    assert rt.directory.can_bind(entry_dn, "un mot de passe solide")
    with pytest.raises(passwords.ResetRefused):
        passwords.reset_password(rt, token, "un autre mot de passe")   # single use


def test_an_expired_reset_link_is_refused(rt, daemon, smtp_server, clock):
    people(rt)
    token = reset_link(rt, daemon, smtp_server)
    clock.advance(hours=25)
    with pytest.raises(passwords.ResetRefused):
        passwords.reset_password(rt, token, "un mot de passe solide")


def reset_link(rt, daemon, smtp_server, email="a.charenne@lassuranceretraite.fr") -> str:
    passwords.request_reset(rt, email)
    daemon.run_job("deliver")
    mail = mails_to(smtp_server, email)[-1]
    return re.search(r"token=([A-Za-z0-9_\-]+)", mail.get_body(("plain",)).get_content()).group(1)


def test_setting_a_password_closes_every_other_open_link_and_tells_the_holder_by_mail(rt, daemon, smtp_server):
    people(rt)
    older, newer = reset_link(rt, daemon, smtp_server), reset_link(rt, daemon, smtp_server)
    passwords.reset_password(rt, newer, "un mot de passe solide")
    with pytest.raises(passwords.ResetRefused):
        passwords.reset_password(rt, older, "un autre mot de passe solide")
    daemon.run_job("deliver")
    told = mails_to(smtp_server, "a.charenne@lassuranceretraite.fr")[-1]
    assert told["Subject"] == "Votre mot de passe a été changé"
    assert "a.charenne@lassuranceretraite.fr" in told.get_body(("plain",)).get_content()


def test_no_transaction_is_open_while_the_directory_sets_the_password_and_the_link_is_taken_meanwhile(
        rt, daemon, smtp_server, monkeypatch):
    ids = people(rt)
    token = reset_link(rt, daemon, smtp_server)
    other_writer = make_engine(rt.settings.database_url, sqlite_busy_timeout=0.2)
    seen = {}
    real = rt.directory.set_password

    def slow_directory(account_id, new_password):
        # Another writer gets the database at once (on SQLite, a write transaction still open
        # here would make it wait its whole busy timeout and fail) ...
        with transaction(other_writer) as conn:
            conn.execute(update(accounts).where(accounts.c.id == ids["requester"]).values(phone="0102030405"))
        # ... and the link is already taken: a second use of it now is refused.
        seen["usable"] = passwords.reset_is_usable(rt, token)
        with pytest.raises(passwords.ResetRefused):
            passwords.reset_password(rt, token, "un autre mot de passe solide")
        return real(account_id, new_password)

    monkeypatch.setattr(rt.directory, "set_password", slow_directory)
    try:
        assert passwords.reset_password(rt, token, "un mot de passe solide") == ids["requester"]
    finally:
        other_writer.dispose()
    assert seen == {"usable": False}
    assert rt.directory.can_bind(person(rt, ids["requester"]), "un mot de passe solide")


def test_a_password_set_in_ldap_whose_record_fails_still_counts_and_says_so_in_the_log(
        rt, daemon, smtp_server, monkeypatch):
    ids = people(rt)
    token = reset_link(rt, daemon, smtp_server)

    def database_gone(*_args, **_kwargs):
        raise StoreUnavailable("database connection lost")

    monkeypatch.setattr(passwords, "_record_password_set", database_gone)
    with capture_logs() as logs:
        assert passwords.reset_password(rt, token, "un mot de passe solide") == ids["requester"]
    assert rt.directory.can_bind(person(rt, ids["requester"]), "un mot de passe solide")
    assert [e["account_id"] for e in logs if e["event"] == "password_set_not_recorded"] == [ids["requester"]]
    assert not passwords.reset_is_usable(rt, token), "the link was used"


def test_an_account_disabled_after_the_link_was_sent_cannot_set_a_password_with_it(rt, daemon, smtp_server):
    from syncd.jobs import habilitations
    ids = people(rt)
    token = reset_link(rt, daemon, smtp_server)
    assert passwords.reset_is_usable(rt, token)
    habilitations.set_account_status(rt, ids["requester"], "disabled")
    assert not passwords.reset_is_usable(rt, token), "the page says the link cannot be used"
    with pytest.raises(passwords.ResetRefused):
        passwords.reset_password(rt, token, "un mot de passe solide")
    assert not rt.directory.can_bind(person(rt, ids["requester"]), "un mot de passe solide")


def test_an_internal_account_request_from_a_foreign_domain_is_rejected(rt, daemon):
    request_id = account_request(rt, email="someone@gmail.com")
    daemon.run_job("intake")
    row = request_row(rt, request_id)
    assert row["status"] == "rejected" and "domaine" in row["reason"]


def test_a_directors_externally_owned_fields_are_never_overwritten(rt, daemon):
    from syncd import operator
    director_id = operator.add_account(rt, "d.roux@lassuranceretraite.fr", "Denis", "Roux", "CARSAT-RA",
                                       director=True)
    dn = person(rt, director_id)
    # The directors' referential writes the name in LDAP; then the portal changes the profile.
    rt.directory.upsert_account(director_id, {"givenName": ["Denis-Paul"]}, rt.mappings.directory.people.object_classes)
    with transaction(rt.engine) as conn:
        conn.execute(update(accounts).where(accounts.c.id == director_id)
                     .values(given_name="Denis", phone="0474000000", version=accounts.c.version + 1))
    daemon.run_job("accounts")
    entry = rt.directory.read_entry(dn, ["givenName", "telephoneNumber", "mail"])
    assert entry["givenName"] == ["Denis-Paul"]
    assert entry["mail"] == ["d.roux@lassuranceretraite.fr"]


def test_a_disabled_account_loses_every_membership_and_keeps_its_history(rt, daemon):
    ids = people(rt)
    first = habilitation(rt)
    second = habilitation(rt, role="opim-local")
    daemon.run_job("intake")
    decide_request(rt, first, CORRESPONDENT, Verdict.ACCEPT)
    decide_request(rt, second, "admin@ucanss.fr", Verdict.ACCEPT)
    daemon.run_job("apply")
    assert person(rt, ids["requester"]) in member_dns(rt, "opim-local")
    with transaction(rt.engine) as conn:
        conn.execute(update(accounts).where(accounts.c.id == ids["requester"])
                     .values(status="disabled", version=accounts.c.version + 1))
    daemon.run_job("accounts")
    assert person(rt, ids["requester"]) not in member_dns(rt, "accords-locaux-acces")
    assert person(rt, ids["requester"]) not in member_dns(rt, "opim-local")
    entry = rt.directory.read_entry(person(rt, ids["requester"]), ["syncdAccountStatus"])
    assert entry["syncdAccountStatus"] == ["disabled"]
    assert request_row(rt, first)["status"] == "accepted"


def test_a_role_group_whose_last_member_leaves_still_exists_and_is_valid(rt, daemon):
    ids = people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    daemon.run_job("apply")
    rt.directory.remove_members("app-accords-locaux-acces", [person(rt, ids["requester"])])
    assert member_dns(rt, "accords-locaux-acces") == set()
    daemon.run_job("provision")   # still there, and provisioning it again is fine
