import pytest

from syncd.core import routing
from syncd.core.model import Management, RequestKind
from syncd.core.routing import RouteReason, route
from tests.factories import central, correspondent

DECIDERS = [correspondent("c1"), correspondent("c2"), correspondent("c9", org="CPAM-75"), central("admin")]


def may_decide(route_now, decider_account_id: str) -> bool:
    """Authorisation is checked against routing computed from *current* data, not the old routing."""
    return decider_account_id in route_now.decider_ids


def test_a_local_role_goes_to_the_correspondents_of_the_requesters_organisation():
    r = route(kind=RequestKind.HABILITATION, management=Management.LOCAL, organisation_code="CARSAT-RA",
              requester_account_id="u1", deciders=DECIDERS)
    assert r.reason is RouteReason.LOCAL
    assert r.decider_ids == {"c1", "c2"}


def test_a_centrally_managed_role_goes_to_the_central_administrators_even_with_correspondents():
    r = route(kind=RequestKind.HABILITATION, management=Management.CENTRAL, organisation_code="CARSAT-RA",
              requester_account_id="u1", deciders=DECIDERS)
    assert r.reason is RouteReason.CENTRALLY_MANAGED
    assert r.decider_ids == {"admin"}


def test_an_organisation_without_correspondent_falls_back_to_the_central_administrators():
    r = route(kind=RequestKind.ACCOUNT, management=None, organisation_code="URSSAF-IDF",
              requester_account_id=None, deciders=DECIDERS)
    assert r.reason is RouteReason.NO_CORRESPONDENT
    assert r.decider_ids == {"admin"}


def test_a_correspondent_never_receives_their_own_request_and_the_others_do():
    r = route(kind=RequestKind.HABILITATION, management=Management.LOCAL, organisation_code="CARSAT-RA",
              requester_account_id="c1", deciders=DECIDERS)
    assert r.decider_ids == {"c2"}


def test_a_sole_correspondent_asking_for_a_local_role_is_decided_centrally():
    r = route(kind=RequestKind.HABILITATION, management=Management.LOCAL, organisation_code="CPAM-75",
              requester_account_id="c9", deciders=DECIDERS)
    assert r.reason is RouteReason.NO_CORRESPONDENT
    assert r.decider_ids == {"admin"}


def test_account_requests_are_decided_locally_whatever_the_management_passed():
    r = route(kind=RequestKind.ACCOUNT, management=Management.CENTRAL, organisation_code="CARSAT-RA",
              requester_account_id=None, deciders=DECIDERS)
    assert r.decider_ids == {"c1", "c2"}


def test_only_the_currently_routed_deciders_may_decide():
    r = route(kind=RequestKind.HABILITATION, management=Management.LOCAL, organisation_code="CARSAT-RA",
              requester_account_id="u1", deciders=DECIDERS)
    assert may_decide(r, "c1")
    assert not may_decide(r, "c9")
    assert not may_decide(r, "admin")


@pytest.mark.parametrize("management, actor, expected", [
    (Management.LOCAL, "c1", None), (Management.LOCAL, "admin", None), (Management.LOCAL, "c-other", "not_authorised"),
    (Management.CENTRAL, "admin", None), (Management.CENTRAL, "c1", "not_authorised"),
    (Management.LOCAL, "holder", "own_request"), (Management.LOCAL, None, "not_authorised"),
    (Management.LOCAL, "stranger", "not_authorised"),
])
def test_who_may_withdraw_a_right(management, actor, expected):
    deciders = [correspondent("c1"), correspondent("c-other", "CPAM-75"), central("admin")]
    assert routing.withdrawal_refusal(management=management, organisation_code="CARSAT-RA",
                                      holder_account_id="holder", actor_account_id=actor,
                                      deciders=deciders) == expected


def test_a_mobility_goes_to_the_correspondents_of_the_organisation_the_person_joins():
    r = route(kind=RequestKind.MOBILITY, management=None, organisation_code="CPAM-75",
              requester_account_id="u1", deciders=DECIDERS)
    assert r.reason is RouteReason.LOCAL and r.decider_ids == {"c9"}
    assert not may_decide(r, "c1"), "the organisation the person leaves does not decide"


def test_a_mobility_to_an_organisation_without_correspondent_goes_to_the_central_administrators():
    r = route(kind=RequestKind.MOBILITY, management=None, organisation_code="URSSAF-IDF",
              requester_account_id="u1", deciders=DECIDERS)
    assert r.reason is RouteReason.NO_CORRESPONDENT and r.decider_ids == {"admin"}


def test_moving_withdraws_the_locally_managed_rights_and_keeps_the_central_ones():
    held = {"b-local": Management.LOCAL, "opim": Management.CENTRAL, "a-local": Management.LOCAL}
    assert routing.withdrawn_on_mobility(held) == ["a-local", "b-local"]
    assert routing.withdrawn_on_mobility({}) == []
