"""Fixtures of the operations tests: a throwaway PKI, and a whole syncd runtime on any servers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from syncd.runtime import Runtime
from syncd.settings import LdapSettings, Settings, SmtpSettings
from syncd.store.db import make_engine
from tests.factories import mappings
from tests.ops.pki import ThrowawayCA
from tests.scenarios.conftest import Clock


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict:
    """A CA with a server certificate for 127.0.0.1/localhost, one for another host name, and
    a second CA nobody trusts (with its own certificate for 127.0.0.1)."""
    folder = tmp_path_factory.mktemp("pki")
    ca = ThrowawayCA(folder / "ca", "syncd test CA")
    unknown = ThrowawayCA(folder / "unknown", "unknown CA")
    return {
        "ca": ca,
        "server": ca.issue("server", dns=["localhost"], ips=["127.0.0.1"]),
        "wrong_host": ca.issue("elsewhere", dns=["ldap.elsewhere.example"]),
        "unknown_ca": unknown,
        "unknown_server": unknown.issue("server", dns=["localhost"], ips=["127.0.0.1"]),
    }


@pytest.fixture
def make_rt(db_url) -> Iterator[Callable[..., Runtime]]:
    """``make_rt(ldap_settings, smtp_settings, base_dn=None)``: a Runtime on those servers and
    this test's database, with its own LDAP base (``ou=t<hex>,<suffix>`` by default)."""
    made: list[Runtime] = []

    def make(ldap: LdapSettings, smtp: SmtpSettings, *, base_dn: str | None = None, clock=None,
             worker_id: str = "ops-worker", **jobs) -> Runtime:
        settings = Settings(database={"url": db_url}, ldap=ldap.model_dump(), smtp=smtp.model_dump(),
                            web={"base_url": "https://habilitations.example.org"},
                            jobs={"max_backoff_seconds": 5, **jobs})
        base = base_dn or f"ou=t{uuid.uuid4().hex[:8]},dc=example,dc=org"
        rt = Runtime(settings, mappings(base_dn=base), make_engine(db_url), clock=clock or Clock(),
                     worker_id=worker_id)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()
