from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.intake import (ExistingAccount, IntakeFacts, Rejection, ValidAccountRequest,
                               ValidHabilitationRequest, ValidMobilityRequest, validate_row)
from tests.factories import mappings

M = mappings()
ACTIVE = ExistingAccount("u1", "active", True, "CARSAT-RA")


def account_row(**over):
    row = {"kind": "account", "email": "a.charenne@lassuranceretraite.fr", "civility": "M.",
           "given_name": "Aristide", "family_name": "Charenne", "internal": True,
           "organisation_code": "CARSAT-RA", "terms_accepted": True, "terms_version": "2026-01"}
    row.update(over)
    return row


def hab_row(**over):
    row = {"kind": "habilitation", "email": "a.charenne@lassuranceretraite.fr", "role_key": "accords-locaux-acces"}
    row.update(over)
    return row


def code(outcome):
    return outcome.code if isinstance(outcome, Rejection) else "ok"


def test_a_complete_account_request_from_an_internal_domain_is_valid_and_normalised():
    out = validate_row(account_row(email=" A.Charenne@LassuranceRetraite.fr ", given_name="  Aristide  "), IntakeFacts(), M)
    assert isinstance(out, ValidAccountRequest)
    assert out.email == "a.charenne@lassuranceretraite.fr" and out.given_name == "Aristide"


def test_an_internal_account_with_a_foreign_domain_is_rejected_with_a_readable_reason():
    out = validate_row(account_row(email="someone@gmail.com"), IntakeFacts(), M)
    assert code(out) == "domain_not_internal" and "domaine" in out.reason


def test_an_external_account_may_use_any_domain():
    assert isinstance(validate_row(account_row(email="x@prestataire.com", internal=False), IntakeFacts(), M),
                      ValidAccountRequest)


def test_account_requests_missing_terms_organisation_or_names_are_rejected_each_with_its_reason():
    assert code(validate_row(account_row(terms_accepted=False), IntakeFacts(), M)) == "terms_not_accepted"
    assert code(validate_row(account_row(terms_accepted=None), IntakeFacts(), M)) == "terms_not_accepted"
    assert code(validate_row(account_row(organisation_code="NOPE"), IntakeFacts(), M)) == "unknown_organisation"
    assert code(validate_row(account_row(given_name=None), IntakeFacts(), M)) == "bad_given_name"
    assert code(validate_row(account_row(family_name="x" * 101), IntakeFacts(), M)) == "bad_family_name"
    assert code(validate_row(account_row(family_name="Robert'); DROP TABLE accounts;--"), IntakeFacts(), M)) == "bad_family_name"
    assert code(validate_row(account_row(given_name="*)(uid=*"), IntakeFacts(), M)) == "bad_given_name"
    assert code(validate_row(account_row(email="not-an-email"), IntakeFacts(), M)) == "bad_email"
    assert code(validate_row(account_row(internal="yes"), IntakeFacts(), M)) == "bad_internal"
    assert code(validate_row(account_row(civility="Dr"), IntakeFacts(), M)) == "bad_civility"


def test_a_second_account_for_the_same_email_is_rejected():
    assert code(validate_row(account_row(), IntakeFacts(account=ACTIVE), M)) == "account_exists"
    assert code(validate_row(account_row(), IntakeFacts(account_request_open=True), M)) == "duplicate"


def test_a_habilitation_for_a_known_role_and_active_account_is_valid():
    out = validate_row(hab_row(), IntakeFacts(account=ACTIVE), M)
    assert out == ValidHabilitationRequest("u1", "accords-locaux-acces", "CARSAT-RA")


def test_habilitation_requests_are_rejected_for_unknown_role_unknown_account_or_duplicates():
    assert code(validate_row(hab_row(role_key="nope"), IntakeFacts(account=ACTIVE), M)) == "unknown_role"
    assert code(validate_row(hab_row(), IntakeFacts(), M)) == "unknown_account"
    assert code(validate_row(hab_row(), IntakeFacts(account=ACTIVE, habilitation_open_or_granted=True), M)) == "duplicate"
    disabled = ExistingAccount("u1", "disabled", True, "CARSAT-RA")
    assert code(validate_row(hab_row(), IntakeFacts(account=disabled), M)) == "account_not_active"


def test_a_role_restricted_to_internal_accounts_is_refused_to_an_external_account():
    external = ExistingAccount("u2", "active", False, "CARSAT-RA")
    assert code(validate_row(hab_row(role_key="greve-declaration"), IntakeFacts(account=external), M)) == "internal_only"


scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=300), st.floats(allow_nan=True))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(account_row()) + ["role_key", "junk"]), scalar))
def test_any_malformed_row_is_either_valid_or_rejected_never_a_crash(row):
    out = validate_row(row, IntakeFacts(account=ACTIVE), M)
    assert isinstance(out, (Rejection, ValidAccountRequest, ValidHabilitationRequest))
    if isinstance(out, Rejection):
        assert out.reason and out.code


_LOCAL = st.text(st.sampled_from("abcdeé.-_+Z9 "), min_size=0, max_size=12)
_DOMAIN = st.sampled_from(["assurance-maladie.fr", "idf.urssaf.fr", "URSSAF.FR", "gmail.com", "urssaf.fr.evil.com",
                           "lassuranceretraite.fr", "", "exa mple.com"])


@given(local=_LOCAL, domain=_DOMAIN, internal=st.booleans())
@settings(max_examples=300)
def test_the_sign_up_e_mail_check_says_what_intake_decides_of_the_same_address(local, domain, internal):
    from syncd.core.intake import email_rejection, validate_row
    email = f"{local}@{domain}"
    stored, rejection = email_rejection(email, internal, M)
    outcome = validate_row({"kind": "account", "email": email, "given_name": "Jeanne", "family_name": "Martin",
                            "internal": internal, "organisation_code": "CPAM-75", "terms_accepted": True},
                           IntakeFacts(), M)
    if rejection is None:
        assert isinstance(outcome, ValidAccountRequest) and outcome.email == stored
    else:
        assert outcome == rejection


def mobility_row(**over):
    return {"kind": "mobility", "email": "a.charenne@lassuranceretraite.fr", "organisation_code": "CPAM-75"} | over


def test_a_mobility_of_an_active_account_to_another_known_organisation_is_valid():
    assert validate_row(mobility_row(), IntakeFacts(account=ACTIVE), M) == ValidMobilityRequest(
        "u1", "CPAM-75", "CARSAT-RA")


def test_mobility_requests_are_rejected_each_with_its_reason():
    disabled = ExistingAccount("u1", "disabled", True, "CARSAT-RA")
    assert code(validate_row(mobility_row(), IntakeFacts(), M)) == "unknown_account"
    assert code(validate_row(mobility_row(), IntakeFacts(account=disabled), M)) == "account_not_active"
    assert code(validate_row(mobility_row(organisation_code="NOWHERE"), IntakeFacts(account=ACTIVE), M)) \
        == "unknown_organisation"
    assert code(validate_row(mobility_row(organisation_code=None), IntakeFacts(account=ACTIVE), M)) \
        == "unknown_organisation"
    assert code(validate_row(mobility_row(organisation_code="CARSAT-RA"), IntakeFacts(account=ACTIVE), M)) \
        == "same_organisation"
    assert code(validate_row(mobility_row(), IntakeFacts(account=ACTIVE, mobility_open=True), M)) == "duplicate"


def test_a_directors_mobility_is_refused_naming_the_referential_that_owns_their_organisation():
    director = ExistingAccount("u1", "active", True, "CARSAT-RA", director=True)
    outcome = validate_row(mobility_row(), IntakeFacts(account=director), M)
    assert code(outcome) == "director"
    assert M.policy.directors_referential.name in outcome.reason
