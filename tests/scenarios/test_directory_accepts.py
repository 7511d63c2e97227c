"""What the checks accept, the directory accepts: the cases of issue #11 ("Checks and directory
disagree"), end to end against a real slapd.

Each used to be accepted at the door and refused by LDAP for ever after (an accepted request
with no account, a profile whose other fields never reached LDAP, control and filter
characters written verbatim). Now each is refused at the door with a French reason, or
replaced by a value the directory takes, and what passes reaches LDAP.
"""

from __future__ import annotations

import pytest

from syncd import operator
from syncd.core.model import Verdict
from syncd.core.profile import ProfileRefused
from syncd.errors import PermanentError
from syncd.jobs import habilitations
from syncd.jobs.decisions import decide_request
from syncd.store import repo
from syncd.store.db import transaction
from tests.scenarios.helpers import (CORRESPONDENT, REQUESTER, mails_to, people, person, portal_inserts,
                                     request_row)
from tests.scenarios.shipped_mappings import shipped_mappings, use_mappings

pytestmark = pytest.mark.slapd


@pytest.fixture
def shipped(rt, ldap_layout, tmp_path):
    return use_mappings(rt, shipped_mappings(tmp_path, ldap_layout.base_dn))


def account_request(rt, **over) -> int:
    values = dict(kind="account", email="b.durand@lassuranceretraite.fr", civility="Mme", given_name="Renée",
                  family_name="Durand", internal=True, organisation_code="CARSAT-RA", terms_accepted=True,
                  terms_version="2026-01")
    values.update(over)
    return portal_inserts(rt, **values)


def through_the_workflow(rt, daemon, request_id: int) -> dict:
    """Intake, then (if it was routed) the correspondent's acceptance, then apply."""
    daemon.run_job("intake")
    if request_row(rt, request_id)["status"] == "pending":
        decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
        daemon.run_job("apply")
    return request_row(rt, request_id)


@pytest.mark.parametrize("email, char", [("jérôme.x@lassuranceretraite.fr", "é"),
                                         ("renée@lassuranceretraite.fr", "é"),
                                         ("jean@exämple-lassuranceretraite.fr", "ä")])
def test_a_non_ascii_email_is_rejected_at_intake_with_a_french_reason_never_left_accepted_without_an_account(
        rt, shipped, smtp_server, email, char):
    people(rt)
    request_id = account_request(rt, email=email, internal=False)
    row = through_the_workflow(rt, shipped, request_id)
    assert row["status"] == "rejected", f"ended {row['status']!r} with applied_at={row['applied_at']}"
    assert row["reason"].startswith("L'adresse e-mail professionnelle contient")
    assert f"« {char} »" in row["reason"] and "sans accent" in row["reason"]
    assert row["account_id"] is None
    shipped.run_job("deliver")    # the requester is told, at that address (SMTPUTF8 where the relay has it)
    [told] = mails_to(smtp_server, email)
    assert "contient « " in told.get_body(("plain",)).get_content()


def test_an_ascii_email_with_accented_names_still_reaches_ldap(rt, shipped):
    people(rt)
    request_id = account_request(rt, email="renee.durand@lassuranceretraite.fr", given_name="Renée")
    row = through_the_workflow(rt, shipped, request_id)
    assert row["status"] == "accepted" and row["applied_at"] is not None
    entry = rt.directory.read_entry(person(rt, row["account_id"]), ["mail", "givenName"])
    assert entry == {"mail": ["renee.durand@lassuranceretraite.fr"], "givenName": ["Renée"]}


@pytest.mark.parametrize("phone, char", [("01 23 45 67 89 ; poste 4", ";"), ("01 23 45 67 89 #12", "#"),
                                         ("01 23 45 67 89 poste n°4", "°"), ("01_23_45_67_89", "_")])
def test_a_phone_number_the_directory_would_refuse_is_refused_by_the_profile_check_in_french(
        rt, shipped, phone, char):
    ids = people(rt)
    with pytest.raises(ProfileRefused) as refused:
        habilitations.update_profile(rt, REQUESTER, {"phone": phone, "given_name": "Aristide-Jean"})
    assert set(refused.value.problems) == {"phone"}
    assert refused.value.problems["phone"].startswith(f"Le numéro de téléphone contient « {char} »")
    # Nothing was recorded, so the account's other fields are not held back behind a bad phone.
    shipped.run_job("accounts")
    entry = rt.directory.read_entry(person(rt, ids["requester"]), ["telephoneNumber", "givenName"])
    assert entry == {"telephoneNumber": [], "givenName": ["Aristide"]}


def test_a_phone_number_with_an_extension_the_directory_takes_reaches_ldap_with_the_other_fields(rt, shipped):
    ids = people(rt)
    habilitations.update_profile(rt, REQUESTER, {"phone": "+33 1 23 45 67 89 poste 4",
                                                 "given_name": "Aristide-Jean"})
    shipped.run_job("accounts")
    entry = rt.directory.read_entry(person(rt, ids["requester"]), ["telephoneNumber", "givenName"])
    assert entry == {"telephoneNumber": ["+33 1 23 45 67 89 poste 4"], "givenName": ["Aristide-Jean"]}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("written", ["v1\x00", "2026*)(uid=*", "v1\\2a", "2026\x1b[2J", "v\u00851"])
def test_nul_control_and_filter_characters_in_terms_version_never_reach_ldap(rt, shipped, written):
    people(rt)
    request_id = account_request(rt, terms_version=written)
    row = through_the_workflow(rt, shipped, request_id)
    policy_version = rt.mappings.policy.terms_version
    assert row["status"] == "accepted" and row["terms_version"] == policy_version
    entry = rt.directory.read_entry(person(rt, row["account_id"]), ["syncdTermsVersion"])
    assert entry["syncdTermsVersion"] == [policy_version]


def test_an_operator_cannot_add_an_account_the_directory_would_refuse_and_nothing_is_left_to_retry(rt, shipped):
    with pytest.raises(PermanentError) as refused:
        operator.add_account(rt, "jérôme.x@lassuranceretraite.fr", "Jérôme", "Xavier", "CARSAT-RA")
    assert "email: L'adresse e-mail professionnelle contient « é »" in str(refused.value)
    with transaction(rt.engine) as conn:
        assert repo.account_by_email(conn, "jérôme.x@lassuranceretraite.fr") is None
