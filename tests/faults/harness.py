"""The fault-injection harness: a whole syncd (``syncd run`` in its own process) against a real
slapd, a database and an in-process SMTP server, a workload the test drives, and the checks
that must hold after any fault.

* ``World``: a config file and a mappings folder for one test (its own LDAP base), an
  in-process ``Runtime`` (the test's hands: the portal's inserts, the deciders' decisions,
  the checks), and the daemons it starts.
* ``DaemonProcess``: ``syncd -c … run`` exec'd as a child (``mode="exec"``), or forked by the
  ``Zygote`` (``mode="fork"``: the same entry point, imports done once); ``kill()`` is SIGKILL.
* ``World.verify()``: every request in its expected terminal state, accepted ones applied
  exactly once, LDAP group members equal to the accepted requests, every active account in
  LDAP, every outbox row sent, every sent row received by the SMTP server (deduplicated by
  Message-ID), each expected notification enqueued exactly once.

Time is real (the daemons use the system clock), and leases run out by themselves
(``database.lease_seconds`` is 5 s in the kill and crash tests). One shortcut stands in for
waiting, and says so where it is used: ``retry_mail_now()`` makes mails waiting for their retry
back-off due (its first step is 30-60 s).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, insert, select, update

from syncd.core.model import Verdict
from syncd.directory import names
from syncd.errors import DecisionRefused
from syncd.jobs.decisions import decide_request
from syncd.runtime import Runtime, system_clock
from syncd.mappings import load_mappings
from syncd.settings import load_settings
from syncd.store import audit, repo
from syncd.store.db import make_engine, transaction
from syncd.store.tables import accounts, deciders, job_runs, outbox, request_events, requests
from tests.factories import mappings
from tests.openldap_setup import serve_base

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FINAL = ("accepted", "accepted_tacitly", "refused", "rejected")
ROLES = ("accords-locaux-acces", "opim-local", "greve-declaration")
ORG = "CARSAT-RA"
DOMAIN = "lassuranceretraite.fr"
DEFAULT_JOBS = {"intake_seconds": 1, "apply_seconds": 1, "tacit_seconds": 2, "outbox_seconds": 1,
                "provision_seconds": 5, "wake_poll_seconds": 0.2, "batch_size": 20, "apply_batch_size": 20,
                "max_backoff_seconds": 4}


def wait_for(predicate, timeout: float, step: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


# ---------------------------------------------------------------------------------------------
# processes


class Zygote:
    """Forks daemons from a process that imported syncd once (see ``zygote.py``)."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, str(HERE / "zygote.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=str(REPO),
                                     env={**os.environ, "PYTHONPATH": str(REPO)})
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"the zygote did not start: {line!r}")

    def spawn(self, argv: list[str], env: dict[str, str], log: Path) -> int:
        self.proc.stdin.write(json.dumps({"argv": argv, "env": env, "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie is dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class DaemonProcess:
    def __init__(self, world: "World", mode: str, log: Path, zygote: Zygote | None = None):
        self.world, self.mode, self.log = world, mode, log
        self.started_at = time.monotonic()
        argv = ["-c", str(world.config_path), "run"]
        if mode == "exec":
            out = open(log, "ab")
            self.popen = subprocess.Popen([sys.executable, "-m", "syncd", *argv], env=world.env, stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(world.folder))
            out.close()
            self.pid = self.popen.pid
        else:
            assert zygote is not None
            self.popen = None
            self.pid = zygote.spawn(argv, world.env, log)

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return _pid_alive(self.pid)

    def kill(self) -> None:
        """SIGKILL, and wait until the process is gone."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.popen is not None:
            self.popen.wait(timeout=10)
        else:
            wait_for(lambda: not self.alive(), 10, 0.01, f"pid {self.pid} to die")

    def terminate(self, timeout: float = 30) -> int | None:
        """SIGTERM (the batch in flight finishes); the exit code when we are its parent."""
        os.kill(self.pid, signal.SIGTERM)
        if self.popen is not None:
            return self.popen.wait(timeout=timeout)
        wait_for(lambda: not self.alive(), timeout, 0.05, f"pid {self.pid} to stop")
        return None

    def events(self) -> list[dict[str, Any]]:
        found = []
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return found
        for line in text.splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    pass
        return found

    def kill_after(self, events: set[str], timeout: float) -> str | None:
        """SIGKILL as soon as one of ``events`` is logged (polling every few ms), or at ``timeout``.

        Returns the event it fired on (None on timeout). The kill lands a few milliseconds
        after the event, i.e. inside the step that follows it.
        """
        deadline = time.monotonic() + timeout
        offset = 0
        pending = ""
        while time.monotonic() < deadline and self.alive():
            try:
                with open(self.log, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
            except OSError:
                chunk = b""
            offset += len(chunk)
            pending += chunk.decode("utf-8", "replace")
            *lines, pending = pending.split("\n")
            for line in lines:
                if '"event"' in line:
                    try:
                        event = json.loads(line).get("event")
                    except ValueError:
                        continue
                    if event in events:
                        self.kill()
                        return event
            time.sleep(0.002)
        self.kill()
        return None

    def last_event(self) -> str:
        events = self.events()
        return events[-1].get("event", "?") if events else "(starting)"

    def started(self) -> bool:
        return any(e.get("event") == "daemon_started" for e in self.events())


# ---------------------------------------------------------------------------------------------
# the world


class World:
    def __init__(self, folder: Path, db_url: str, slapd, smtp, *, jobs: dict | None = None,
                 ldap_urls: list[str] | None = None, name: str = "f", log_level: str = "info",
                 lease_seconds: int = 30, policy: dict | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.slapd, self.smtp = slapd, smtp
        self.base_dn = f"ou={name}{uuid.uuid4().hex[:8]},{slapd.suffix}"
        # syncd's service account under the shipped rules when the server has one (the rules
        # named for this world's base); the root DN otherwise
        bind_dn, bind_password = slapd.service_account or (slapd.root_dn, slapd.root_password)
        if slapd.service_account:
            serve_base(slapd, self.base_dn)
        maps = self.folder / "mappings"
        maps.mkdir(exist_ok=True)
        (maps / "mappings.yaml").write_text(yaml.safe_dump(
            mappings(base_dn=self.base_dn, **(policy or {})).model_dump(mode="json", exclude_defaults=True),
            allow_unicode=True))
        config = {
            "mappings": str(maps),
            "database": {"url": db_url, "lease_seconds": lease_seconds},
            "ldap": {"urls": ldap_urls or [slapd.url], "bind_dn": bind_dn, "timeout_seconds": 5},
            "smtp": {"host": smtp.host, "port": smtp.port, "timeout_seconds": 5,
                     "sender": "Habilitations <no-reply@habilitations.example.org>"},
            "web": {"base_url": "https://habilitations.example.org"},
            "jobs": {**DEFAULT_JOBS, **(jobs or {})},
            "log": {"level": log_level, "format": "json"},
        }
        self.config_path = self.folder / "syncd.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
        self.env["SYNCD_LDAP__BIND_PASSWORD"] = bind_password
        self.env["PYTHONPATH"] = str(REPO)
        settings = load_settings(self.config_path, environ=self.env)
        self.rt = Runtime(settings, load_mappings(maps), make_engine(settings.database_url),
                          clock=system_clock, worker_id="fault-driver")
        self.expected: dict[int, str] = {}
        self.processes: list[DaemonProcess] = []
        self.pairs: list[tuple[str, str]] = []      # (account id, role) not asked for yet
        self.emails: dict[str, str] = {}             # account id -> e-mail
        self.deciders: dict[str, str] = {}           # "correspondent" / "admin" -> account id
        self._spawned = 0

    # -- processes ------------------------------------------------------------------------------

    def spawn(self, mode: str = "exec", zygote: Zygote | None = None) -> DaemonProcess:
        self._spawned += 1
        process = DaemonProcess(self, mode, self.folder / f"daemon-{self._spawned:03d}.log", zygote)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for p in self.processes:
            if p.alive():
                p.kill()

    def close(self) -> None:
        self.stop_all()
        self.rt.close()

    # -- the workload ---------------------------------------------------------------------------

    def seed(self, n_accounts: int, rng: random.Random) -> None:
        """Deciders and ``n_accounts`` active requesters, in the database only: the daemon's
        accounts and apply jobs write them to LDAP."""
        now = system_clock()
        rows = []
        for who in ("correspondent", "admin"):
            account_id = repo.new_account_id()
            self.deciders[who] = account_id
            rows.append((account_id, f"{who}.{account_id[:6]}@{DOMAIN}"))
        for i in range(n_accounts):
            account_id = repo.new_account_id()
            rows.append((account_id, f"agent{i}.{account_id[:6]}@{DOMAIN}"))
            self.pairs += [(account_id, role) for role in ROLES]
        rng.shuffle(self.pairs)
        with transaction(self.rt.engine) as conn:
            repo.upsert_organisations(conn, self.rt.mappings.organisations, now)
            conn.execute(insert(accounts), [dict(
                id=account_id, email=email, given_name="Agent", family_name=f"N{n}", primary_organisation=ORG,
                internal=True, status="active", created_at=now, updated_at=now) for n, (account_id, email) in enumerate(rows)])
            conn.execute(insert(deciders), [
                dict(account_id=self.deciders["correspondent"], scope="correspondent", organisation_code=ORG, created_at=now),
                dict(account_id=self.deciders["admin"], scope="central", organisation_code=None, created_at=now)])
        self.emails.update(dict(rows))

    def submit(self, habilitations: int = 0, new_accounts: int = 0, invalid: int = 0,
               submitted_at=None) -> list[int]:
        """Insert rows as the portal does (docs/queue.md); invalid ones expect 'rejected'."""
        now = submitted_at or system_clock()
        values = []
        for _ in range(min(habilitations, len(self.pairs))):
            account_id, role = self.pairs.pop()
            values.append(dict(kind="habilitation", submitted_at=now, email=self.emails[account_id], role_key=role,
                               portal_ref=f"h-{uuid.uuid4().hex}"))
        for _ in range(new_accounts):
            tag = uuid.uuid4().hex[:10]
            values.append(dict(kind="account", submitted_at=now, email=f"new.{tag}@{DOMAIN}", civility="Mme",
                               given_name="Nouvelle", family_name="Recrue", internal=True, organisation_code=ORG,
                               terms_accepted=True, terms_version="2026-01", portal_ref=f"a-{tag}"))
        for _ in range(invalid):
            values.append(dict(kind="habilitation", submitted_at=now, email=next(iter(self.emails.values())),
                               role_key="no-such-role", portal_ref=f"x-{uuid.uuid4().hex}"))
        ids = []
        with transaction(self.rt.engine) as conn:
            for v in values:
                request_id = conn.execute(insert(requests).values(**v)).inserted_primary_key[0]
                ids.append(request_id)
                if v.get("role_key") == "no-such-role":
                    self.expected[request_id] = "rejected"
        return ids

    def decide_pending(self, rng: random.Random, refuse_ratio: float = 0.2) -> int:
        """Every routed pending request gets a decision from one of its deciders."""
        with transaction(self.rt.engine) as conn:
            pending = [r[0] for r in conn.execute(select(requests.c.id).where(
                requests.c.status == "pending", requests.c.deadline_at > system_clock() + timedelta(minutes=1)))]
            routed = {request_id: repo.routed_to(conn, request_id) for request_id in pending}
        done = 0
        for request_id in pending:
            if not routed[request_id]:
                continue
            verdict = Verdict.REFUSE if rng.random() < refuse_ratio else Verdict.ACCEPT
            try:
                decide_request(self.rt, request_id, routed[request_id][0], verdict,
                               "Pas dans votre périmètre." if verdict is Verdict.REFUSE else None,
                               channel="fault-test")
            except DecisionRefused as exc:
                if exc.code in ("already_decided", "already_tacitly_accepted", "deadline_passed"):
                    continue    # the tacit sweep got there first
                raise
            self.expected[request_id] = "refused" if verdict is Verdict.REFUSE else "accepted"
            done += 1
        return done

    def claimed(self) -> dict[str, int]:
        """Rows under a lease right now, per table."""
        now = system_clock()
        with transaction(self.rt.engine, readonly=True) as conn:
            return {t.name: conn.execute(select(func.count()).select_from(t).where(t.c.claimed_until > now)).scalar()
                    for t in (requests, outbox)}

    def retry_mail_now(self) -> int:
        """Make pending mails due now instead of after their retry back-off."""
        with transaction(self.rt.engine) as conn:
            return conn.execute(update(outbox).where(outbox.c.status == "pending", outbox.c.next_attempt_at.is_not(None))
                                .values(next_attempt_at=None)).rowcount

    # -- observing ------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with transaction(self.rt.engine, readonly=True) as conn:
            statuses = dict(conn.execute(select(requests.c.status, func.count()).group_by(requests.c.status)).all())
            unapplied = conn.execute(select(func.count()).select_from(requests).where(
                requests.c.status.in_(("accepted", "accepted_tacitly")), requests.c.applied_at.is_(None))).scalar()
            mails = dict(conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all())
            unsynced = conn.execute(select(func.count()).select_from(accounts).where(
                accounts.c.status == "active", accounts.c.ldap_synced_at.is_(None))).scalar()
        return {**{f"requests_{k}": v for k, v in statuses.items()}, "unapplied": unapplied,
                **{f"mail_{k}": v for k, v in mails.items()}, "accounts_unsynced": unsynced}

    def quiescent(self) -> bool:
        c = self.counts()
        return (not c.get("requests_new") and not c.get("requests_pending") and not c["unapplied"]
                and not c.get("mail_pending") and not c["accounts_unsynced"])

    def drain(self, rng: random.Random, timeout: float = 60, settled=None) -> float:
        """Decide what comes up until everything is done; return how long it took."""
        started = time.monotonic()

        def default() -> bool:
            self.decide_pending(rng)
            return self.quiescent()

        settled = settled or default

        try:
            wait_for(settled, timeout, 0.2, "the backlog to drain")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {self.counts()}\n{self.diagnose()}") from None
        return time.monotonic() - started

    def diagnose(self) -> str:
        """Why work is stuck: claims, retries, and (PostgreSQL) the sessions and their locks."""
        from sqlalchemy import text
        lines = []
        with transaction(self.rt.engine, readonly=True) as conn:
            for table in (requests, outbox):
                rows = conn.execute(select(table.c.id, table.c.status, table.c.claimed_by, table.c.claimed_until,
                                           table.c.next_attempt_at, table.c.last_error)
                                    .where(table.c.status.in_(("new", "pending", "accepted")))
                                    .order_by(table.c.id).limit(15)).all()
                lines += [f"{table.name}: {tuple(r)}" for r in rows]
            if conn.dialect.name == "postgresql":
                for r in conn.execute(text(
                        "SELECT pid, application_name, state, wait_event_type, wait_event, "
                        "now() - xact_start AS in_tx, left(query, 120) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()")):
                    lines.append(f"session: {tuple(r)}")
        return "\n".join(lines)

    # -- the checks -----------------------------------------------------------------------------

    def verify(self) -> dict[str, Any]:
        """Everything that must hold once the backlog drained; returns measured figures."""
        rt = self.rt
        with transaction(rt.engine, readonly=True) as conn:
            rows = {r["id"]: dict(r) for r in conn.execute(select(requests)).mappings()}
            applied_events = Counter(r[0] for r in conn.execute(
                select(request_events.c.request_id).where(request_events.c.event == "applied")))
            mails = [dict(r) for r in conn.execute(select(outbox)).mappings()]
            people = {r["id"]: dict(r) for r in conn.execute(select(accounts)).mappings()}

        # 1. requests: terminal, as expected, applied exactly once when accepted
        problems = []
        for request_id, row in rows.items():
            expected = self.expected.get(request_id)
            if row["status"] not in FINAL:
                problems.append(f"request {request_id} is still {row['status']}")
            elif expected and row["status"] != expected:
                problems.append(f"request {request_id} is {row['status']}, expected {expected}")
            if row["status"] in ("accepted", "accepted_tacitly"):
                if row["applied_at"] is None:
                    problems.append(f"request {request_id} accepted but not applied")
                if applied_events[request_id] != 1:
                    problems.append(f"request {request_id} has {applied_events[request_id]} 'applied' events")
                if row["last_error"]:
                    problems.append(f"request {request_id} keeps an error: {row['last_error'][:100]}")
        assert not problems, "\n".join(problems[:30])

        # 2. LDAP: each role group holds exactly the accepted requests' people
        layout = rt.mappings.directory
        wanted: dict[str, set[str]] = {role: set() for role in ROLES}
        for row in rows.values():
            if row["kind"] == "habilitation" and row["status"] in ("accepted", "accepted_tacitly"):
                wanted[row["role_key"]].add(names.normalise_dn(names.person_dn(layout, row["account_id"])))
        for role, dns in wanted.items():
            got = rt.directory.members_of_group(rt.mappings.role(role).group)
            assert got == dns, f"{role}: missing {len(dns - got)}, extra {len(got - dns)}"
        ldap_people = {e["uid"][0] for e in rt.directory.iter_entries(
            names.branch_dn(layout, "people"), "(objectClass=inetOrgPerson)", ["uid"])}
        active = {a for a, p in people.items() if p["status"] == "active"}
        assert active <= ldap_people, f"{len(active - ldap_people)} active accounts are not in LDAP"
        new_accounts = [r for r in rows.values() if r["kind"] == "account" and r["status"] == "accepted"]
        assert all(r["account_id"] in ldap_people for r in new_accounts)

        # 3. mail: every row sent, received at least once, each notification enqueued once
        assert all(m["status"] == "sent" for m in mails), Counter(m["status"] for m in mails)
        received = Counter(_outbox_id(msg) for msg in self.smtp.messages)
        ids = {m["id"] for m in mails}
        assert set(received) == ids, f"lost: {sorted(ids - set(received))[:10]}, unknown: {sorted(set(received) - ids)[:10]}"
        keys = Counter(m["dedupe_key"] for m in mails if m["dedupe_key"])
        assert max(keys.values(), default=1) == 1
        for request_id, row in rows.items():
            template = {"accepted": "request_accepted", "accepted_tacitly": "request_accepted_tacitly",
                        "refused": "request_refused", "rejected": "request_rejected"}[row["status"]]
            if row["kind"] == "habilitation" or row["status"] in ("refused", "rejected"):
                assert f"request:{request_id}:{template}" in keys, f"request {request_id}: no {template} mail"
            if row["status"] != "rejected":
                assert any(k.startswith(f"request:{request_id}:to_decide:") for k in keys), request_id
        welcome = Counter(m["recipient"] for m in mails if m["template"] == "account_created_set_password")
        for r in new_accounts:
            assert welcome[people[r["account_id"]]["email"]] == 1, f"account request {r['id']}: welcome mails"

        # 4. audit: the chain seals and verifies whatever was killed mid-way (sealing included);
        #    each decision and each applied membership is in it exactly once
        with transaction(rt.engine) as conn:
            audit.seal(conn)
            assert audit.verify(conn) is None, "the audit chain is broken"
            trail = Counter((r["action"], r["request_id"]) for r in audit.rows(conn))
        for request_id, row in rows.items():
            if row["status"] in ("accepted", "refused", "accepted_tacitly"):
                event = "tacitly_accepted" if row["status"] == "accepted_tacitly" else "decided"
                assert trail[(event, request_id)] == 1, f"request {request_id}: {trail[(event, request_id)]} audit rows"
            if row["kind"] == "habilitation" and row["status"] in ("accepted", "accepted_tacitly"):
                assert trail[("ldap_member_added", request_id)] == 1, f"request {request_id}: member write audited " \
                    f"{trail[('ldap_member_added', request_id)]} times"
        return {"requests": len(rows), "by_status": dict(Counter(r["status"] for r in rows.values())),
                "mails": len(mails), "mail_duplicates": sum(n - 1 for n in received.values()),
                "ldap_members": sum(len(d) for d in wanted.values()), "audit_rows": sum(trail.values())}


def _outbox_id(message) -> int:
    return int(message["X-Syncd-Outbox-Id"])


# ---------------------------------------------------------------------------------------------
# scenario steps the fault tests share


def start_with_work(world: World, rng: random.Random, mode: str = "exec", zygote: Zygote | None = None):
    """People, 20 habilitation and 2 account requests, a running daemon, decisions taken."""
    world.seed(50, rng)
    world.submit(habilitations=20, new_accounts=2)
    daemon = world.spawn(mode, zygote)
    wait_for(daemon.started, 30, what="the daemon to start")
    wait_for(lambda: world.counts().get("requests_pending", 0) >= 20, 20, what="the intake")
    # As in production, the groups exist before a fault: until provisioning has run once, the
    # daemon holds its directory jobs back and there would be no apply to disturb.
    wait_for(lambda: _provisioned(world), 20, what="the first provisioning")
    world.decide_pending(rng)
    return daemon


def _provisioned(world: World) -> bool:
    with transaction(world.rt.engine) as conn:
        return conn.execute(select(job_runs.c.last_ok_at).where(job_runs.c.job == "provision")).scalar() is not None


def load_during(world: World, rng: random.Random, seconds: float, *, tolerate=()) -> int:
    """Requests written and decided, once a second, for ``seconds`` (the portal and the deciders
    carry on during an outage; ``tolerate`` lists the errors they may meet meanwhile)."""
    written = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            written += len(world.submit(habilitations=3, new_accounts=int(rng.random() < 0.3)))
            world.decide_pending(rng)
        except tolerate:
            pass
        time.sleep(max(0.0, min(1.0, deadline - time.monotonic())))
    return written


def given_up(daemon: DaemonProcess) -> list[dict]:
    """Log events that mean "failed for good", or a job that crashed."""
    bad = []
    for e in daemon.events():
        if e.get("event") == "request_apply_failed" and e.get("temporary") is False:
            bad.append(e)
        elif e.get("event") in ("mail_failed", "account_write_failed", "job_failed", "group_write_failed",
                                "intake_failed", "request_parked", "account_parked", "memberships_parked"):
            bad.append(e)
    return bad
