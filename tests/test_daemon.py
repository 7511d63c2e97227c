"""The daemon loop: jobs isolated, outages backed off, signals honoured, new work picked up fast."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from structlog.testing import capture_logs

from syncd.daemon import Daemon, Job
from syncd.errors import DirectoryUnavailable
from syncd.runtime import Runtime
from syncd.settings import Settings
from syncd.store import health
from syncd.store.db import make_engine, transaction
from tests.factories import mappings


@pytest.fixture
def rt(db_url):
    settings = Settings(database={"url": db_url}, jobs={"wake_poll_seconds": 0.05, "max_backoff_seconds": 30})
    runtime = Runtime(settings, mappings(), make_engine(db_url), worker_id="t")
    yield runtime
    runtime.engine.dispose()


def test_a_temporary_outage_backs_the_job_off_and_is_recorded_for_status(rt):
    def ldap_down(_rt):
        raise DirectoryUnavailable("connection refused")
    daemon = Daemon(rt, [Job("apply", ldap_down, 5)])
    with capture_logs() as logs:
        assert daemon.run_job("apply") is None
    assert daemon.jobs["apply"].paused_until > time.monotonic()
    assert daemon.run_job("apply") is None   # skipped while backed off
    assert [e["event"] for e in logs] == ["job_backing_off"]
    with transaction(rt.engine) as conn:
        [run] = health.job_health(conn)
    assert run["consecutive_failures"] == 1 and "connection refused" in run["last_error"]


def test_a_bug_in_one_job_is_logged_and_the_other_jobs_still_run(rt):
    ran = []
    def broken(_rt):
        raise ValueError("oops")
    daemon = Daemon(rt, [Job("broken", broken, 5), Job("fine", lambda _rt: ran.append(1) or 1, 5)])
    with capture_logs() as logs:
        results = daemon.run_once()
    assert results == {"broken": None, "fine": 1} and ran == [1]
    assert any(e["event"] == "job_failed" and e["job"] == "broken" for e in logs)


def test_a_database_outage_does_not_kill_the_loop(tmp_path):
    settings = Settings(database={"url": "postgresql+psycopg://nobody@127.0.0.1:9/none"},
                        jobs={"wake_poll_seconds": 0.05})
    rt = Runtime(settings, mappings(), make_engine(settings.database.url), worker_id="t")
    from syncd.jobs.intake import take_in
    daemon = Daemon(rt, [Job("intake", take_in, 0.1)])
    threading.Timer(0.6, daemon.stop).start()
    with capture_logs() as logs:
        daemon.run_forever()
    assert any(e["event"] == "job_backing_off" for e in logs)
    assert logs[-1]["event"] == "daemon_stopped"


def test_sigterm_lets_the_job_in_flight_finish_then_stops(rt):
    finished = []
    def slow(_rt):
        time.sleep(0.4)
        finished.append(True)
        return 1
    daemon = Daemon(rt, [Job("slow", slow, 0.1)])
    threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        daemon.run_forever()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert finished == [True]


def test_new_work_in_the_queue_table_starts_within_a_second_whatever_the_interval(rt):
    seen = threading.Event()
    def intake(_rt):
        with transaction(rt.engine) as conn:
            if health.waiting_work(conn, rt.clock()):
                seen.set()
        return 0
    daemon = Daemon(rt, [Job("intake", intake, 3600)])
    thread = threading.Thread(target=daemon.run_forever)
    thread.start()
    try:
        time.sleep(0.3)
        from tests.scenarios.helpers import habilitation
        started = time.monotonic()
        habilitation(rt)
        assert seen.wait(2), "the probe did not wake intake"
        assert time.monotonic() - started < 1.0
    finally:
        daemon.stop()
        thread.join(5)


def test_a_backlog_bigger_than_a_pass_is_drained_pass_after_pass_without_waiting_for_the_poll(rt, monkeypatch):
    rt.settings.jobs.wake_poll_seconds = 30
    backlog = [2000, 2000, 2000, 500]
    passes = []

    def apply(_rt):
        passes.append(time.monotonic())
        return backlog.pop(0) if backlog else 0
    daemon = Daemon(rt, [Job("apply", apply, 3600)])
    monkeypatch.setattr(daemon, "_probe", lambda names: ["apply"] if backlog else [])
    thread = threading.Thread(target=daemon.run_forever)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while backlog and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not backlog, f"{len(backlog)} passes still waiting: the lane slept between passes"
    finally:
        daemon.stop()
        thread.join(5)
    assert passes[-1] - passes[0] < 5, "the passes followed one another, not the 30 s poll"


def test_a_probe_that_finds_work_the_job_cannot_do_does_not_spin_the_lane(rt, monkeypatch):
    rt.settings.jobs.wake_poll_seconds = 0.1
    runs = []
    daemon = Daemon(rt, [Job("apply", lambda _rt: runs.append(1) or 0, 3600)])   # backed-off work: 0 done
    monkeypatch.setattr(daemon, "_probe", lambda names: ["apply"])
    thread = threading.Thread(target=daemon.run_forever)
    thread.start()
    try:
        time.sleep(1.0)
    finally:
        daemon.stop()
        thread.join(5)
    assert 3 <= len(runs) <= 15, f"{len(runs)} runs in a second with a 0.1 s poll"


def test_sighup_reloads_valid_mappings_and_keeps_the_old_ones_when_the_new_are_invalid(rt, tmp_path):
    import shutil
    from pathlib import Path
    folder = tmp_path / "mappings"
    shutil.copytree(Path(__file__).resolve().parents[1] / "mappings", folder)
    rt.settings = rt.settings.model_copy(update={"mappings": str(folder)})
    daemon = Daemon(rt, [Job("provision", lambda _rt: 0, 3600)])
    apps = folder / "applications.yaml"
    apps.write_text(apps.read_text().replace("OPIM - Organisme Local", "OPIM - Organisme local (v2)"))
    assert daemon.reload_mappings()
    assert any(r.label == "OPIM - Organisme local (v2)" for a in rt.mappings.applications for r in a.roles)
    apps.write_text(apps.read_text().replace("\n    management: local", "\n    management: nowhere", 1))
    with capture_logs() as logs:
        assert not daemon.reload_mappings()
    assert any(r.label == "OPIM - Organisme local (v2)" for a in rt.mappings.applications for r in a.roles)
    assert any(e["event"] == "mappings_reload_problem" and "applications.yaml" in e["problem"] for e in logs)


def test_the_signal_itself_triggers_the_reload_between_jobs(rt, tmp_path):
    import shutil
    from pathlib import Path
    folder = tmp_path / "mappings"
    shutil.copytree(Path(__file__).resolve().parents[1] / "mappings", folder)
    rt.settings = rt.settings.model_copy(update={"mappings": str(folder)})
    daemon = Daemon(rt, [Job("provision", lambda _rt: 0, 3600)])
    threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGHUP)).start()
    threading.Timer(0.6, daemon.stop).start()
    previous = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    try:
        with capture_logs() as logs:
            daemon.run_forever()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert any(e["event"] == "mappings_reloaded" for e in logs)


def test_the_daemon_serves_its_job_and_ldap_write_series_for_prometheus(rt):
    import socket
    import urllib.request

    from prometheus_client import REGISTRY

    from syncd.daemon import serve_metrics

    def sample(name, job):
        return REGISTRY.get_sample_value(name, {"job_name": job}) or 0

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve_metrics(f"127.0.0.1:{port}")

    def boom(_rt):
        raise RuntimeError("a bug")
    daemon = Daemon(rt, [Job("metrics-ok", lambda _rt: 3, 5), Job("metrics-bug", boom, 5)])
    before = (sample("syncd_job_items_total", "metrics-ok"), sample("syncd_job_failures_total", "metrics-bug"),
              sample("syncd_job_seconds_count", "metrics-ok"))
    daemon.run_job("metrics-ok")
    daemon.run_job("metrics-bug")
    after = (sample("syncd_job_items_total", "metrics-ok"), sample("syncd_job_failures_total", "metrics-bug"),
             sample("syncd_job_seconds_count", "metrics-ok"))
    assert [a - b for a, b in zip(after, before, strict=False)] == [3, 1, 1]
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert f'syncd_job_items_total{{job_name="metrics-ok"}} {after[0]}' in page
    assert "# TYPE syncd_ldap_write_seconds histogram" in page
    assert "# TYPE syncd_ldap_write_errors_total counter" in page


def test_a_directory_job_stuck_on_ldap_does_not_hold_up_intake_or_mail(rt):
    released = threading.Event()
    runs = []

    def stuck_apply(_rt):
        released.wait(5)            # LDAP hangs until its timeout
        return 0

    def intake(_rt):
        runs.append(time.monotonic())
        return 0
    daemon = Daemon(rt, [Job("apply", stuck_apply, 0.05), Job("intake", intake, 0.05)])
    thread = threading.Thread(target=daemon.run_forever)
    try:
        thread.start()
        time.sleep(0.3)
        first_pass_over = len(runs)
        time.sleep(0.7)
        assert len(runs) - first_pass_over >= 5, "intake keeps its interval while apply is stuck"
    finally:
        released.set()
        daemon.stop()
        thread.join(10)
    assert not thread.is_alive()


@pytest.mark.parametrize("lane", ["apply", "intake"])   # the main thread's lane, the other thread's
def test_a_lane_that_dies_stops_the_daemon_with_its_error(rt, monkeypatch, lane):
    daemon = Daemon(rt, [Job("apply", lambda _rt: 0, 0.05), Job("intake", lambda _rt: 0, 0.05)])
    real_probe = daemon._probe

    def probe(names):
        if lane in names:
            raise ValueError("a bug in a lane")
        return real_probe(names)
    monkeypatch.setattr(daemon, "_probe", probe)
    with capture_logs() as logs, pytest.raises(ValueError, match="a bug in a lane"):
        daemon.run_forever()
    assert any(e["event"] == "daemon_lane_failed" for e in logs)


def test_no_directory_job_runs_before_provisioning_has_succeeded_once(rt):
    ran = []
    ldap_up = []

    def provision(_rt):
        if not ldap_up:
            raise DirectoryUnavailable("connection refused")
        ran.append("provision")
        return 0

    def apply(_rt):
        ran.append("apply")
        return 0
    daemon = Daemon(rt, [Job("provision", provision, 3600), Job("apply", apply, 1)])
    assert daemon.run_job("provision") is None
    daemon.jobs["provision"].paused_until = 0          # its back-off ran out
    assert daemon.run_job("apply") is None, "groups may be missing: apply waits"
    assert ran == []
    daemon.jobs["provision"].paused_until = 0
    ldap_up.append(True)
    assert daemon.run_job("apply") == 0
    assert ran == ["provision", "apply"], "provisioning runs first, then apply"
    daemon.run_job("apply")
    assert ran == ["provision", "apply", "apply"], "and only once"


@pytest.mark.postgres
def test_while_another_daemon_provisions_no_directory_job_runs_until_its_success_is_recorded(postgres_url):
    from datetime import datetime, timezone

    from syncd.store.leadership import singleton
    settings = Settings(database={"url": postgres_url})
    engines = [make_engine(postgres_url), make_engine(postgres_url)]
    ran = []
    daemon = Daemon(Runtime(settings, mappings(), engines[0], worker_id="second"),
                    [Job("provision", lambda _rt: ran.append("provision") or 0, 3600),
                     Job("apply", lambda _rt: ran.append("apply") or 0, 1)])
    try:
        with singleton(engines[1], "provision", "first") as first:
            assert first
            assert daemon.run_job("apply") is None, "the other daemon is still creating the branches"
            assert ran == []
            with transaction(engines[1]) as conn:
                health.record_job_run(conn, "provision", "first", datetime.now(timezone.utc), None)
            assert daemon.run_job("apply") == 0, "the other daemon's success counts"
            assert ran == ["apply"]
    finally:
        for engine in engines:
            engine.dispose()


def test_failures_during_a_database_outage_are_recorded_for_status_once_it_is_back(rt, monkeypatch):
    from syncd import daemon as daemon_module
    from syncd.errors import StoreUnavailable
    real_transaction = daemon_module.transaction
    database_up = []

    def store(_rt):
        if not database_up:
            raise StoreUnavailable("connection refused")
        return 1

    def transaction_while_down(*args, **kwargs):
        if not database_up:
            raise StoreUnavailable("connection refused")
        return real_transaction(*args, **kwargs)

    monkeypatch.setattr(daemon_module, "transaction", transaction_while_down)
    daemon = Daemon(rt, [Job("intake", store, 5)])
    assert daemon.run_job("intake") is None
    database_up.append(True)
    daemon.jobs["intake"].paused_until = 0
    assert daemon.run_job("intake") == 1
    with transaction(rt.engine) as conn:
        [run] = health.job_health(conn)
    assert run["consecutive_failures"] == 0 and run["last_ok_at"] is not None
    assert "connection refused" in run["last_error"] and run["last_error_at"] is not None
    from syncd import operator
    shown = operator.format_status(operator.status_report(rt))
    assert "intake" in shown and "ok (last failed" in shown and "connection refused" in shown
