"""The command line (``syncd reconcile / replay / adopt``) and the daemon's periodic job."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml
from sqlalchemy import select

from syncd import cli
from syncd.reconcile import job as reconcile_job
from syncd.reconcile.config import ReconcileConfig, config_from
from syncd.store.db import transaction
from syncd.store.tables import reconcile_runs
from tests.reconcile.helpers import Ldap, account, dn, grant, key, members

pytestmark = pytest.mark.slapd

ROLE = "accords-locaux-acces"


@pytest.fixture
def config_file(rt, tmp_path, monkeypatch, ldap_settings):
    folder = tmp_path / "mappings"
    folder.mkdir()
    (folder / "all.yaml").write_text(yaml.safe_dump(rt.mappings.model_dump(mode="json"), allow_unicode=True),
                                     encoding="utf-8")
    path = tmp_path / "syncd.yaml"
    path.write_text(yaml.safe_dump({
        "mappings": str(folder), "database": {"url": rt.settings.database.url},
        "ldap": {"urls": ldap_settings.urls, "bind_dn": ldap_settings.bind_dn}, "log": {"level": "warning"}}))
    monkeypatch.setenv("SYNCD_LDAP__BIND_PASSWORD", ldap_settings.bind_password.get_secret_value())
    return str(path)


def test_reconcile_prints_a_table_and_json_and_repairs(rt, config_file, capsys):
    a, b = account(rt, "alice"), account(rt, "bruno")
    grant(rt, a, ROLE)
    grant(rt, b, ROLE)
    Ldap(rt).remove_member(ROLE, dn(rt, a))

    assert cli.main(["-c", config_file, "reconcile", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing written" in out and "members to add" in out and "app-accords-locaux-acces" in out

    # 1 change out of 4 values is 25%: above the default 5%, refused (exit 1) without --force
    assert cli.main(["-c", config_file, "reconcile", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["state"] == "refused" and doc["guard"]["forceable"] and doc["groups"][0]["add"] == [dn(rt, a)]
    assert key(rt, a) not in members(rt, ROLE)

    assert cli.main(["-c", config_file, "reconcile", "--force", "--group", ROLE, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["state"] == "applied" and doc["applied"]["members_added"] == 1
    assert key(rt, a) in members(rt, ROLE)
    assert cli.main(["-c", config_file, "reconcile", "--account", "alice@lassuranceretraite.fr"]) == 0
    assert "no drift" in capsys.readouterr().out


def test_replay_and_adopt_on_the_command_line(rt, config_file, capsys):
    assert cli.main(["-c", config_file, "replay", "12345"]) == 1
    assert "no request 12345" in capsys.readouterr().err
    Ldap(rt).add_person("legacy", mail="legacy@lassuranceretraite.fr", givenName="Leg", sn="Acy",
                        syncdPrimaryOrganisation="o=CARSAT-RA," + rt.mappings.directory.organisations.branch + ","
                        + rt.mappings.directory.base_dn)
    assert cli.main(["-c", config_file, "adopt", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing recorded" in out and "nothing was removed" in out
    assert cli.main(["-c", config_file, "adopt", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accounts_adopted"] == 1


def test_the_daemon_job_reports_by_default_and_repairs_when_configured(rt, monkeypatch):
    a = account(rt, "alice")
    grant(rt, a, ROLE)
    Ldap(rt).remove_member(ROLE, dn(rt, a))
    assert reconcile_job.reconcile(rt) == 1              # report mode: the drift is counted, not written
    assert key(rt, a) not in members(rt, ROLE)

    monkeypatch.setattr(reconcile_job, "config_from", lambda s: ReconcileConfig(mode="repair", max_percent=None))
    assert reconcile_job.reconcile(rt) == 1
    assert key(rt, a) in members(rt, ROLE)
    with transaction(rt.engine) as conn:
        modes = [r["mode"] for r in conn.execute(select(reconcile_runs).order_by(reconcile_runs.c.id)).mappings()]
    assert modes == ["dry_run", "apply"]

    Ldap(rt).remove_member(ROLE, dn(rt, a))
    monkeypatch.setattr(reconcile_job, "config_from", lambda s: ReconcileConfig(mode="repair"))
    with pytest.raises(reconcile_job.ReconcileRefused, match="above 5.0%"):
        reconcile_job.reconcile(rt)
    monkeypatch.setattr(reconcile_job, "config_from", lambda s: ReconcileConfig(mode="off"))
    assert reconcile_job.reconcile(rt) == 0


def test_the_settings_section_is_read_when_present_with_defaults_otherwise():
    assert config_from(SimpleNamespace()) == ReconcileConfig()
    got = config_from(SimpleNamespace(reconcile={"mode": "repair", "max_changes": 50}))
    assert (got.mode, got.max_changes, got.max_percent) == ("repair", 50, 5.0)
    got = config_from(SimpleNamespace(reconcile=SimpleNamespace(interval_seconds=600)))
    assert got.interval_seconds == 600 and got.mode == "report"


def test_reconcile_since_last_checks_what_changed_since_the_last_run(rt, config_file, capsys):
    a = account(rt, "alice")
    capsys.readouterr()
    assert cli.main(["-c", config_file, "reconcile", "--since-last", "--json"]) == 0   # no cursor yet: full
    assert json.loads(capsys.readouterr().out)["scope"] == "full"
    Ldap(rt).replace(dn(rt, a), "telephoneNumber", ["+33 1 00 00 00 00"])
    assert cli.main(["-c", config_file, "reconcile", "--since-last", "--dry-run", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["scope"] == "incremental" and [x["account_id"] for x in doc["accounts"]] == [a]


def test_the_daemon_runs_the_incremental_job_on_its_own_interval(rt):
    from syncd.daemon import default_jobs
    jobs = {job.name: job for job in default_jobs(rt)}
    assert jobs["reconcile_incremental"].interval_seconds == rt.settings.reconcile.incremental_interval_seconds
    a = account(rt, "alice")
    reconcile_job.reconcile(rt)                      # report mode: clean, the cursor is set
    Ldap(rt).replace(dn(rt, a), "telephoneNumber", ["+33 1 00 00 00 00"])
    assert reconcile_job.reconcile_incremental(rt) == 1
    with transaction(rt.engine) as conn:
        last = conn.execute(select(reconcile_runs.c.summary).order_by(reconcile_runs.c.id.desc())).scalar()
    assert last["scope"] == "incremental"
