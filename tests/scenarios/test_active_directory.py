"""End to end on a real Samba AD domain controller (``directory.kind: active_directory``, the layout of
deploy/activedirectory, over LDAPS): a request flows to ``member`` and the native ``memberOf``, a
password set through a reset link binds (``unicodePwd``), a password the domain's policy refuses is
explained on the password page, ``syncd disable`` stops the bind within one pass, and a lockout by
the DC shows in ``syncd status`` until ``syncd unlock`` clears it.
"""

from __future__ import annotations

import re

import pytest
from ldap3 import MODIFY_REPLACE

from syncd import operator
from syncd.core.model import Verdict
from syncd.directory import names
from syncd.errors import DirectoryRejected
from syncd.jobs import habilitations, passwords
from syncd.jobs.decisions import decide_request
from syncd.web.password_page import PASSWORD_ERRORS_FR, _directory_refusal
from tests.scenarios.helpers import (CORRESPONDENT, REQUESTER, events, habilitation, mails_to, member_dns, people,
                                     person, request_row)

pytestmark = pytest.mark.samba_ad

PASSWORD = "Un mot de passe solide 42"     # AD's complexity: three kinds of characters at least


@pytest.fixture
def rt(make_ad_runtime):
    return make_ad_runtime()


def reset_token(rt, daemon, smtp_server, email=REQUESTER) -> str:
    passwords.request_reset(rt, email)
    daemon.run_job("deliver")
    mail = mails_to(smtp_server, email)[-1]
    return re.search(r"token=([A-Za-z0-9_\-]+)", mail.get_body(("plain",)).get_content()).group(1)


def test_an_accepted_request_becomes_a_membership_and_member_of_on_the_ad_user(rt, daemon):
    ids = people(rt)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    assert request_row(rt, request_id)["status"] == "pending"
    decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    daemon.run_job("apply")

    group_dn = names.group_dn(rt.mappings.directory, rt.mappings.role("accords-locaux-acces").group)
    assert person(rt, ids["requester"]) in member_dns(rt, "accords-locaux-acces")
    assert rt.directory.groups_of_person(ids["requester"]) == {names.normalise_dn(group_dn)}
    entry = rt.directory.read_entry(names.person_dn(rt.mappings.directory, ids["requester"]),
                                    ["objectClass", "sAMAccountName", "displayName", "mail"])
    assert "user" in [c.lower() for c in entry["objectClass"]] and entry["mail"] == [REQUESTER]
    assert entry["sAMAccountName"] == [ids["requester"][:20]]
    assert events(rt, request_id) == ["submitted", "routed", "decided", "applied"]


def test_a_password_set_through_a_reset_link_binds_and_a_refused_one_is_explained(rt, daemon, smtp_server):
    ids = people(rt)
    dn = person(rt, ids["requester"])
    assert rt.directory.can_bind(dn, PASSWORD) is False          # a random password nobody knows
    token = reset_token(rt, daemon, smtp_server)
    with pytest.raises(DirectoryRejected) as refused:     # syncd takes it; AD's complexity rules do not
        passwords.reset_password(rt, token, "un mot de passe solide")
    assert refused.value.result_code == 19
    assert _directory_refusal(refused.value) == PASSWORD_ERRORS_FR["directory"]
    passwords.reset_password(rt, token, PASSWORD)        # the link stayed good
    assert rt.directory.can_bind(dn, PASSWORD) is True
    assert rt.directory.can_bind(dn, "pas le bon") is False


def test_a_disabled_account_cannot_bind_after_one_pass_and_enable_lets_it_bind_again(rt, daemon, smtp_server):
    ids = people(rt)
    dn = person(rt, ids["requester"])
    passwords.reset_password(rt, reset_token(rt, daemon, smtp_server), PASSWORD)
    assert rt.directory.can_bind(dn, PASSWORD) is True

    habilitations.set_account_status(rt, REQUESTER, "disabled")     # syncd disable
    daemon.run_job("accounts")                                        # one pass
    assert rt.directory.can_bind(dn, PASSWORD) is False
    assert int(rt.directory.read_entry(dn, ["userAccountControl"])["userAccountControl"][0]) & 0x2

    habilitations.set_account_status(rt, REQUESTER, "active")       # syncd enable
    daemon.run_job("accounts")
    assert rt.directory.can_bind(dn, PASSWORD) is True


def test_a_lockout_after_bad_passwords_shows_in_status_and_only_an_operator_clears_it(rt, daemon, smtp_server,
                                                                                        ad_admin, samba_ad):
    ids = people(rt)
    dn = person(rt, ids["requester"])
    passwords.reset_password(rt, reset_token(rt, daemon, smtp_server), PASSWORD)
    ad_admin.modify(samba_ad.suffix, {"lockoutThreshold": [(MODIFY_REPLACE, ["3"])]})   # the domain's policy
    assert operator.status_report(rt)["locked_out_accounts"] == []
    for _ in range(3):
        assert rt.directory.can_bind(dn, "pas le bon") is False
    assert rt.directory.can_bind(dn, PASSWORD) is False                     # locked out by the DC
    report = operator.status_report(rt)
    assert report["locked_out_accounts"] == [ids["requester"]]
    assert "locked out by the directory after bad passwords: 1 account(s)" in operator.format_status(report)
    daemon.run_job("accounts")                                                # syncd leaves it alone
    assert rt.directory.can_bind(dn, PASSWORD) is False
    assert operator.unlock_account(rt, REQUESTER) is True                    # syncd unlock EMAIL
    assert rt.directory.can_bind(dn, PASSWORD) is True
    assert operator.unlock_account(rt, REQUESTER) is False
    assert operator.status_report(rt)["locked_out_accounts"] == []
