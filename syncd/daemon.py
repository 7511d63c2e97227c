"""The long-running loop: ``schedule`` runs each job at its interval, a cheap probe wakes work early.

- The jobs that write to LDAP run in one lane (the main thread, which signals reach) and the
  others in a second lane (a thread), so a slow directory does not hold up intake, the tacit
  sweep or mail, nor mail the next apply.
- Every job runs in isolation: a ``TemporaryError`` (LDAP or database down) backs that job off
  exponentially; any other error is logged with its traceback. Nothing kills the loop.
- Between scheduled runs the loop probes the database every ``wake_poll_seconds`` (indexed,
  ``LIMIT 1`` queries) and runs intake, apply or delivery at once when they have work, so a
  request written by the portal or a decision taken on the web reaches LDAP within a second.
- A decision also wakes every daemon at once: NOTIFY on PostgreSQL, a datagram to each daemon's
  socket beside the database file on SQLite (``syncd.store.wakeup``); the sweeps
  (``SINGLETON_JOBS``) run in one daemon at a time under an advisory lock.
- SIGTERM / SIGINT: the job in flight finishes, then the loop exits. SIGUSR1: wake up now.
- SIGHUP: reload and validate the mappings between two jobs; invalid ones are logged problem by
  problem and the daemon carries on with the mappings it had.
- Each job's last result is stored in ``job_runs`` for ``syncd status``.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import schedule
import structlog
from prometheus_client import Counter, Histogram, start_http_server

from syncd.core.backoff import backoff_seconds
from syncd.directory import metrics as ldap_metrics  # noqa: F401  (registers the LDAP write series at start)
from syncd.errors import ConfigError, TemporaryError
from syncd.runtime import Runtime
from syncd.store import health, leadership
from syncd.store.db import transaction

log = structlog.get_logger(__name__)

# Jobs that write to LDAP run in a lane (a thread) of their own, the others in the main one: a
# slow or frozen directory does not hold up intake, the tacit sweep or mail, and a long mail
# delivery does not delay the next apply.
DIRECTORY_JOBS = frozenset({"provision", "apply", "accounts", "reconcile", "reconcile_incremental"})

# Sweeps over shared state: on PostgreSQL one daemon at a time runs each (advisory lock);
# the claim-based jobs (intake, apply, deliver) run everywhere and share work through claims.
SINGLETON_JOBS = frozenset({"provision", "reroute", "tacit", "remind", "expiry", "reviews", "accounts", "reconcile",
                            "reconcile_incremental",
                            "retention", "audit_seal", "digest"})


# The daemon's own series, served on settings.metrics.listen (the web process serves the
# database-wide ones); the LDAP write series are in syncd.directory.metrics.
JOB_SECONDS = Histogram("syncd_job_seconds", "Duration of one run of a daemon job", ["job_name"],
                        buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300))
JOB_ITEMS = Counter("syncd_job_items", "Items a daemon job handled (requests applied, mails sent, ...)", ["job_name"])
JOB_FAILURES = Counter("syncd_job_failures", "Daemon job runs that ended in an error", ["job_name"])


def serve_metrics(listen: str | None) -> None:
    """Serve prometheus_client's default registry over HTTP on ``host:port`` (off when None)."""
    if not listen:
        return
    host, _, port = listen.rpartition(":")
    start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1")
    log.info("metrics_serving", listen=listen)


@dataclass
class Job:
    name: str
    run: Callable[[Runtime], int]
    interval_seconds: float
    failures: int = 0
    paused_until: float = 0.0      # monotonic time before which a backed-off job is skipped
    last_count: int = field(default=0)


def default_jobs(rt: Runtime) -> list[Job]:
    from syncd.jobs import (accounts, apply, audit_seal, deliver, digest, habilitations, intake, provision,
                            retention, reviews, routing, tacit)
    from syncd.reconcile import job as reconcile
    j = rt.settings.jobs
    return [
        Job("provision", provision.provision, j.provision_seconds),
        Job("intake", intake.take_in, j.intake_seconds),
        Job("reroute", routing.reroute_pending, j.provision_seconds),
        Job("tacit", tacit.sweep, j.tacit_seconds),
        Job("remind", tacit.remind, j.tacit_seconds),
        Job("expiry", habilitations.expire_and_renew, j.tacit_seconds),
        Job("reviews", reviews.run, j.tacit_seconds),     # before accounts: a withdrawal reaches LDAP in the pass
        Job("digest", digest.send_digests, j.digest_seconds),
        Job("apply", apply.apply_accepted, j.apply_seconds),
        Job("accounts", accounts.sync_accounts, j.apply_seconds),
        Job("deliver", deliver.deliver, j.outbox_seconds),
        Job("reconcile", reconcile.reconcile, rt.settings.reconcile.interval_seconds),
        Job("reconcile_incremental", reconcile.reconcile_incremental, rt.settings.reconcile.incremental_interval_seconds),
        Job("retention", retention.erase_old_mail_content, j.retention_seconds),
        Job("audit_seal", audit_seal.seal_audit, j.audit_seal_seconds),   # last: `once` seals what it wrote
    ]


class Daemon:
    def __init__(self, rt: Runtime, jobs: list[Job] | None = None):
        self.rt = rt
        self.jobs = {job.name: job for job in (jobs or default_jobs(rt))}
        self.stopping = threading.Event()
        self.reload_requested = threading.Event()
        self._provisioned = threading.Event()
        self._lanes_lock = threading.Lock()
        self._unrecorded: dict[str, tuple] = {}    # job -> its last failure the database could not take
        self._lane_wakes: list[threading.Event] = []

    # --- one pass ----------------------------------------------------------------------------
    def run_job(self, name: str) -> int | None:
        job = self.jobs[name]
        if time.monotonic() < job.paused_until:
            return None
        if name in DIRECTORY_JOBS and name != "provision" and "provision" in self.jobs \
                and not self._directory_provisioned():
            # Until provisioning has run once, the groups may not exist, and a member write to a
            # missing group fails for good (noSuchObject): wait for it rather than give up requests.
            return None
        started = self.rt.clock()
        timer = time.perf_counter()
        error = None
        bound = log.bind(job=name)
        try:
            if name in SINGLETON_JOBS:
                with leadership.singleton(self.rt.engine, name, self.rt.worker_id) as leader:
                    if not leader:
                        bound.debug("job_skipped_other_daemon_runs_it")
                        return 0
                    job.last_count = job.run(self.rt)
            else:
                job.last_count = job.run(self.rt)
            job.failures = 0
            if job.last_count:
                bound.debug("job_done", count=job.last_count)
        except TemporaryError as exc:
            job.failures += 1
            delay = backoff_seconds(job.failures, self.rt.settings.jobs.max_backoff_seconds, first=2.0)
            job.paused_until = time.monotonic() + delay
            error = f"{type(exc).__name__}: {exc}"
            bound.warning("job_backing_off", error=error, attempt=job.failures, retry_in=delay)
        except Exception as exc:  # a bug must not kill the daemon: log it loudly, carry on
            job.failures += 1
            error = f"{type(exc).__name__}: {exc}"
            bound.exception("job_failed", attempt=job.failures)
        JOB_SECONDS.labels(name).observe(time.perf_counter() - timer)
        JOB_ITEMS.labels(name).inc(job.last_count if error is None else 0)
        if error is not None:
            JOB_FAILURES.labels(name).inc()
        self._remember(name, started, error)
        if name == "provision" and error is None:
            self._provisioned.set()
        return job.last_count if error is None else None

    def _directory_provisioned(self) -> bool:
        """Whether the branches and groups exist: provisioned by this daemon, or by another one.

        Provisioning is a singleton job: while another daemon holds it, this one runs nothing and
        must look at that daemon's recorded success instead of taking the skip for one.
        """
        if self._provisioned.is_set():
            return True
        if self.run_job("provision") is None:
            return False
        if not self._provisioned.is_set():
            try:
                with transaction(self.rt.engine, readonly=True) as conn:
                    if health.job_succeeded_once(conn, "provision"):
                        self._provisioned.set()
            except Exception as exc:  # the database may be the thing that is down: try again next pass
                log.debug("provisioning_state_unknown", error=str(exc))
        return self._provisioned.is_set()

    def run_once(self) -> dict[str, int | None]:
        """Every job once, in dependency order (``syncd once``)."""
        return {name: self.run_job(name) for name in self.jobs}

    # --- the loop ----------------------------------------------------------------------------
    def run_forever(self) -> None:
        """Run each lane's jobs once, then at their intervals until stopped; return when every lane has."""
        self._install_signals()
        log.info("daemon_started", worker=self.rt.worker_id, jobs=sorted(self.jobs))
        serve_metrics(self.rt.settings.metrics.listen)
        threading.Thread(target=self._listen, name="syncd-listen", daemon=True).start()
        lanes = [names for names in ([n for n in self.jobs if n in DIRECTORY_JOBS],
                                     [n for n in self.jobs if n not in DIRECTORY_JOBS]) if names] or [[]]
        failures: list[Exception] = []
        others = [threading.Thread(target=self._run_lane_in_thread, args=(names, failures),
                                   name=f"syncd-lane-{names[0]}") for names in lanes[1:]]
        for thread in others:
            thread.start()
        try:
            # The main thread (the one signals reach) runs the first lane, and reloads the mappings.
            self._run_lane(lanes[0], True)
        except Exception:
            log.exception("daemon_lane_failed", jobs=lanes[0])
            raise
        finally:
            self.stop()
            for thread in others:
                thread.join()
        if failures:
            raise failures[0]     # as if the main loop had failed: the process exits non-zero
        log.info("daemon_stopped", worker=self.rt.worker_id)

    def _run_lane_in_thread(self, names: list[str], failures: list[Exception]) -> None:
        try:
            self._run_lane(names, False)
        except Exception as exc:    # stop everything rather than run on with a dead lane
            log.exception("daemon_lane_failed", jobs=names)
            failures.append(exc)
            self.stop()

    def _run_lane(self, names: list[str], reloads: bool) -> None:
        """Run these jobs at their intervals, and early when the probe finds work for them;
        with ``reloads``, also reload the mappings on request, between two jobs."""
        scheduler = schedule.Scheduler()
        for name in names:
            scheduler.every(self.jobs[name].interval_seconds).seconds.do(self.run_job, name)
        wake = threading.Event()
        with self._lanes_lock:
            self._lane_wakes.append(wake)
        poll = self.rt.settings.jobs.wake_poll_seconds
        for name in names:              # every job once at start, in dependency order
            if self.stopping.is_set():
                return
            self.run_job(name)
        while not self.stopping.is_set():
            if reloads and self.reload_requested.is_set():
                self.reload_mappings()
            scheduler.run_pending()
            if self.stopping.is_set():
                break
            busy = False
            for name in self._probe(names):
                if self.stopping.is_set():
                    break
                busy = bool(self.run_job(name)) or busy
            if not busy:
                # A job that did work may have left more (apply takes a batch a pass): look again at
                # once, and wait for the poll or a hint only once the probe's jobs find nothing to do.
                wake.wait(timeout=poll)
            wake.clear()

    def wake_up(self) -> None:
        """Make every lane look for work now (a NOTIFY, SIGUSR1, the demo)."""
        with self._lanes_lock:
            for wake in self._lane_wakes:
                wake.set()

    def reload_mappings(self) -> bool:
        """Swap in freshly validated mappings; keep the current ones if the new ones are invalid."""
        from syncd.mappings import load_mappings
        self.reload_requested.clear()
        folder = self.rt.settings.resolve(self.rt.settings.mappings)
        try:
            mappings = load_mappings(folder)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("mappings_reload_problem", problem=problem)
            log.error("mappings_reload_refused", problems=len(exc.problems))
            return False
        self.rt.mappings = mappings
        log.info("mappings_reloaded", applications=len(mappings.applications),
                 organisations=len(mappings.organisations))
        self.run_job("provision")   # new roles and organisations get their entries now
        return True

    def _listen(self) -> None:
        """Wake the loop when a hint arrives (NOTIFY, or SQLite's datagram): the probe's polling
        stays the guarantee."""
        while not self.stopping.is_set():
            try:
                with leadership.listen(self.rt.engine, leadership.WAKE_CHANNEL) as listener:
                    while not self.stopping.is_set():
                        if listener.wait(timeout=1.0):
                            self.wake_up()
            except TemporaryError as exc:
                log.debug("listen_failed", error=str(exc))
                self.stopping.wait(5)

    def stop(self, *_args) -> None:
        self.stopping.set()
        self.wake_up()

    def _probe(self, names: list[str]) -> list[str]:
        """Which of these jobs have work waiting now (the early-start jobs only)."""
        candidates = [name for name in ("intake", "apply", "deliver") if name in names]
        if not candidates:
            return []
        try:
            with transaction(self.rt.engine) as conn:
                found = health.waiting_work(conn, self.rt.clock())
        except TemporaryError as exc:
            log.debug("probe_failed", error=str(exc))
            return []
        return [name for name in candidates if name in found]

    def _remember(self, name: str, started, error: str | None) -> None:
        try:
            with transaction(self.rt.engine) as conn:
                if name in self._unrecorded:
                    # Failed while the database was down: record it late, so that `syncd status`
                    # shows the outage after the fact and not a clean history.
                    health.record_job_run(conn, name, self.rt.worker_id, *self._unrecorded[name])
                health.record_job_run(conn, name, self.rt.worker_id, started, error)
            self._unrecorded.pop(name, None)
        except Exception as exc:  # the database may be the thing that is down
            if error is not None:
                self._unrecorded[name] = (started, error)
            log.debug("job_run_not_recorded", job=name, error=str(exc))

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        if hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, lambda *_: self.wake_up())
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, self._on_hangup)

    def _on_hangup(self, *_args) -> None:
        self.reload_requested.set()
        self.wake_up()
