import pytest

from syncd.core.profile import ProfileRefused, validate_profile_changes
from tests.factories import mappings

M = mappings()
STAFF = {"director": False, "primary_organisation": "CARSAT-RA"}
DIRECTOR = {"director": True, "primary_organisation": "CARSAT-RA"}


def test_profile_changes_are_normalised():
    clean = validate_profile_changes({"given_name": "  Jean-Éric ", "civility": "madame", "phone": "",
                                      "secondary_organisation": "CPAM-75"}, STAFF, M)
    assert clean == {"given_name": "Jean-Éric", "civility": "Mme", "phone": None, "secondary_organisation": "CPAM-75"}


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(ProfileRefused) as e:
        validate_profile_changes({"given_name": "", "contact_email": "nope", "email": "x@y.fr",
                                  "secondary_organisation": "CARSAT-RA"}, STAFF, M)
    assert set(e.value.problems) == {"given_name", "contact_email", "email", "secondary_organisation"}


def test_a_director_may_change_what_syncd_owns_but_not_what_the_referential_owns():
    assert validate_profile_changes({"contact_email": "a@b.fr"}, DIRECTOR, M) == {"contact_email": "a@b.fr"}
    with pytest.raises(ProfileRefused):
        validate_profile_changes({"family_name": "Autre"}, DIRECTOR, M)
