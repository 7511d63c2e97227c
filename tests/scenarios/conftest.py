"""A whole syncd wired to real servers: slapd, SQLite or PostgreSQL, an in-process SMTP server."""

from __future__ import annotations

from datetime import timedelta

import pytest

from syncd.daemon import Daemon
from syncd.jobs.runtime import Runtime
from syncd.settings import Settings
from syncd.store.db import make_engine
from tests.factories import T0, mappings


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


@pytest.fixture
def rt(db_url, ldap_settings, ldap_layout, smtp_settings, clock):
    settings = Settings(database={"url": db_url}, ldap=ldap_settings.model_dump(), smtp=smtp_settings.model_dump(),
                        web={"base_url": "https://habilitations.example.org"},
                        jobs={"max_backoff_seconds": 60})
    m = mappings(base_dn=ldap_layout.base_dn)   # the full sample layout, under this test's own base
    runtime = Runtime(settings, m, make_engine(db_url), clock=clock, worker_id="test-worker")
    yield runtime
    runtime.close()


@pytest.fixture
def daemon(rt):
    d = Daemon(rt)
    d.run_job("provision")
    return d
