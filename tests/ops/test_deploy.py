"""``deploy/`` checked statically: nothing there can run in this test suite (no systemd as PID 1,
no container engine), so each file is parsed and held to what it promises.

* systemd units: ``systemd-analyze verify`` (when the tool is there) on copies whose syncd
  path points at this checkout's ``syncd``; every ExecStart* names a real ``syncd`` command;
  the sandboxing the operations guide lists is there; ``systemd-analyze security`` rates it.
* the container image and compose file: base image, non-root user, every file they copy or
  mount exists, every command is a real ``syncd`` command, secrets are files.
* LDIFs (OpenLDAP production, 389-DS) parse as change records, with only documented
  placeholders.
* the Grafana dashboard and the alert rules use exactly the metric names syncd exports.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from syncd.devslapd import parse_change_records

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNITS = ("syncd.service", "syncd-web.service")

# The metric names of the /metrics endpoint (issue #6). Histograms expose _bucket/_sum/_count.
METRICS = {
    "syncd_requests": "gauge",
    "syncd_oldest_pending_seconds": "gauge",
    "syncd_decisions_total": "counter",
    "syncd_tacit_acceptances_total": "counter",
    "syncd_outbox_backlog": "gauge",
    "syncd_ldap_write_errors_total": "counter",
    "syncd_ldap_write_seconds": "histogram",
}


def _syncd_commands() -> set[str]:
    from syncd.cli import _parser
    parser = _parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return set(sub.choices)


# -- systemd ---------------------------------------------------------------------------------------

def _unit(name: str) -> dict[str, list[str]]:
    """``Section.Key`` → values, in order (systemd allows repeated keys)."""
    values: dict[str, list[str]] = {}
    section = None
    lines = (DEPLOY / "systemd" / name).read_text().splitlines()
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return values


@pytest.mark.parametrize("name", UNITS)
def test_units_run_real_syncd_commands(name):
    unit = _unit(name)
    commands = _syncd_commands()
    execs = unit["Service.ExecStart"] + unit.get("Service.ExecStartPre", [])
    for line in execs:
        argv = shlex.split(line)
        assert argv[0] == "/opt/syncd/bin/syncd", line
        assert argv[1] in commands, f"{name}: `syncd {argv[1]}` is not a syncd command"
    assert unit["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]


@pytest.mark.parametrize("name", UNITS)
def test_units_are_sandboxed_as_the_operations_guide_says(name):
    unit = _unit(name)
    expected = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "CapabilityBoundingSet": "", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "ReadWritePaths": "/var/lib/syncd", "User": "syncd",
    }
    for key, value in expected.items():
        assert unit.get(f"Service.{key}") == [value], key
    assert "@system-service" in unit["Service.SystemCallFilter"]
    assert unit["Service.EnvironmentFile"] == ["-/etc/syncd/syncd.env"]
    creds = dict(c.split(":", 1) for c in unit["Service.LoadCredential"])
    assert "ldap-bind-password" in creds
    env = dict(e.split("=", 1) for e in unit["Service.Environment"])
    assert env["SYNCD_LDAP__BIND_PASSWORD_FILE"] == "%d/ldap-bind-password", "secrets through credentials"
    assert not any("PASSWORD=" in e or "KEY=" in e for e in unit["Service.Environment"]), "no secret inline"
    assert unit["Service.RestartPreventExitStatus"] == ["1 2"], "a configuration problem does not loop"


def _units_pointing_here(tmp_path: Path) -> list[Path]:
    syncd = Path(sys.executable).parent / "syncd"
    if not syncd.exists():
        pytest.skip("this checkout's syncd script is not installed next to the interpreter")
    copies = []
    for name in UNITS:
        copy = tmp_path / name
        copy.write_text((DEPLOY / "systemd" / name).read_text().replace("/opt/syncd/bin/syncd", str(syncd)))
        copies.append(copy)
    return copies


def test_systemd_analyze_verifies_the_units(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (apt-get install -y systemd)")
    done = subprocess.run([tool, "verify", *map(str, _units_pointing_here(tmp_path))],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    noise = [l for l in done.stderr.splitlines() if "syncd" in l]
    assert not noise, done.stderr


def test_systemd_analyze_rates_the_sandbox_ok(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (apt-get install -y systemd)")
    for copy in _units_pointing_here(tmp_path):
        done = subprocess.run([tool, "security", "--offline=yes", str(copy)], capture_output=True, text=True,
                              timeout=60)
        if "--offline" in done.stderr and "unrecognized" in done.stderr:
            pytest.skip("this systemd-analyze cannot rate a unit offline (systemd < 250)")
        found = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout + done.stderr)
        assert found, done.stdout + done.stderr
        assert float(found.group(1)) <= 2.0, f"{copy.name}: exposure {found.group(1)}"
        assert "Unknown key" not in done.stderr, done.stderr


# -- the container image and compose ----------------------------------------------------------------

def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    return [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l.strip() else "")
            for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]


def test_the_image_is_python_3_11_slim_runs_as_a_user_and_copies_existing_files():
    steps = _instructions(DEPLOY / "Containerfile")
    froms = [arg for op, arg in steps if op == "FROM"]
    assert all(f.startswith("python:3.11-slim") for f in froms), froms
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the last USER is not root"
    assert [arg for op, arg in steps if op == "ENTRYPOINT"] == ['["syncd"]']
    assert [arg for op, arg in steps if op == "CMD"] == ['["run"]']
    for op, arg in steps:
        if op == "COPY" and "--from=" not in arg:
            *sources, _ = arg.split()
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"


def test_the_openldap_image_copies_existing_files():
    for op, arg in _instructions(DEPLOY / "openldap" / "container" / "Containerfile"):
        if op == "COPY":
            *sources, _ = arg.split()
            for source in sources:
                assert (REPO / source).exists(), source
    done = subprocess.run(["sh", "-n", str(DEPLOY / "openldap" / "container" / "entrypoint.sh")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_compose_has_the_servers_and_syncd_and_every_file_it_names_exists():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"ldap", "postgres", "syncd", "web", "migrate"} <= set(services)
    commands = _syncd_commands()
    for name in ("syncd", "web", "migrate"):
        service = services[name]
        assert service["command"][0] in commands, f"{name}: syncd {service['command'][0]}"
        assert service["build"]["dockerfile"] == "deploy/Containerfile"
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert services["syncd"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name, service in services.items():
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
        for key, value in (service.get("environment") or {}).items():
            assert not re.search(r"PASSWORD$|KEY$|SECRET", key), f"{name}: {key} must be a *_FILE secret"
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./compose/secrets/")
    settings = yaml.safe_load((DEPLOY / "compose" / "syncd.yaml").read_text())
    from syncd.settings import _secrets_in_file
    assert _secrets_in_file(settings) == []


def test_the_example_settings_are_valid_settings_without_secrets(tmp_path):
    from syncd.settings import Settings, load_settings
    path = tmp_path / "syncd.yaml"
    path.write_text((DEPLOY / "syncd.example.yaml").read_text())
    settings = load_settings(path, environ={})
    assert settings.ldap.tls.verify and settings.ldap.tls.mode == "ldaps"
    listed = yaml.safe_load((DEPLOY / "syncd.example.yaml").read_text())
    for section, model in Settings.model_fields.items():
        if section in ("ldap", "smtp", "database", "jobs", "log", "web"):
            fields = set(model.annotation.model_fields) - {"bind_password", "password", "clients", "signing_key"}
            missing = fields - set(listed[section])
            assert not missing, f"{section}: the example does not show {sorted(missing)}"


def test_the_compose_settings_are_valid_settings(tmp_path):
    from syncd.settings import load_settings
    path = tmp_path / "syncd.yaml"
    path.write_text((DEPLOY / "compose" / "syncd.yaml").read_text())
    settings = load_settings(path, environ={})
    assert settings.database.url.startswith("postgresql+psycopg://")


# -- LDIF ---------------------------------------------------------------------------------------------

OPENLDAP_PLACEHOLDERS = {"@SUFFIX@", "@BASE@", "@SYNCD_PASSWORD_HASH@", "@APP_PASSWORD_HASH@", "@PROVIDER1_URL@",
                         "@PROVIDER2_URL@", "@REPLICATOR_PASSWORD@", "@CA_FILE@", "@CERT_FILE@", "@KEY_FILE@"}
DS389_PLACEHOLDERS = {"@SUFFIX@", "@BASE@", "@SYNCD_PASSWORD@", "@APP_PASSWORD@"}


@pytest.mark.parametrize("folder, placeholders", [
    (DEPLOY / "openldap" / "production", OPENLDAP_PLACEHOLDERS),
    (DEPLOY / "389ds", DS389_PLACEHOLDERS),
])
def test_ldif_files_parse_and_use_only_documented_placeholders(folder, placeholders):
    files = sorted(folder.glob("*.ldif"))
    assert files
    readme = (folder / "README.md").read_text()
    for path in files:
        text = path.read_text()
        records = parse_change_records(text)
        assert records, path.name
        found = {m for line in text.splitlines() if not line.startswith("#") for m in re.findall(r"@[A-Z0-9_]+@", line)}
        assert found <= placeholders, f"{path.name}: undocumented {found - placeholders}"
        for placeholder in found:
            assert placeholder in readme or placeholder in text.split("\n\n")[0], \
                f"{path.name}: {placeholder} is not explained"
        for dn, kind, body in records:
            assert kind in ("add", "modify"), (path.name, dn)


def test_the_389ds_plugins_are_the_memberof_and_referential_integrity_ones():
    records = parse_change_records((DEPLOY / "389ds" / "10-plugins.ldif").read_text())
    dns = {dn.lower() for dn, _, _ in records}
    assert dns == {"cn=memberof plugin,cn=plugins,cn=config", "cn=referential integrity postoperation,cn=plugins,cn=config"}
    text = (DEPLOY / "389ds" / "10-plugins.ldif").read_text()
    assert "memberOfGroupAttr: member" in text and "referint-membership-attr: member" in text
    assert (REPO / "schema" / "389ds" / "99syncd.ldif").is_file()


# -- Grafana and Prometheus -----------------------------------------------------------------------------

def _metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b(syncd_[a-z_]+)", expr))
    base = set()
    for name in names:
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in METRICS:
                name = name[: -len(suffix)]
        base.add(name)
    return base


def test_the_grafana_dashboard_shows_every_metric_and_only_known_ones():
    dashboard = json.loads((DEPLOY / "grafana" / "syncd.json").read_text())
    assert dashboard["uid"] and dashboard["title"] == "syncd"
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(_metric_names(e) for e in exprs))
    assert used == set(METRICS), f"unknown: {used - set(METRICS)}, missing: {set(METRICS) - used}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for expr in exprs:
        assert expr.count("(") == expr.count(")"), expr
        for name in _metric_names(expr):
            if METRICS[name] == "counter":
                assert re.search(rf"(rate|increase)\({name}", expr), f"a counter is rated: {expr}"
            if METRICS[name] == "histogram":
                assert f"{name}_bucket" in expr or f"{name}_count" in expr, expr


def test_the_alert_rules_use_known_metrics():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "syncd-alerts.yaml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert {"SyncdTacitSweepLate", "SyncdLdapWriteErrors", "SyncdOutboxBacklog"} <= {a["alert"] for a in alerts}
    for alert in alerts:
        assert _metric_names(alert["expr"]) <= set(METRICS), alert["alert"]
        assert alert["labels"]["severity"] in ("critical", "warning", "info")
    promtool = shutil.which("promtool")
    if promtool:
        done = subprocess.run([promtool, "check", "rules", str(DEPLOY / "prometheus" / "syncd-alerts.yaml")],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
