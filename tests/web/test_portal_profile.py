"""« Mes coordonnées » through the API, as the portal drives it: read (ETag), change (If-Match),
then the store, the audit trail and LDAP."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from syncd import operator
from syncd.store.db import transaction
from syncd.store.tables import accounts, audit_log
from tests.factories import mappings
from tests.scenarios.helpers import REQUESTER, people, person

pytestmark = pytest.mark.slapd

REFERENTIAL = {"name": "Référentiel des Agents de Direction",
               "profile_url": "http://ucanss.fr/portail/auth/portal/default/Pcarriere", "contact": "labdd@ucanss.fr"}
DIRECTOR = "d.leroy@lassuranceretraite.fr"


@pytest.fixture
def rt(make_runtime, web_base_url, ldap_layout):
    from tests.web.conftest import SIGNING_KEY
    runtime = make_runtime(web={"base_url": web_base_url, "signing_key": SIGNING_KEY})
    runtime.mappings = mappings(base_dn=ldap_layout.base_dn, directors_referential=REFERENTIAL)
    return runtime


def patch(api, ref, body, etag):
    headers = {} if etag is None else {"If-Match": etag}
    return api.call("PATCH", f"/api/v1/accounts/{ref}/profile", body, headers=headers)


def test_the_profile_lists_every_field_of_the_form_and_which_ones_are_editable(api, rt, daemon):
    ids = people(rt, correspondent=False, admin=False)
    response = api.get(f"/api/v1/accounts/{REQUESTER}/profile")
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"1"'
    body = response.json()
    fields = {f["field"]: f for f in body["fields"]}
    assert list(fields) == ["civility", "given_name", "family_name", "birth_name", "email", "contact_email",
                            "phone", "primary_organisation", "secondary_organisation"]
    assert (body["account_id"], body["version"]) == (ids["requester"], 1)
    assert fields["email"]["value"] == REQUESTER and not fields["email"]["editable"]
    assert fields["primary_organisation"]["display"] == "CARSAT Rhône-Alpes"
    assert "mobilité" in fields["primary_organisation"]["reason"]
    assert fields["phone"]["editable"] and fields["phone"]["reason"] is None


def test_a_saved_profile_reaches_the_store_the_audit_trail_and_ldap(api, rt, daemon):
    ids = people(rt, correspondent=False, admin=False)
    etag = api.get(f"/api/v1/accounts/{REQUESTER}/profile").headers["ETag"]
    saved = patch(api, REQUESTER, {"phone": " 04 72  00 00 01 ", "contact_email": "Aristide@Example.org",
                                   "secondary_organisation": "CPAM-75"}, etag)
    assert saved.status_code == 200, saved.text
    assert saved.headers["ETag"] == '"2"'
    fields = {f["field"]: f for f in saved.json()["fields"]}
    assert (fields["phone"]["value"], fields["contact_email"]["value"]) == ("04 72 00 00 01", "aristide@example.org")
    assert fields["secondary_organisation"]["display"] == "CPAM de Paris"
    with transaction(rt.engine) as conn:
        row = conn.execute(select(accounts).where(accounts.c.id == ids["requester"])).mappings().one()
        trail = conn.execute(select(audit_log).where(audit_log.c.action == "profile_changed")).mappings().one()
    assert (row["phone"], row["version"]) == ("04 72 00 00 01", 2)
    assert trail["detail"] == {"fields": ["contact_email", "phone", "secondary_organisation"], "channel": "api:portal"}
    daemon.run_job("accounts")
    entry = rt.directory.read_entry(person(rt, ids["requester"]), ["telephoneNumber", "syncdContactMail"])
    assert entry == {"telephoneNumber": ["04 72 00 00 01"], "syncdContactMail": ["aristide@example.org"]}


def test_a_stale_if_match_gets_412_and_changes_nothing(api, rt, daemon):
    people(rt, correspondent=False, admin=False)
    etag = api.get(f"/api/v1/accounts/{REQUESTER}/profile").headers["ETag"]
    assert patch(api, REQUESTER, {"phone": "04 72 00 00 01"}, etag).status_code == 200
    stale = patch(api, REQUESTER, {"phone": "04 72 00 00 99"}, etag)
    assert stale.status_code == 412 and stale.json()["error"] == "stale_version"
    assert patch(api, REQUESTER, {"phone": "04 72 00 00 99"}, None).json()["error"] == "if_match_required"
    fields = {f["field"]: f["value"] for f in api.get(f"/api/v1/accounts/{REQUESTER}/profile").json()["fields"]}
    assert fields["phone"] == "04 72 00 00 01"


def test_a_directors_phone_is_refused_with_the_referential_its_page_and_its_contact(api, rt, daemon):
    operator.add_account(rt, DIRECTOR, "Denise", "Leroy", "CARSAT-RA", director=True)
    read = api.get(f"/api/v1/accounts/{DIRECTOR}/profile")
    phone = next(f for f in read.json()["fields"] if f["field"] == "phone")
    assert not phone["editable"]
    for piece in REFERENTIAL.values():
        assert piece in phone["reason"]
    refused = patch(api, DIRECTOR, {"phone": "04 72 00 00 01", "civility": "Mme"}, read.headers["ETag"])
    assert refused.status_code == 403 and refused.json()["error"] == "not_editable"
    [problem] = refused.json()["fields"]
    assert problem["field"] == "phone" and problem["message"] == phone["reason"]
    # A field the referential does not own is still the director's to change.
    assert patch(api, DIRECTOR, {"civility": "Mme"}, read.headers["ETag"]).status_code == 200


def test_the_login_and_the_organisation_are_not_changed_here_and_bad_values_are_named(api, rt, daemon):
    people(rt, correspondent=False, admin=False)
    etag = api.get(f"/api/v1/accounts/{REQUESTER}/profile").headers["ETag"]
    login = patch(api, REQUESTER, {"email": "autre@lassuranceretraite.fr", "primary_organisation": "CPAM-75"}, etag)
    assert login.status_code == 403
    assert {f["field"] for f in login.json()["fields"]} == {"email", "primary_organisation"}
    bad = patch(api, REQUESTER, {"phone": "04 72 n° 1", "given_name": ""}, etag)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    assert {f["field"] for f in bad.json()["fields"]} == {"phone", "given_name"}
    assert api.get("/api/v1/accounts/nobody@nowhere.fr/profile").status_code == 404
