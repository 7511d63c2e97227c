"""Shared pytest set-up: each adapter's fixtures live in their own plugin module."""

pytest_plugins = [
    "tests.fixtures_ldap",
    "tests.fixtures_db",
    "tests.fixtures_smtp",
]
