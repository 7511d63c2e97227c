"""Scenarios use the shared runtime fixtures (tests/fixtures_runtime.py)."""

from tests.fixtures_runtime import Clock  # noqa: F401  (kept importable from here)
