"""Withdrawing a right and changing an account's state through the API, as the portal's
correspondents' and administrators' screens do: authorisation, store, LDAP and the holder's mail."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from syncd.store.db import transaction
from syncd.store.tables import accounts, audit_log, memberships
from tests.scenarios.helpers import ADMIN, CORRESPONDENT, REQUESTER, habilitation, mails_to, member_dns, person
from tests.web.conftest import OTHER_CORRESPONDENT

pytestmark = pytest.mark.slapd


def withdraw(api, role, actor, reason="Changement de fonctions", account=REQUESTER):
    return api.post(f"/api/v1/accounts/{account}/rights/{role}/withdrawal", {"actor": actor, "reason": reason})


def grant(api, rt, daemon, role, decider):
    request_id = habilitation(rt, role=role)
    daemon.run_job("intake")
    assert api.decide(request_id, "accept", decider).status_code == 200
    daemon.run_job("apply")


def held(rt, account_id):
    with transaction(rt.engine) as conn:
        return {r.role_key for r in conn.execute(select(memberships.c.role_key).where(
            memberships.c.account_id == account_id, memberships.c.revoked_at.is_(None)))}


def test_a_correspondent_withdraws_a_local_right_the_holder_leaves_the_group_and_is_told_why(
        api, routed, rt, daemon, smtp_server):
    api.decide(routed["request"], "accept", CORRESPONDENT)
    daemon.run_job("apply")
    me = person(rt, routed["requester"])
    assert me in member_dns(rt, "accords-locaux-acces")
    assert withdraw(api, "accords-locaux-acces", OTHER_CORRESPONDENT).json()["error"] == "not_authorised"
    assert withdraw(api, "accords-locaux-acces", REQUESTER).json()["error"] == "own_request"
    assert withdraw(api, "accords-locaux-acces", CORRESPONDENT, reason="").status_code == 400
    done = withdraw(api, "accords-locaux-acces", CORRESPONDENT, reason="Départ du service paie")
    assert done.status_code == 200, done.text
    assert (done.json()["account_id"], done.json()["withdrawn_by"]) == (routed["requester"], routed["correspondent"])
    assert held(rt, routed["requester"]) == set()
    assert withdraw(api, "accords-locaux-acces", CORRESPONDENT).json()["error"] == "not_found"
    daemon.run_job("accounts")
    daemon.run_job("deliver")
    assert me not in member_dns(rt, "accords-locaux-acces")
    assert any("Départ du service paie" in m.get_body(("plain",)).get_content()
               for m in mails_to(smtp_server, REQUESTER))


def test_a_central_administrator_withdraws_any_right_a_correspondent_only_locally_managed_ones(
        api, routed, rt, daemon):
    api.decide(routed["request"], "accept", CORRESPONDENT)
    grant(api, rt, daemon, "opim-local", ADMIN)               # centrally managed
    refused = withdraw(api, "opim-local", CORRESPONDENT)
    assert (refused.status_code, refused.json()["error"]) == (403, "not_authorised")
    assert withdraw(api, "opim-local", ADMIN).status_code == 200
    assert withdraw(api, "accords-locaux-acces", ADMIN).status_code == 200   # local, with a correspondent
    assert held(rt, routed["requester"]) == set()


def test_a_central_administrator_disables_then_re_enables_an_account(api, routed, rt, daemon, smtp_server):
    api.decide(routed["request"], "accept", CORRESPONDENT)
    daemon.run_job("apply")
    body = {"status": "disabled", "actor": CORRESPONDENT, "reason": "Départ"}
    assert api.post(f"/api/v1/accounts/{REQUESTER}/status", body).json()["error"] == "not_authorised"
    disabled = api.post(f"/api/v1/accounts/{REQUESTER}/status", body | {"actor": ADMIN})
    assert disabled.json() == {"account_id": routed["requester"], "status": "disabled", "changed": True}
    again = api.post(f"/api/v1/accounts/{REQUESTER}/status", body | {"actor": ADMIN})
    assert again.json()["changed"] is False
    daemon.run_job("accounts")
    me = person(rt, routed["requester"])
    assert me not in member_dns(rt, "accords-locaux-acces")
    assert rt.directory.read_entry(me, ["syncdAccountStatus"]) == {"syncdAccountStatus": ["disabled"]}
    with transaction(rt.engine) as conn:
        trail = conn.execute(select(audit_log.c.actor, audit_log.c.detail)
                             .where(audit_log.c.action == "account_disabled")).one()
    assert tuple(trail) == (routed["admin"], {"reason": "Départ"})
    # Disabled: the forgotten-password form sends nothing.
    assert api.post("/api/v1/password/forgotten", {"email": REQUESTER}).status_code == 202
    enabled = api.post(f"/api/v1/accounts/{REQUESTER}/status", {"status": "active", "actor": ADMIN})
    assert enabled.json()["changed"] is True
    daemon.run_job("accounts")
    daemon.run_job("deliver")
    assert rt.directory.read_entry(me, ["syncdAccountStatus"]) == {"syncdAccountStatus": ["active"]}
    assert held(rt, routed["requester"]) == set()       # rights are not restored
    assert not [m for m in mails_to(smtp_server, REQUESTER) if "/password/reset?token=" in
                m.get_body(("plain",)).get_content()]
    with transaction(rt.engine) as conn:
        assert conn.execute(select(accounts.c.status).where(accounts.c.id == routed["requester"])).scalar() == "active"
