"""The syncd command line, run in-process: config checking, schema, one pass, status."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from syncd.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def config(tmp_path, monkeypatch):
    shutil.copytree(REPO / "mappings", tmp_path / "mappings")
    path = tmp_path / "syncd.yaml"
    path.write_text("mappings: mappings\ndatabase:\n  url: sqlite:///syncd.db\nlog:\n  level: warning\n")
    monkeypatch.chdir(tmp_path)
    for name in list(__import__("os").environ):
        if name.startswith("SYNCD_"):
            monkeypatch.delenv(name)
    return path


def test_check_config_accepts_the_shipped_mappings(config, capsys):
    assert main(["-c", str(config), "check-config"]) == 0
    assert "configuration valid" in capsys.readouterr().out


def test_check_config_names_the_file_and_line_of_a_typo_and_exits_non_zero(config, capsys):
    apps = config.parent / "mappings" / "applications.yaml"
    lines = apps.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if "tacit_delay_days:" in line and not line.lstrip().startswith("#"))
    lines[index] = lines[index].replace("tacit_delay_days", "tacit_dealy_days")
    apps.write_text("\n".join(lines) + "\n")
    assert main(["-c", str(config), "check-config"]) == 1
    err = capsys.readouterr().err
    assert f"applications.yaml:{index + 1}:" in err
    assert "tacit_delay_days" in err   # the suggestion


def test_the_daemon_refuses_to_start_on_an_invalid_config(config, capsys):
    (config.parent / "mappings" / "organisations.yaml").write_text("organisations: [{code: '', name: x}]\n")
    assert main(["-c", str(config), "run"]) == 1
    assert "organisations.yaml" in capsys.readouterr().err


def test_the_daemon_refuses_to_start_on_a_database_that_is_not_upgraded(config, capsys):
    assert main(["-c", str(config), "once"]) == 1
    assert "syncd db upgrade" in capsys.readouterr().err


def test_db_upgrade_then_status_reports_an_empty_queue(config, capsys):
    assert main(["-c", str(config), "db", "upgrade"]) == 0
    assert main(["-c", str(config), "status"]) == 0
    out = capsys.readouterr().out
    assert "pending            0" in out and "oldest pending request: -" in out


def test_once_with_ldap_down_reports_the_failed_jobs_and_exits_with_the_temporary_code(config, capsys, monkeypatch):
    monkeypatch.setenv("SYNCD_LDAP__URLS", '["ldap://127.0.0.1:9"]')
    monkeypatch.setenv("SYNCD_LDAP__TIMEOUT_SECONDS", "1")
    assert main(["-c", str(config), "db", "upgrade"]) == 0
    assert main(["-c", str(config), "once"]) == 3
    out = capsys.readouterr().out
    assert "provision  failed" in out and "intake     0" in out
    assert main(["-c", str(config), "status", "--json"]) == 0
    assert '"healthy": false' in capsys.readouterr().out
