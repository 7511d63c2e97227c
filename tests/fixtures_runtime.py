"""A whole syncd wired to the real test servers, with an injected clock.

``make_runtime(**sections)`` builds a ``Runtime`` on this test's database (SQLite or PostgreSQL),
its own LDAP subtree and the in-process SMTP server; keyword sections override settings
(``web={...}``). ``daemon`` is a ``Daemon`` over ``rt`` with the directory provisioned.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from syncd.daemon import Daemon
from syncd.runtime import Runtime
from syncd.settings import Settings
from syncd.store.db import make_engine
from tests.factories import T0, closing_factory, mappings

WEB_BASE_URL = "https://habilitations.example.org"


class Clock:
    """The injected clock: tests move time on instead of waiting."""

    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


@pytest.fixture
def clock():
    return Clock()


def build_runtime(db_url: str, directory: dict, the_mappings, smtp_settings, clock, **sections) -> Runtime:
    """A ``Runtime`` on ``db_url`` and the ``directory`` (LDAP settings as a dict), with the
    in-process SMTP server, the test clock and the tests' usual settings; ``sections`` override
    any of them (``ldap=`` included)."""
    values = {"database": {"url": db_url}, "ldap": directory, "smtp": smtp_settings.model_dump(),
              "web": {"base_url": WEB_BASE_URL}, "jobs": {"max_backoff_seconds": 60}, **sections}
    settings = Settings(**values)
    return Runtime(settings, the_mappings, make_engine(db_url, pool_size=settings.database.pool_size),
                   clock=clock, worker_id="test-worker")


@pytest.fixture
def make_runtime(db_url, ldap_settings, ldap_layout, smtp_settings, clock):
    yield from closing_factory(lambda **sections: build_runtime(
        db_url, ldap_settings.model_dump(), mappings(base_dn=ldap_layout.base_dn), smtp_settings, clock, **sections))


@pytest.fixture
def rt(make_runtime):
    return make_runtime()


@pytest.fixture
def daemon(rt):
    d = Daemon(rt)
    d.run_job("provision")
    return d


@pytest.fixture
def cli_config(tmp_path, monkeypatch):
    """A config file for the command line run in-process: the shipped mappings, an SQLite file,
    and no ``SYNCD_*`` variable of the environment leaking in."""
    import os
    import shutil
    from pathlib import Path
    shutil.copytree(Path(__file__).resolve().parents[1] / "mappings", tmp_path / "mappings")
    path = tmp_path / "syncd.yaml"
    path.write_text("mappings: mappings\ndatabase:\n  url: sqlite:///syncd.db\nlog:\n  level: warning\n")
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("SYNCD_"):
            monkeypatch.delenv(name)
    return path
