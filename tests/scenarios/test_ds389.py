"""End to end on a real 389 Directory Server (``directory.kind: 389ds``), syncd bound as its
service account under the ACIs of ``deploy/389ds``, with the MemberOf plugin and without the
permissive-modify control: a request flows to ``memberOf``, ``syncd disable`` locks the account
within one pass, ``syncd enable`` unlocks it, and a password set through a reset link binds.
"""

from __future__ import annotations

import re

import pytest
from ldap3 import BASE

from syncd.core.model import Verdict
from syncd.directory import names
from syncd.directory.connection import open_connection, safe_close
from syncd.jobs import habilitations, passwords
from syncd.jobs.decisions import decide_request
from syncd.settings import LdapSettings
from tests.scenarios.helpers import (CORRESPONDENT, REQUESTER, events, habilitation, mails_to, member_dns, people,
                                     person, request_row)

pytestmark = pytest.mark.ds389

PASSWORD = "un mot de passe solide"


@pytest.fixture
def rt(make_ds389_runtime):
    return make_ds389_runtime()


def password_set_by_reset_link(rt, daemon, smtp_server, email=REQUESTER, password=PASSWORD) -> None:
    passwords.request_reset(rt, email)
    daemon.run_job("deliver")
    mail = mails_to(smtp_server, email)[-1]
    token = re.search(r"token=([A-Za-z0-9_\-]+)", mail.get_body(("plain",)).get_content()).group(1)
    passwords.reset_password(rt, token, password)


def test_an_accepted_request_becomes_a_membership_and_member_of_on_the_person(rt, daemon, ds389):
    ids = people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    assert request_row(rt, request_id)["status"] == "pending"
    decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    daemon.run_job("apply")

    group_dn = names.group_dn(rt.mappings.directory, rt.mappings.role("accords-locaux-acces").group)
    assert person(rt, ids["requester"]) in member_dns(rt, "accords-locaux-acces")
    assert rt.directory.groups_of_person(ids["requester"]) == {names.normalise_dn(group_dn)}
    # and an application, bound as its own account, reads memberOf as soon as syncd's write returns
    app = open_connection(LdapSettings(urls=[ds389.url], bind_dn=ds389.app_dn, bind_password=ds389.app_password))
    try:
        _, result, response, _ = app.search(person(rt, ids["requester"]), "(objectClass=*)", BASE,
                                            attributes=["memberOf"])
    finally:
        safe_close(app)
    assert result["result"] == 0
    assert [names.normalise_dn(v) for v in response[0]["attributes"]["memberOf"]] == [names.normalise_dn(group_dn)]
    assert rt.directory.supports_permissive_modify() is False
    assert events(rt, request_id) == ["submitted", "routed", "decided", "applied"]


def test_a_password_set_through_a_reset_link_binds_and_is_stored_hashed(rt, daemon, smtp_server):
    ids = people(rt)
    dn = person(rt, ids["requester"])
    assert rt.directory.can_bind(dn, PASSWORD) is False          # no password yet
    password_set_by_reset_link(rt, daemon, smtp_server)
    assert rt.directory.can_bind(dn, PASSWORD) is True
    assert rt.directory.can_bind(dn, "pas le bon") is False


def test_a_disabled_account_cannot_bind_after_one_pass_and_enable_lets_it_bind_again(rt, daemon, smtp_server):
    ids = people(rt)
    dn = person(rt, ids["requester"])
    password_set_by_reset_link(rt, daemon, smtp_server)
    assert rt.directory.can_bind(dn, PASSWORD) is True

    habilitations.set_account_status(rt, REQUESTER, "disabled")     # syncd disable
    daemon.run_job("accounts")                                        # one pass
    assert rt.directory.can_bind(dn, PASSWORD) is False
    assert rt.directory.read_entry(dn, ["nsAccountLock"])["nsAccountLock"] == ["true"]

    habilitations.set_account_status(rt, REQUESTER, "active")       # syncd enable
    daemon.run_job("accounts")
    assert rt.directory.can_bind(dn, PASSWORD) is True
    assert rt.directory.read_entry(dn, ["nsAccountLock"])["nsAccountLock"] == []
