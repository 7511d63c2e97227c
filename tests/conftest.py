"""Shared pytest set-up: each adapter's fixtures live in their own plugin module."""

pytest_plugins = [
    "tests.run_summary",        # first: the fixture modules import it
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files marked ``long(seconds)`` first, longest first, the rest in their order: ``make
    test`` hands whole files to its workers in the order of the collection (``--dist loadfile
    --no-loadscope-reorder``), so the files that take minutes start at once instead of one of them
    running alone at the end (the two-daemon test, last, made a two-worker run 14 min)."""
    def weight(item: pytest.Item) -> float:
        mark = item.get_closest_marker("long")
        return -mark.args[0] if mark else 0
    items.sort(key=weight)
