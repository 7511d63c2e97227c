"""Directory fail-over: two OpenLDAP providers replicating each other, syncd given both URLs.

The providers are stock Debian slapds configured by the README's block, the second seeded from
the first, then ``deploy/openldap/production/70-replication.ldif`` applied to each with
ldapmodify (``tests/openldap_setup.py``: ``replicating_providers``); syncd binds as its service
account, the providers as the replicator. The real apply job
writes through the first; it is killed (SIGKILL) in the middle of the backlog: the writes carry
on against the second, nothing is lost or failed, and the first catches up when it comes back.
"""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from syncd import operator
from syncd.core.model import Verdict
from syncd.daemon import Daemon
from syncd.devslapd import SlapdNotInstalled, free_port
from syncd.directory import Directory, names
from syncd.jobs.decisions import decide_request
from syncd.store.db import transaction
from syncd.store.tables import requests
from tests.openldap_setup import replicating_providers, serve_base
from tests.scenarios.helpers import CORRESPONDENT, habilitation, people

pytestmark = pytest.mark.slapd

ROLE = "accords-locaux-acces"


@pytest.fixture(scope="module")
def providers(tmp_path_factory, pki):
    ports = [free_port(), free_port()]
    try:
        servers = replicating_providers([tmp_path_factory.mktemp(f"provider{i + 1}") for i in range(2)], ports,
                                        pki["ca"].cert)
    except SlapdNotInstalled as exc:
        pytest.skip(f"no OpenLDAP slapd: {exc}")
    yield servers
    for s in servers:
        s.stop()


def _base_on_both(providers) -> str:
    """A test's own base: its entry added on the first (replicated), the rules on both."""
    first, second = providers
    base = f"ou=t{secrets.token_hex(4)},{first.suffix}"
    serve_base(first, base)
    serve_base(second, base, add_entry=False)
    return base


def _eventually(read, expected, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = read()
        except Exception as exc:  # noqa: BLE001 - not there yet
            got = exc
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def _unapplied(rt) -> list[dict]:
    with transaction(rt.engine) as conn:
        return [dict(r) for r in conn.execute(requests.select().where(
            requests.c.status == "accepted", requests.c.applied_at.is_(None))).mappings()]


def _accepted_requests(rt, daemon, how_many: int) -> list[str]:
    """``how_many`` new accounts, each with an accepted habilitation; returns their DNs."""
    dns = []
    for _ in range(how_many):
        email = f"agent.{secrets.token_hex(4)}@lassuranceretraite.fr"
        account_id = operator.add_account(rt, email, "Agent", "Test", "CARSAT-RA")
        request_id = habilitation(rt, email=email)
        dns.append((request_id, names.normalise_dn(names.person_dn(rt.mappings.directory, account_id))))
    while daemon.run_job("intake"):   # (batch by batch)
        pass
    for request_id, _ in dns:
        decide_request(rt, request_id, CORRESPONDENT, Verdict.ACCEPT)
    return [dn for _, dn in dns]


def test_writes_carry_on_against_the_second_provider_and_the_first_catches_up(providers, make_rt, smtp_server):
    first, second = providers
    ldap = first.ldap_settings(urls=[first.url, second.url], timeout_seconds=3)
    rt = make_rt(ldap, smtp_server.settings(), base_dn=_base_on_both(providers), batch_size=5, apply_batch_size=5)
    group = rt.mappings.role(ROLE).group
    on_first = Directory(first.ldap_settings(), rt.mappings.directory)
    on_second = Directory(second.ldap_settings(), rt.mappings.directory)
    daemon = Daemon(rt)
    try:
        assert daemon.run_job("provision")
        assert _eventually(lambda: on_second.members_of_group(group), set()) == set(), "provisioned, replicated"
        people(rt)
        wanted = set(_accepted_requests(rt, daemon, 30))

        # a first batch through the first provider, then it crashes with the backlog half done
        assert daemon.run_job("apply") == 5
        first.kill()
        while _unapplied(rt):
            assert daemon.run_job("apply") is not None, "no apply run fails: the second takes over"
        # more decisions while the first is still down
        wanted |= set(_accepted_requests(rt, daemon, 10))
        while _unapplied(rt):
            assert daemon.run_job("apply") is not None
        assert on_second.members_of_group(group) == wanted

        with transaction(rt.engine) as conn:
            rows = list(conn.execute(requests.select().where(requests.c.role_key == ROLE)).mappings())
        assert all(r["applied_at"] is not None and r["last_error"] is None and r["attempts"] == 0 for r in rows), \
            "nothing failed, not even temporarily"

        first.start()                      # same port, same database: it catches up
        on_first.close()
        assert _eventually(lambda: on_first.members_of_group(group), wanted) == wanted
        # and what is written now (through the second, still connected) reaches the first too
        wanted |= set(_accepted_requests(rt, daemon, 3))
        while _unapplied(rt):
            assert daemon.run_job("apply") is not None
        assert _eventually(lambda: on_first.members_of_group(group), wanted) == wanted
        assert on_second.members_of_group(group) == wanted
    finally:
        if not first.is_running():
            first.start()
        on_first.close()
        on_second.close()


def test_a_provider_killed_while_a_batch_is_written_loses_nothing(providers, make_rt, smtp_server):
    first, second = providers
    ldap = first.ldap_settings(urls=[first.url, second.url], timeout_seconds=3)
    rt = make_rt(ldap, smtp_server.settings(), base_dn=_base_on_both(providers), batch_size=2, apply_batch_size=2)
    group = rt.mappings.role(ROLE).group
    daemon = Daemon(rt)
    on_second = Directory(second.ldap_settings(), rt.mappings.directory)
    try:
        daemon.run_job("provision")
        # The groups exist on both before the crash, as they do in production (provisioned long
        # before). Killed right after provisioning, the second may not have them yet: apply then
        # gets noSuchObject (permanent: retried at the backoff ceiling, after provision re-creates it).
        assert _eventually(lambda: on_second.members_of_group(group), set()) == set()
        people(rt)
        wanted = set(_accepted_requests(rt, daemon, 40))
        left_at_kill = []

        def kill_when_a_quarter_is_applied():
            while len(_unapplied(rt)) > 30:
                time.sleep(0.005)
            # Counted just before the kill: counted after, the apply job may already have
            # drained the rest through the second provider while the kill waited for slapd to exit.
            left_at_kill.append(len(_unapplied(rt)))
            first.kill()                     # while the apply job is writing the next batches

        killer = threading.Thread(target=kill_when_a_quarter_is_applied)
        killer.start()
        deadline = time.monotonic() + 60
        while (_unapplied(rt) or killer.is_alive()) and time.monotonic() < deadline:
            if daemon.run_job("apply") == 0:
                rt.clock.advance(seconds=6)      # the retry backoff (5 s) runs out
        killer.join()
        assert 0 < left_at_kill[0] <= 30, "killed in the middle of the backlog"
        assert not _unapplied(rt), "every request applied"
        with transaction(rt.engine) as conn:
            rows = list(conn.execute(requests.select().where(requests.c.role_key == ROLE)).mappings())
        # the batch cut by the crash failed once as temporary (retried at once), never for good
        assert all(r["attempts"] <= 1 for r in rows)
        assert all("unreachable" in r["last_error"] for r in rows if r["last_error"])
        # Replication is asynchronous: what the first acknowledged just before it crashed reaches
        # the second when the first is back. Then both hold everything.
        first.start()
        on_first = Directory(first.ldap_settings(), rt.mappings.directory)
        assert _eventually(lambda: on_second.members_of_group(group), wanted) == wanted, "nothing lost"
        assert _eventually(lambda: on_first.members_of_group(group), wanted) == wanted
        on_first.close()
    finally:
        if not first.is_running():
            first.start()
        on_second.close()
