"""Fixtures of the fault-injection suite (see harness.py)."""

from __future__ import annotations

import random
import time

import pytest

from syncd.devslapd import DevSlapd, SlapdNotInstalled
from tests.faults.harness import World, Zygote
from tests.openldap_setup import configure_as_documented


@pytest.fixture(scope="session")
def zygote():
    z = Zygote()
    yield z
    z.close()


@pytest.fixture
def make_world(tmp_path, smtp_server):
    worlds: list[World] = []

    def make(db_url: str, slapd, *, smtp=None, **kwargs) -> World:
        world = World(tmp_path / f"world{len(worlds)}", db_url, slapd, smtp or smtp_server, **kwargs)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.close()


@pytest.fixture
def own_slapd(tmp_path):
    """A slapd of this test's own, which it may stop and start, configured as the session's."""
    server = DevSlapd(tmp_path / "own-slapd", initial="debian")
    try:
        server.start()
        configure_as_documented(server, tmp_path / "own-slapd-secrets")
    except SlapdNotInstalled as exc:
        pytest.skip(f"no OpenLDAP slapd: {exc}")
    yield server
    server.stop()


@pytest.fixture
def rng(request):
    """A seeded random source; the seed is printed (SYNCD_FAULT_SEED replays a run)."""
    import os
    seed = int(os.environ.get("SYNCD_FAULT_SEED") or time.time_ns() % 1_000_000)
    print(f"\n{request.node.name}: SYNCD_FAULT_SEED={seed}")
    return random.Random(seed)
