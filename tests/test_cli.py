"""The syncd command line, run in-process: config checking, schema, one pass, status."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from syncd.cli import main


@pytest.fixture
def config(cli_config):
    return cli_config


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


# -- syncd plan, against a real slapd -----------------------------------------------------------------

@pytest.fixture
def granted(config, slapd, ldap_layout, smtp_server, monkeypatch, capsys):
    """The shipped mappings provisioned in this test's own LDAP subtree, with one person holding
    two roles (one of them the only role of nobody else), all through the command line."""
    directory = config.parent / "mappings" / "directory.yaml"
    directory.write_text(directory.read_text().replace("dc=example,dc=org", ldap_layout.base_dn))
    smtp = smtp_server.settings()
    ldap = slapd.ldap_settings()                    # syncd's service account
    with config.open("a") as f:
        f.write(f"ldap:\n  urls: ['{slapd.url}']\n  bind_dn: '{ldap.bind_dn}'\n"
                f"smtp:\n  host: '{smtp.host}'\n  port: {smtp.port}\n")
    monkeypatch.setenv("SYNCD_LDAP__BIND_PASSWORD", ldap.bind_password.get_secret_value())

    def syncd(*argv) -> str:
        assert main(["-c", str(config), *argv]) == 0, capsys.readouterr()
        return capsys.readouterr().out.strip()

    syncd("db", "upgrade")
    syncd("once")                                   # provisioning: branches, groups, organisations
    syncd("account", "add", "a.charenne@lassuranceretraite.fr", "--given-name", "Aristide",
          "--family-name", "Charenne", "--organisation", "CARSAT-RA")
    syncd("account", "add", "admin@ucanss.fr", "--given-name", "Alice", "--family-name", "Admin",
          "--organisation", "UCANSS")
    syncd("decider", "add", "admin@ucanss.fr", "--central")
    ids = [syncd("submit", "habilitation", "a.charenne@lassuranceretraite.fr", role)
           for role in ("egap-guides-administration", "egap-guide-paie-lecteur")]
    syncd("once")                                   # intake: routed to the central administrator
    for request_id in ids:
        assert syncd("decide", request_id, "--accept", "--as", "admin@ucanss.fr").endswith("accepted")
    syncd("once")                                   # apply: both memberships in LDAP
    assert syncd("plan") == "no change in LDAP"
    return syncd


def _next_mappings(config, change) -> Path:
    folder = config.parent / "mappings-next"
    shutil.copytree(config.parent / "mappings", folder)
    apps = folder / "applications.yaml"
    apps.write_text(change(apps.read_text()))
    return folder


@pytest.mark.slapd
def test_plan_says_a_renamed_group_is_created_with_its_members_and_the_old_one_left(config, granted):
    def rename(text: str) -> str:
        assert text.count("group: app-egap-guides-administration\n") == 1
        return text.replace("group: app-egap-guides-administration\n", "group: app-egap-guides-administration-v2\n")

    folder = _next_mappings(config, rename)
    out = granted("plan", "--mappings", str(folder))
    assert len(out.splitlines()) == 1, out
    kind, key, detail = out.split(None, 2)
    assert (kind, key) == ("group_renamed", "egap-guides-administration")
    assert "'app-egap-guides-administration' becomes 'app-egap-guides-administration-v2'" in detail
    assert "its 1 members" in detail and "left in place" in detail
    changes = json.loads(granted("plan", "--mappings", str(folder), "--json"))
    assert [(c["kind"], c["key"], c["members"]) for c in changes] == [("group_renamed", "egap-guides-administration", 1)]
    assert granted("plan") == "no change in LDAP", "plan only reads: nothing was applied"


@pytest.mark.slapd
def test_plan_says_a_removed_role_leaves_its_group_and_members_in_ldap(config, granted):
    def remove(text: str) -> str:
        removed = re.sub(r"      - key: egap-guide-paie-lecteur\n(        .*\n)+", "", text)
        assert removed != text and "egap-guide-paie-lecteur" not in removed
        return removed

    folder = _next_mappings(config, remove)
    out = granted("plan", "--mappings", str(folder))
    assert len(out.splitlines()) == 1, out
    kind, key, detail = out.split(None, 2)
    assert (kind, key) == ("role_removed", "egap-guide-paie-lecteur")
    assert "group 'app-egap-guide-paie-lecteur' and its 1 members stay in LDAP" in detail
    changes = json.loads(granted("plan", "--mappings", str(folder), "--json"))
    assert [(c["kind"], c["key"], c["members"]) for c in changes] == [("role_removed", "egap-guide-paie-lecteur", 1)]
    assert "no longer managed" in changes[0]["detail"]


def test_syncd_desk_revoke_records_the_revocation_and_desk_link_prints_a_fresh_link(config, capsys, monkeypatch):
    from datetime import datetime, timezone

    from sqlalchemy import insert, select

    from syncd.store.db import make_engine, transaction
    from syncd.store.tables import accounts, audit_log, desk_revocations, organisations
    assert main(["-c", str(config), "db", "upgrade"]) == 0
    engine = make_engine(f"sqlite:///{config.parent / 'syncd.db'}")
    now = datetime.now(timezone.utc)
    with transaction(engine) as conn:
        conn.execute(insert(organisations).values(code="CARSAT-RA", name="CARSAT", branch="retraite", updated_at=now))
        conn.execute(insert(accounts).values(id="c1", email="c.martin@lassuranceretraite.fr", given_name="Claire",
                                             family_name="Martin", primary_organisation="CARSAT-RA", internal=True, status="active",
                                             created_at=now, updated_at=now))
    capsys.readouterr()

    assert main(["-c", str(config), "desk", "link", "c.martin@lassuranceretraite.fr"]) == 1   # no signing key
    assert "web.signing_key" in capsys.readouterr().err
    monkeypatch.setenv("SYNCD_WEB__SIGNING_KEY", "k" * 40)
    assert main(["-c", str(config), "desk", "link", "c.martin@lassuranceretraite.fr"]) == 0
    assert re.fullmatch(r"http://127\.0\.0\.1:8080/desk/open/\S+\n", capsys.readouterr().out)
    assert main(["-c", str(config), "desk", "revoke", "c.martin@lassuranceretraite.fr", "--reason", "parti"]) == 0
    assert main(["-c", str(config), "desk", "revoke", "nobody@example.org"]) == 1
    with transaction(engine, readonly=True) as conn:
        assert conn.execute(select(desk_revocations.c.account_id, desk_revocations.c.reason)).all() == [("c1", "parti")]
        assert conn.execute(select(audit_log.c.action).where(audit_log.c.target == "c1")).scalars().all() == [
            "desk_links_revoked"]
    engine.dispose()

def test_an_operator_opens_a_review_and_a_reviewer_answers_it_from_the_command_line(granted, config):
    applications = config.parent / "mappings" / "applications.yaml"
    applications.write_text(applications.read_text().replace(
        "        group: app-egap-guides-administration\n",
        "        group: app-egap-guides-administration\n        review: true\n"))
    assert granted("check-config").startswith("configuration valid")
    opened = granted("review", "start", "--org", "CARSAT-RA")
    assert opened.startswith("CARSAT-RA: campaign 1: 1 right(s), 1 reviewer(s) mailed, ends ")
    assert main(["-c", str(config), "review", "start", "--org", "CARSAT-RA"]) == 1     # one under way
    [line, total] = granted("review", "list", "--as", "admin@ucanss.fr").splitlines()
    assert "Aristide Charenne" in line and total == "1 right(s)"
    assert granted("review", "confirm", line.split()[0], "--as", "admin@ucanss.fr") == "1 right(s) confirmed"
    assert "campaign 1 open" in granted("status") and "0 unanswered (confirmed 1)" in granted("status")
