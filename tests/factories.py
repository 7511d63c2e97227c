"""Small builders for test values (mappings, requests) so each test states only what matters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from syncd.core.model import Decider, DeciderScope, RequestKind, RequestView, Status
from syncd.mappings import Mappings

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)  # a Monday


def mappings(base_dn: str = "dc=example,dc=org", **policy) -> Mappings:
    return Mappings.model_validate({
        "directory": {
            "base_dn": base_dn,
            "people": {
                "branch": "ou=people", "rdn_attribute": "uid",
                "object_classes": ["inetOrgPerson", "syncdAccount"],
                "attributes": {
                    "given_name": {"ldap": "givenName", "external_for_directors": True},
                    "family_name": {"ldap": "sn", "external_for_directors": True},
                    "email": {"ldap": "mail"},
                    "phone": {"ldap": "telephoneNumber", "external_for_directors": True},
                    "civility": {"ldap": "syncdCivility"},
                    "contact_email": {"ldap": "syncdContactMail"},
                    "internal": {"ldap": "syncdInternal"},
                    "status": {"ldap": "syncdAccountStatus"},
                },
            },
            "organisations": {"branch": "ou=organisations", "rdn_attribute": "o",
                              "object_classes": ["organization", "syncdOrganisation"]},
            "groups": {"branch": "ou=groups", "rdn_attribute": "cn",
                       "object_classes": ["groupOfNames", "syncdRoleGroup"],
                       "placeholder_member": f"cn=syncd-placeholder,ou=groups,{base_dn}"},
        },
        "applications": [
            {"key": "accords-locaux", "label": "Accords locaux", "management": "local", "roles": [
                {"key": "accords-locaux-acces", "label": "Accords locaux - Accès organisme",
                 "group": "app-accords-locaux-acces"}]},
            {"key": "opim", "label": "OPIM", "management": "central", "roles": [
                {"key": "opim-local", "label": "OPIM - Organisme Local", "group": "app-opim-local",
                 "tacit_delay_days": 5}]},
            {"key": "annuaire", "label": "Annuaire des organismes", "roles": [
                {"key": "annuaire-redacteur", "label": "Annuaire Organisme - Rédacteur",
                 "group": "app-annuaire-redacteur", "validity_months": 12}]},
            {"key": "greve", "label": "Grève", "roles": [
                {"key": "greve-declaration", "label": "Grève - Déclaration des mouvements",
                 "group": "app-greve-declaration", "restriction": "internal_only"}]},
        ],
        "organisations": [
            {"code": "CARSAT-RA", "name": "CARSAT Rhône-Alpes", "branch": "retraite"},
            {"code": "CPAM-75", "name": "CPAM de Paris", "branch": "maladie"},
        ],
        "internal_email_domains": ["lassuranceretraite.fr", "assurance-maladie.fr", "urssaf.fr"],
        "policy": policy,
    })


def request(id: int = 1, *, kind=RequestKind.HABILITATION, status=Status.PENDING, submitted_at=T0,
            requester="u-req", org="CARSAT-RA", role="accords-locaux-acces", deadline_at=None,
            applied_at=None, internal=None, routed=True) -> RequestView:
    """A request as the rules see it; ``routed``: it reached a decider when it was submitted."""
    from datetime import timedelta
    return RequestView(id, kind, status, submitted_at, requester, org, role,
                       deadline_at or submitted_at + timedelta(days=10), None, applied_at,
                       internal=internal, first_routed_at=submitted_at if routed else None)


def correspondent(account_id: str, org: str = "CARSAT-RA") -> Decider:
    return Decider(account_id, f"{account_id}@lassuranceretraite.fr", DeciderScope.CORRESPONDENT, org)


def central(account_id: str) -> Decider:
    return Decider(account_id, f"{account_id}@ucanss.fr", DeciderScope.CENTRAL)


def closing_factory(build: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """For a fixture: yield ``make`` (which calls ``build`` and remembers what it made), then
    close everything made, as the test ends. ``yield from closing_factory(...)`` in the fixture."""
    made: list[Any] = []

    def make(*args: Any, **kwargs: Any) -> Any:
        made.append(build(*args, **kwargs))
        return made[-1]

    yield make
    for thing in made:
        thing.close()
