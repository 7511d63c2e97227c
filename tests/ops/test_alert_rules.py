"""The alert rules of ``deploy/prometheus/syncd-alerts.yaml`` run by ``promtool test rules`` on made-up
series: each alert fires when its condition has held for its ``for``, and not before or otherwise.

Skipped where ``promtool`` is not installed (Debian: ``apt-get install prometheus``). The
annotations are left out of the copy under test (promtool would compare their whole text);
``test_deploy.py`` checks them with ``promtool check rules``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "syncd-alerts.yaml"
WEB = 'job="syncd", instance="web1:8080"'

CASES = [
    {"name": "audit rows stop being sealed: the oldest unsealed row ages past ten minutes",
     "interval": "1m",
     "input_series": [{"series": f"syncd_audit_oldest_unsealed_age_seconds{{{WEB}}}", "values": "0+60x30"}],
     "alert_rule_test": [
         {"eval_time": "12m", "alertname": "SyncdAuditSealingStalled", "exp_alerts": []},
         {"eval_time": "17m", "alertname": "SyncdAuditSealingStalled",
          "exp_alerts": [{"exp_labels": {"severity": "warning"}}]}]},
    {"name": "the oldest open request passes 10 days + 1 h at 11 min, held 15 min",
     "interval": "1m",
     "input_series": [{"series": f"syncd_oldest_pending_seconds{{{WEB}}}", "values": "867000+60x40"}],
     "alert_rule_test": [
         {"eval_time": "20m", "alertname": "SyncdTacitSweepLate", "exp_alerts": []},
         {"eval_time": "30m", "alertname": "SyncdTacitSweepLate",
          "exp_alerts": [{"exp_labels": {"severity": "critical"}}]}]},
    {"name": "the tacit job's last success stays at 0 while apply keeps succeeding",
     "interval": "1m",
     "input_series": [
         {"series": f'syncd_job_last_ok_timestamp_seconds{{{WEB}, job_name="tacit"}}', "values": "0x100"},
         {"series": f'syncd_job_last_ok_timestamp_seconds{{{WEB}, job_name="apply"}}', "values": "0+60x100"}],
     "alert_rule_test": [
         {"eval_time": "70m", "alertname": "SyncdTacitJobStale", "exp_alerts": []},
         {"eval_time": "80m", "alertname": "SyncdTacitJobStale",
          "exp_alerts": [{"exp_labels": {"severity": "critical"}}]}]},
    {"name": "a job that succeeds every minute is never stale",
     "interval": "1m",
     "input_series": [
         {"series": f'syncd_job_last_ok_timestamp_seconds{{{WEB}, job_name="tacit"}}', "values": "0+60x100"}],
     "alert_rule_test": [{"eval_time": "90m", "alertname": "SyncdTacitJobStale", "exp_alerts": []}]},
    {"name": "one more failed mail at 10 min: firing at once, resolved an hour later",
     "interval": "1m",
     "input_series": [{"series": f"syncd_outbox_failed{{{WEB}}}", "values": "3x9 4x80"}],
     "alert_rule_test": [
         {"eval_time": "5m", "alertname": "SyncdMailsFailed", "exp_alerts": []},
         {"eval_time": "20m", "alertname": "SyncdMailsFailed",
          "exp_alerts": [{"exp_labels": {"severity": "warning"}}]},
         {"eval_time": "80m", "alertname": "SyncdMailsFailed", "exp_alerts": []}]},
    {"name": "one of two web processes cannot read the database from 10 min",
     "interval": "1m",
     "input_series": [
         {"series": f"syncd_database_up{{{WEB}}}", "values": "1x30"},
         {"series": 'syncd_database_up{job="syncd", instance="web2:8080"}', "values": "1x9 0x20"}],
     "alert_rule_test": [
         {"eval_time": "12m", "alertname": "SyncdDatabaseUnreachable", "exp_alerts": []},
         {"eval_time": "20m", "alertname": "SyncdDatabaseUnreachable",
          "exp_alerts": [{"exp_labels": {"severity": "critical"}}]}]},
    {"name": "apply fails run after run; deliver failed twice and stays there",
     "interval": "1m",
     "input_series": [
         {"series": f'syncd_job_consecutive_failures{{{WEB}, job_name="apply"}}', "values": "0+1x40"},
         {"series": f'syncd_job_consecutive_failures{{{WEB}, job_name="deliver"}}', "values": "2x40"}],
     "alert_rule_test": [
         {"eval_time": "15m", "alertname": "SyncdJobFailing", "exp_alerts": []},
         {"eval_time": "25m", "alertname": "SyncdJobFailing",
          "exp_alerts": [{"exp_labels": {"severity": "warning", "job_name": "apply"}}]}]},
    {"name": "a review campaign's window ends with rights nobody can review: an hour later the alert fires",
     "interval": "1m",
     "input_series": [{"series": f"syncd_review_awaiting_reviewer_seconds{{{WEB}}}",
                       "values": "0x9 0+60x90 0x30"}],
     "alert_rule_test": [
         {"eval_time": "50m", "alertname": "SyncdReviewAwaitingReviewer", "exp_alerts": []},
         {"eval_time": "80m", "alertname": "SyncdReviewAwaitingReviewer",
          "exp_alerts": [{"exp_labels": {"severity": "warning"}}]},
         {"eval_time": "125m", "alertname": "SyncdReviewAwaitingReviewer", "exp_alerts": []}]},
    {"name": "a request waits for a decider from 10 min: half an hour later the alert fires; a decider clears it",
     "interval": "1m",
     "input_series": [{"series": f"syncd_awaiting_decider_oldest_seconds{{{WEB}}}",
                       "values": "0x9 950400+60x40 0x30"}],
     "alert_rule_test": [
         {"eval_time": "35m", "alertname": "SyncdRequestsAwaitingDecider", "exp_alerts": []},
         {"eval_time": "45m", "alertname": "SyncdRequestsAwaitingDecider",
          "exp_alerts": [{"exp_labels": {"severity": "warning"}}]},
         {"eval_time": "60m", "alertname": "SyncdRequestsAwaitingDecider", "exp_alerts": []}]},
    {"name": "the only central administrator leaves at 10 min",
     "interval": "1m",
     "input_series": [{"series": f"syncd_central_administrators{{{WEB}}}", "values": "1x9 0x30"}],
     "alert_rule_test": [
         {"eval_time": "20m", "alertname": "SyncdNoCentralAdministrator", "exp_alerts": []},
         {"eval_time": "30m", "alertname": "SyncdNoCentralAdministrator",
          "exp_alerts": [{"exp_labels": {"severity": "warning"}}]}]},
    {"name": "three accounts parked at 10 min and left there; no request ever parked",
     "interval": "1m",
     "input_series": [
         {"series": f'syncd_parked_items{{{WEB}, kind="accounts"}}', "values": "0x9 3x30"},
         {"series": f'syncd_parked_items{{{WEB}, kind="requests"}}', "values": "0x40"}],
     "alert_rule_test": [
         {"eval_time": "20m", "alertname": "SyncdItemsParked", "exp_alerts": []},
         {"eval_time": "30m", "alertname": "SyncdItemsParked",
          "exp_alerts": [{"exp_labels": {"severity": "warning", "kind": "accounts"}}]}]},
]


def test_the_alerts_fire_when_their_condition_holds_and_not_otherwise(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": CASES}, sort_keys=False))
    done = subprocess.run([promtool, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
