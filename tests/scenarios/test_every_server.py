"""The scenarios that exercise the directory, end to end, on every server syncd supports
(``server_kind``, tests/fixtures_kinds.py: slapd as deploy/openldap configures it, 389 Directory
Server as deploy/389ds does, a Samba AD DC with deploy/activedirectory's layout over LDAPS), syncd
bound as its service account: a request flows to ``member`` and ``memberOf``, a revocation takes
it back, a password set through a reset link binds (and one the domain's policy refuses is
explained), ``syncd disable`` stops the bind within one pass and ``syncd enable`` restores it.

What differs by server is asked of its traits (``syncd.directory.servers``), never of its name.
"""

from __future__ import annotations

import re

import pytest
from ldap3 import BASE

from syncd.core.model import Verdict
from syncd.directory import names
from syncd.directory.connection import open_connection, safe_close
from syncd.errors import DirectoryRejected
from syncd.jobs import habilitations, passwords
from syncd.jobs.decisions import decide_request
from syncd.web.password_page import PASSWORD_ERRORS_FR, _directory_refusal
from tests.fixtures_kinds import shows_locked
from tests.scenarios.helpers import (CORRESPONDENT, REQUESTER, events, habilitation, mails_to, member_dns, people,
                                     person, request_row)

pytestmark = pytest.mark.slapd

ROLE = "accords-locaux-acces"
PASSWORD = "Un mot de passe solide 42"     # AD's complexity: three kinds of characters at least


@pytest.fixture
def rt(make_kind_runtime):
    return make_kind_runtime()


def reset_token(rt, daemon, smtp_server, email=REQUESTER) -> str:
    passwords.request_reset(rt, email)
    daemon.run_job("deliver")
    mail = mails_to(smtp_server, email)[-1]
    return re.search(r"token=([A-Za-z0-9_\-]+)", mail.get_body(("plain",)).get_content()).group(1)


def accepted(rt, daemon, role=ROLE) -> int:
    request_id = habilitation(rt, role=role)
    daemon.run_job("intake")
    assert request_row(rt, request_id)["status"] == "pending"
    decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    daemon.run_job("apply")
    return request_id


def member_of_as_application(kind_server, dn: str) -> list[str]:
    """memberOf of ``dn`` as an application reads it, bound as its own account (as the service
    account where the deployment files make no application account)."""
    settings = kind_server.application_settings or kind_server.admin_settings
    conn = open_connection(settings)
    try:
        _, result, response, _ = conn.search(dn, "(objectClass=*)", BASE, attributes=["memberOf"])
    finally:
        safe_close(conn)
    assert result["result"] == 0, result
    return [names.normalise_dn(v) for v in response[0]["attributes"].get("memberOf", [])]


def test_an_accepted_request_becomes_a_membership_and_member_of_on_the_person(rt, daemon, kind_server):
    ids = people(rt)
    request_id = accepted(rt, daemon)

    group_dn = names.normalise_dn(names.group_dn(rt.mappings.directory, rt.mappings.role(ROLE).group))
    dn = person(rt, ids["requester"])
    assert dn in member_dns(rt, ROLE)
    assert rt.directory.groups_of_person(ids["requester"]) == {group_dn}
    # an application reads memberOf as soon as syncd's write returns
    assert member_of_as_application(kind_server, dn) == [group_dn]
    assert rt.directory.supports_permissive_modify() is kind_server.traits.permissive_modify
    assert events(rt, request_id) == ["submitted", "routed", "decided", "applied"]
    if kind_server.traits.sam_accounts:       # AD: a user object, with its login derived from the id
        entry = rt.directory.read_entry(dn, ["objectClass", "sAMAccountName", "mail"])
        assert "user" in [c.lower() for c in entry["objectClass"]] and entry["mail"] == [REQUESTER]
        assert entry["sAMAccountName"] == [ids["requester"][:20]]


def test_a_revoked_habilitation_leaves_the_group_and_member_of(rt, daemon, kind_server):
    ids = people(rt)
    request_id = accepted(rt, daemon)
    habilitations.revoke(rt, REQUESTER, ROLE, CORRESPONDENT, "Changement de poste")
    daemon.run_job("accounts")
    dn = person(rt, ids["requester"])
    assert dn not in member_dns(rt, ROLE)
    assert rt.directory.groups_of_person(ids["requester"]) == set()
    assert member_of_as_application(kind_server, dn) == []
    assert "revoked" in events(rt, request_id)


def test_a_password_set_through_a_reset_link_binds_and_one_the_domain_refuses_is_explained(
        rt, daemon, smtp_server, kind_server):
    ids = people(rt)
    dn = person(rt, ids["requester"])
    assert rt.directory.can_bind(dn, PASSWORD) is False          # no password yet, or one nobody knows
    token = reset_token(rt, daemon, smtp_server)
    if kind_server.password_policy:
        with pytest.raises(DirectoryRejected) as refused:     # syncd takes it; AD's complexity rules do not
            passwords.reset_password(rt, token, "un mot de passe solide")
        assert refused.value.result_code == 19
        assert _directory_refusal(refused.value) == PASSWORD_ERRORS_FR["directory"]
    passwords.reset_password(rt, token, PASSWORD)        # the link stayed good
    assert rt.directory.can_bind(dn, PASSWORD) is True
    assert rt.directory.can_bind(dn, "pas le bon") is False


def test_a_disabled_account_cannot_bind_after_one_pass_and_enable_lets_it_bind_again(
        rt, daemon, smtp_server, kind_server):
    ids = people(rt)
    dn = person(rt, ids["requester"])
    passwords.reset_password(rt, reset_token(rt, daemon, smtp_server), PASSWORD)
    assert rt.directory.can_bind(dn, PASSWORD) is True
    assert shows_locked(rt.directory, dn) is False

    habilitations.set_account_status(rt, REQUESTER, "disabled")     # syncd disable
    daemon.run_job("accounts")                                        # one pass
    assert rt.directory.can_bind(dn, PASSWORD) is False
    assert shows_locked(rt.directory, dn) is True

    habilitations.set_account_status(rt, REQUESTER, "active")       # syncd enable
    daemon.run_job("accounts")
    assert rt.directory.can_bind(dn, PASSWORD) is True
    assert shows_locked(rt.directory, dn) is False
