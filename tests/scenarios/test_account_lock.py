"""A disabled account cannot authenticate: the shipped access rules lock its password.

Checked with a real simple bind of the person on its own connection (``ldapwhoami``), against
the session's slapd configured from ``deploy/openldap/production`` (50-acls.ldif, rule {0}):
within one pass of the ``accounts`` job after ``syncd disable`` the bind fails, ``syncd enable``
restores it, an account whose status is not "active" cannot bind even with the right
password, and a refused bind writes nothing onto the entry (its ``entryCSN`` stays).

Disable and enable on every server: tests/scenarios/test_every_server.py. On Active Directory the
DC itself locks an account out after bad passwords (``lockoutTime``): that shows in ``syncd
status`` until ``syncd unlock`` clears it, last here.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from ldap3 import BASE, MODIFY_REPLACE, NONE, SAFE_SYNC, Connection, Server

from syncd import operator
from syncd.daemon import Daemon
from syncd.directory import names
from syncd.jobs import habilitations
from tests.scenarios.helpers import REQUESTER, people, person

pytestmark = pytest.mark.slapd

PASSWORD = "un mot de passe solide 42"
INVALID_CREDENTIALS = 49


def whoami(slapd, dn: str, password: str) -> int:
    """``ldapwhoami -x``: the exit status is the LDAP result code of the simple bind."""
    tool = shutil.which("ldapwhoami")
    if tool is None:
        pytest.skip("ldapwhoami is missing: apt-get install -y ldap-utils")
    return subprocess.run([tool, "-x", "-H", slapd.url, "-D", dn, "-w", password],
                          capture_output=True, text=True, timeout=30).returncode


def entry_csn(slapd, dn: str) -> str:
    conn = Connection(Server(slapd.url, get_info=NONE), slapd.root_dn, slapd.root_password,
                      client_strategy=SAFE_SYNC, auto_bind=True)
    try:
        _, _, response, _ = conn.search(dn, "(objectClass=*)", BASE, attributes=["entryCSN"])
        return response[0]["attributes"]["entryCSN"][0]
    finally:
        conn.unbind()


def test_a_disabled_account_cannot_bind_after_one_pass_and_enable_restores_it(rt, daemon, slapd):
    account = people(rt, correspondent=False, admin=False)["requester"]
    dn = person(rt, account)
    rt.directory.set_password(account, PASSWORD)
    assert whoami(slapd, dn, PASSWORD) == 0

    habilitations.set_account_status(rt, account, "disabled")           # syncd disable
    daemon.run_job("accounts")
    assert whoami(slapd, dn, PASSWORD) == INVALID_CREDENTIALS
    assert rt.directory.can_bind(dn, PASSWORD) is False

    habilitations.set_account_status(rt, account, "active")             # syncd enable
    daemon.run_job("accounts")
    assert whoami(slapd, dn, PASSWORD) == 0, "the same password binds again"


def test_a_refused_bind_writes_nothing_onto_the_entry(rt, daemon, slapd):
    account = people(rt, correspondent=False, admin=False)["requester"]
    dn = person(rt, account)
    rt.directory.set_password(account, PASSWORD)
    habilitations.set_account_status(rt, account, "disabled")
    daemon.run_job("accounts")
    disabled_at = entry_csn(slapd, dn)
    for attempt in (PASSWORD, "wrong password", PASSWORD):
        assert whoami(slapd, dn, attempt) == INVALID_CREDENTIALS
    assert entry_csn(slapd, dn) == disabled_at, "no failure counter, no lock attribute: the stamp stays"


@pytest.mark.parametrize("status", ["pending", None])
def test_an_account_that_is_not_active_cannot_bind_even_with_its_password(status, directory, slapd):
    seed = Connection(Server(slapd.url, get_info=NONE), slapd.root_dn, slapd.root_password,
                      client_strategy=SAFE_SYNC, auto_bind=True)      # the root DN seeds the entry
    dn = f"uid=newcomer,ou=people,{directory.layout.base_dn}"
    attrs = {"uid": "newcomer", "cn": "New Comer", "sn": "Comer", "userPassword": PASSWORD}
    if status:
        attrs["syncdAccountStatus"] = status
    _, result, _, _ = seed.add(dn, ["inetOrgPerson", "syncdAccount"], attrs)
    seed.unbind()
    assert result["result"] == 0, result
    assert whoami(slapd, dn, PASSWORD) == INVALID_CREDENTIALS


def test_an_application_sees_the_membership_as_its_own_account_and_no_longer_the_disabled_persons_bind(
        rt, daemon, slapd, application_account):
    from syncd.core.model import Verdict
    from syncd.jobs.decisions import decide_request
    from tests.scenarios.helpers import CORRESPONDENT, habilitation
    ids = people(rt, admin=False)
    request_id = habilitation(rt)
    daemon.run_job("intake")
    decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    daemon.run_job("apply")
    dn = person(rt, ids["requester"])
    group = names.group_dn(rt.mappings.directory, rt.mappings.role("accords-locaux-acces").group)
    app = Connection(Server(slapd.url, get_info=NONE), *application_account, client_strategy=SAFE_SYNC,
                     auto_bind=True, raise_exceptions=False)
    try:
        assert app.compare(group, "member", dn)[1]["result"] == 6, "compareTrue, as Require ldap-group asks"
        rt.directory.set_password(ids["requester"], PASSWORD)
        habilitations.set_account_status(rt, ids["requester"], "disabled")
        daemon.run_job("accounts")
        assert app.compare(group, "member", dn)[1]["result"] == 5, "compareFalse: the membership went too"
        assert whoami(slapd, dn, PASSWORD) == INVALID_CREDENTIALS
    finally:
        app.unbind()


@pytest.mark.samba_ad
def test_an_ad_lockout_after_bad_passwords_shows_in_status_and_only_an_operator_clears_it(
        make_ad_runtime, ad_admin, samba_ad):
    rt = make_ad_runtime()
    Daemon(rt).run_job("provision")
    ids = people(rt, correspondent=False, admin=False)
    dn = person(rt, ids["requester"])
    password = "Un mot de passe solide 42"
    rt.directory.set_password(ids["requester"], password)
    ad_admin.modify(samba_ad.suffix, {"lockoutThreshold": [(MODIFY_REPLACE, ["3"])]})   # the domain's policy
    assert operator.status_report(rt)["locked_out_accounts"] == []
    for _ in range(3):
        assert rt.directory.can_bind(dn, "pas le bon") is False
    assert rt.directory.can_bind(dn, password) is False                     # locked out by the DC
    report = operator.status_report(rt)
    assert report["locked_out_accounts"] == [ids["requester"]]
    assert "locked out by the directory after bad passwords: 1 account(s)" in operator.format_status(report)
    Daemon(rt).run_job("accounts")                                            # syncd leaves it alone
    assert rt.directory.can_bind(dn, password) is False
    assert operator.unlock_account(rt, REQUESTER) is True                    # syncd unlock EMAIL
    assert rt.directory.can_bind(dn, password) is True
    assert operator.unlock_account(rt, REQUESTER) is False
    assert operator.status_report(rt)["locked_out_accounts"] == []
