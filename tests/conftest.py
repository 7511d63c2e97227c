"""Shared pytest set-up: each adapter's fixtures live in their own plugin module."""

pytest_plugins = [
    "tests.fixtures_ldap",
    "tests.fixtures_db",
    "tests.fixtures_smtp",
    "tests.fixtures_runtime",
    "tests.fixtures_389ds",
    "tests.fixtures_ad",
    "tests.fixtures_kinds",
]

import pytest
import structlog
from hypothesis import settings

# Hypothesis's per-example deadline is a timing test in disguise: on a shared two-core machine a
# slow example fails a correct property. Properties here are about values, never speed (bench/).
settings.register_profile("syncd", deadline=None)
settings.load_profile("syncd")


@pytest.fixture(autouse=True)
def _fresh_logging():
    """A test that configures logging (the CLI does) must not filter the next test's events."""
    yield
    structlog.reset_defaults()
