"""kill -9 the daemon at random points while it works, many times; then a clean run.

Each cycle: the test decides the pending requests and writes a new wave (so the daemon starts
with intake, apply and mail to do), starts ``syncd run`` (exec'd every fifth cycle, else forked
from the zygote: the same entry point without the second of imports) and kills it with SIGKILL,

* half of the time a few milliseconds after an event chosen at random in its log: after a
  membership modify and before the requests are marked applied, after an entry is written,
  after the SMTP server said 250 and before the outbox row is updated, in the middle of an
  intake batch…;
* otherwise after a random delay (start-up pass, idle loop, anything).

What a killed daemon had claimed comes back when its lease runs out (``database.lease_seconds``
is 5 s here, the smallest allowed; mails follow the same lease): the next daemons work around
those rows meanwhile. A last daemon then drains everything and stops cleanly (SIGTERM, exit 0),
and ``World.verify`` checks every request, LDAP and the mail. ``SYNCD_FAULT_KILLS`` (default 50)
and ``SYNCD_FAULT_SEED`` replay or scale it.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest

from tests.faults.harness import wait_for

pytestmark = [pytest.mark.slapd, pytest.mark.long(47)]

KILLS = int(os.environ.get("SYNCD_FAULT_KILLS", "50"))
# Log events after which a kill lands in the most delicate places.
TARGETS = (
    "request_routed",          # intake: one request routed and committed, the batch goes on
    "ldap_entry_created",      # apply/accounts: the LDAP entry exists, the database not told yet
    "ldap_members_added",      # apply: the group modify succeeded ...
    "members_added",           # ... and the requests are not yet marked applied
    "account_written",         # apply: the account is in LDAP, the request not yet applied
    "mail_sent",               # delivery: the SMTP server took it, the outbox row still says pending
    "outbox_enqueued",         # a decision's or a routing's mail was written
    "directory_provisioned",
)


def _cycles(world, zygote, rng, kills: int) -> Counter:
    where = Counter()
    for cycle in range(kills):
        world.decide_pending(rng)
        if rng.random() < 0.7:
            world.submit(habilitations=rng.randint(2, 6), new_accounts=int(rng.random() < 0.3),
                         invalid=int(rng.random() < 0.15))
        mode = "exec" if cycle % 5 == 0 else "fork"
        daemon = world.spawn(mode, zygote)
        startup = 0.9 if mode == "exec" else 0.1
        if rng.random() < 0.5:
            target = rng.choice(TARGETS)
            fired = daemon.kill_after({target}, timeout=startup + 1.5)
            where[f"after {target}" if fired else "timeout waiting for " + target] += 1
        else:
            time.sleep(startup + rng.uniform(0.0, 1.0))
            assert daemon.alive(), f"the daemon died by itself: {daemon.log.read_text()[-2000:]}"
            last = daemon.last_event()
            daemon.kill()
            where[f"random, after {last}"] += 1
    return where


def test_kill_9_at_random_points_loses_nothing(make_world, slapd, sqlite_engine, zygote, rng, smtp_server):
    world = make_world(str(sqlite_engine.url), slapd, name="k", jobs={"batch_size": 8, "apply_batch_size": 8}, lease_seconds=5)
    world.seed(90, rng)
    world.submit(habilitations=25, new_accounts=3, invalid=1)
    started = time.monotonic()
    where = _cycles(world, zygote, rng, KILLS)
    cycles_took = time.monotonic() - started
    claimed = world.claimed()

    world.submit(habilitations=5, new_accounts=1, invalid=1)   # the last daemon has work of its own
    final = world.spawn("exec")
    wait_for(final.started, 30, what="the last daemon to start")
    drained_in = world.drain(rng, timeout=60)
    assert final.terminate() == 0, "a clean stop exits 0"
    figures = world.verify()
    print(f"\n{KILLS} kills in {cycles_took:.1f} s; where: {dict(where.most_common())}"
          f"\nrows still claimed by killed daemons at the end: {claimed}; final drain {drained_in:.1f} s "
          f"(leases of 5 s included); {figures}")
