"""A whole syncd on a real slapd and SQLite / PostgreSQL, with a mapping that has a shared role."""

from __future__ import annotations


import pytest

from syncd.jobs import provision
from syncd.runtime import Runtime
from syncd.mappings import Mappings
from syncd.settings import Settings
from syncd.store.db import make_engine
from tests.factories import mappings as sample_mappings

SHARED_ROLE = "annuaire-commun-lecture"
SHARED_GROUP = "app-annuaire-commun-lecture"


def reconcile_mappings(base_dn: str) -> Mappings:
    """The sample mappings, plus a DN-valued attribute and a role whose group other tools share."""
    data = sample_mappings(base_dn=base_dn).model_dump(mode="json")
    data["directory"]["people"]["attributes"]["primary_organisation"] = {
        "ldap": "syncdPrimaryOrganisation", "external_for_directors": True}
    data["applications"].append({"key": "annuaire-commun", "label": "Annuaire commun", "management": "central", "roles": [
        {"key": SHARED_ROLE, "label": "Annuaire - partagé", "group": SHARED_GROUP, "ownership": "shared"}]})
    return Mappings.model_validate(data)


def make_runtime(db_url, ldap_settings, ldap_layout, clock) -> Runtime:
    settings = Settings(database={"url": db_url}, ldap=ldap_settings.model_dump(),
                        web={"base_url": "https://habilitations.example.org"})
    return Runtime(settings, reconcile_mappings(ldap_layout.base_dn), make_engine(db_url), clock=clock,
                   worker_id="test-worker")


@pytest.fixture
def rt(db_url, ldap_settings, ldap_layout, clock):
    runtime = make_runtime(db_url, ldap_settings, ldap_layout, clock)
    provision.provision(runtime)
    yield runtime
    runtime.close()
