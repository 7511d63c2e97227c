"""``deploy/`` checked statically: nothing there can run in this test suite (no systemd as PID 1,
no container engine), so each file is parsed and held to what it promises.

* systemd units: ``systemd-analyze verify`` (when the tool is there) on copies whose syncd
  path points at this checkout's ``syncd``; every ExecStart* names a real ``syncd`` command;
  the sandboxing the operations guide lists is there; ``systemd-analyze security`` rates it.
* the container image and compose file: base image, non-root user, every file they copy or
  mount exists, every command is a real ``syncd`` command, secrets are files.
* LDIFs (OpenLDAP production, 389-DS) parse as change records, with only documented
  placeholders.
* the Grafana dashboard and the alert rules use only metric names and labels syncd exports
  (collected from the code's prometheus_client registries, not listed here), the operations
  guide's metric table matches them, and ``promtool`` checks the rules when it is installed.
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

from tests.ops.ldif import parse_change_records

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNITS = ("syncd.service", "syncd-web.service")

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
    if name == "syncd.service":
        assert unit["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"], "SIGHUP reloads the mappings"
    else:
        assert "Service.ExecReload" not in unit, "uvicorn exits on SIGHUP: syncd web has no reload"


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
        for key in (service.get("environment") or {}):
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
        if section in ("ldap", "smtp", "database", "jobs", "log", "web", "desk"):
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
        for dn, kind, _body in records:
            assert kind in ("add", "modify"), (path.name, dn)


def test_the_389ds_plugins_are_memberof_referential_integrity_and_the_change_stamps_usn():
    records = parse_change_records((DEPLOY / "389ds" / "10-plugins.ldif").read_text())
    dns = {dn.lower() for dn, _, _ in records}
    assert dns == {"cn=memberof plugin,cn=plugins,cn=config", "cn=referential integrity postoperation,cn=plugins,cn=config",
                   "cn=usn,cn=plugins,cn=config"}
    text = (DEPLOY / "389ds" / "10-plugins.ldif").read_text()
    assert "memberOfGroupAttr: member" in text and "referint-membership-attr: member" in text
    assert (REPO / "schema" / "389ds" / "99syncd.ldif").is_file()


# -- Grafana and Prometheus -----------------------------------------------------------------------------

# Labels every series gets from Prometheus itself, whatever the code exports.
TARGET_LABELS = {"job", "instance"}


def _exported_metrics(tmp_path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """Every series name syncd exports → (kind, label names), found in the code itself.

    The daemon's series are module-level prometheus_client metrics (default registry): every
    ``syncd`` module is imported and its metrics collected. The web process's are in a
    ``WebMetrics`` registry, whose database gauges are collected from an SQLite database with one
    job run recorded (so that the per-job gauges carry their labels). A counter ``x`` is exposed
    as ``x_total``; a histogram as ``x_bucket``, ``x_sum`` and ``x_count`` (named ``x`` here).
    """
    import importlib
    import pkgutil
    from datetime import datetime, timezone

    from prometheus_client import REGISTRY
    from prometheus_client.metrics import MetricWrapperBase
    from sqlalchemy import insert

    import syncd
    from syncd.store.db import make_engine
    from syncd.store.tables import job_runs, metadata, organisations, review_campaigns
    from syncd.web.metrics import WebMetrics

    def exposed(name: str, kind: str) -> str:
        return f"{name}_total" if kind == "counter" else name

    found: dict[str, tuple[str, frozenset[str]]] = {}
    modules = [importlib.import_module(m.name) for m in pkgutil.walk_packages(syncd.__path__, "syncd.")
               if ".migrations" not in m.name and not m.name.endswith("__main__")]
    wrappers = [v for module in modules for v in vars(module).values() if isinstance(v, MetricWrapperBase)]

    now = datetime(2026, 11, 27, tzinfo=timezone.utc)
    engine = make_engine(f"sqlite:///{tmp_path / 'metrics.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(job_runs).values(job="tacit", worker="w", last_started_at=now, last_ok_at=now,
                                             consecutive_failures=0))
        # A review campaign under way, so that the per-organisation review gauges carry their labels.
        conn.execute(insert(organisations).values(code="CARSAT-RA", name="CARSAT", branch="retraite", updated_at=now))
        conn.execute(insert(review_campaigns).values(organisation_code="CARSAT-RA", state="open", opened_at=now,
                                                     opened_by="operator", closes_at=now, unanswered="keep"))
    web = WebMetrics(lambda: engine, lambda: now)
    wrappers += [v for v in vars(web).values() if isinstance(v, MetricWrapperBase)]
    for w in wrappers:
        found[exposed(w._name, w._type)] = (w._type, frozenset(w._labelnames))
    for family in web.registry.collect():
        if exposed(family.name, family.type) not in found:
            labels = {k for s in family.samples for k in s.labels} - {"le"}
            found[exposed(family.name, family.type)] = (family.type, frozenset(labels))
    engine.dispose()
    registered = {exposed(f.name, f.type) for f in REGISTRY.collect() if f.name.startswith("syncd_")}
    assert registered <= set(found), f"registered but not found as module metrics: {registered - set(found)}"
    return found


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[str, frozenset[str]]]:
    metrics = _exported_metrics(tmp_path_factory.mktemp("metrics"))
    # What the code is known to export (a sanity check of the collection above, not the list).
    assert {"syncd_job_seconds", "syncd_job_items_total", "syncd_ldap_write_seconds", "syncd_requests",
            "syncd_database_up", "syncd_job_consecutive_failures"} <= set(metrics)
    return metrics


def _metric_names(expr: str, exported: dict) -> set[str]:
    base = set()
    for name in re.findall(r"\b(syncd_[a-z_]+)", expr):
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and exported.get(name[: -len(suffix)], ("",))[0] == "histogram":
                name = name[: -len(suffix)]
        base.add(name)
    return base


def _check_expr(expr: str, exported: dict) -> set[str]:
    """Assert an expression names only exported series and labels; return the series' names."""
    names = _metric_names(expr, exported)
    unknown = names - set(exported)
    assert not unknown, f"not exported by syncd: {sorted(unknown)} in {expr}"
    assert expr.count("(") == expr.count(")"), expr
    labels = set().union(*(exported[n][1] for n in names)) if names else set()
    for selector in re.finditer(r"\b(syncd_[a-z_]+)\{([^}]*)\}", expr):
        metric = _metric_names(selector.group(1), exported).pop()
        for label in re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", selector.group(2)):
            assert label in exported[metric][1] | TARGET_LABELS, f"{metric} has no label {label!r}: {expr}"
    for clause in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        for label in filter(None, (part.strip() for part in clause.split(","))):
            # Never the scrape job: syncd's own per-job label is job_name.
            assert label in labels | {"le", "instance"}, f"by ({label}): not a label of {sorted(names)}: {expr}"
    for name in names:
        kind = exported[name][0]
        if kind == "counter":
            assert re.search(rf"(rate|increase)\({name}", expr), f"a counter is rated: {expr}"
        if kind == "histogram":
            assert f"{name}_bucket" in expr or f"{name}_count" in expr, expr
    return names


def _dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "syncd.json").read_text())


def _alerts() -> list[dict]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "syncd-alerts.yaml").read_text())
    return [r for g in rules["groups"] for r in g["rules"]]


def _operations_guide_metrics() -> dict[str, set[str]]:
    """The metric table of docs/operations.md, section 12: series name → the labels it shows."""
    text = (REPO / "docs" / "operations.md").read_text()
    section = text[text.index("## 12."):]
    section = section[: section.index("\n## ", 1)]
    table = {}
    for row in section.splitlines():
        cells = row.split("|")
        if len(cells) > 2 and "syncd_" in cells[1]:
            for name, labels in re.findall(r"`(syncd_[a-z_]+)(?:\{([a-z_,]*)\})?`", cells[1]):
                table[name] = set(filter(None, labels.split(",")))
    assert table, "the metric table of docs/operations.md section 12"
    return table


def test_the_grafana_dashboard_uses_only_exported_metrics_and_labels(exported):
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"] == "syncd"
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if "syncd_" in str(v.get("query", ""))]
    used = set().union(*(_check_expr(e, exported) for e in exprs))
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    # The daemon's per-job series, as the operations guide says the dashboard shows them.
    for name in ("syncd_job_seconds", "syncd_job_items_total", "syncd_job_failures_total"):
        assert name in used, f"the dashboard does not show {name}"
        assert any(name in e and "by (job_name" in e for e in exprs), f"{name} is not shown per job_name"


def test_the_alert_rules_use_only_exported_metrics_and_labels(exported):
    alerts = _alerts()
    names = {a["alert"] for a in alerts}
    assert {"SyncdTacitSweepLate", "SyncdLdapWriteErrors", "SyncdOutboxBacklog", "SyncdMailsFailed",
            "SyncdDatabaseUnreachable", "SyncdJobFailing"} <= names
    assert len(names) == len(alerts), "alert names are unique"
    for alert in alerts:
        _check_expr(alert["expr"], exported)
        assert alert["labels"]["severity"] in ("critical", "warning", "info")
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        kept = {label.strip() for clause in re.findall(r"\bby\s*\(([^)]*)\)", alert["expr"])
                for label in clause.split(",")}
        for label in re.findall(r"\$labels\.(\w+)", json.dumps(alert["annotations"])):
            assert label in kept, f"{alert['alert']}: $labels.{label} does not survive the aggregation"


def test_the_operations_guide_lists_exported_metrics_and_the_dashboard_or_alerts_use_them(exported):
    used = set()
    for expr in [t["expr"] for p in _dashboard()["panels"] for t in p["targets"]] + [a["expr"] for a in _alerts()]:
        used |= _metric_names(expr, exported)
    for name, labels in _operations_guide_metrics().items():
        assert name in exported, f"docs/operations.md lists {name}, which syncd does not export"
        assert labels == set(exported[name][1]), f"{name}: the guide says {{{sorted(labels)}}}, " \
                                                 f"the code {sorted(exported[name][1])}"
        assert name in used, f"docs/operations.md says the dashboard and alerts use {name}; they do not"


def _promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return tool


def test_promtool_checks_the_alert_rules():
    done = subprocess.run([_promtool(), "check", "rules", str(DEPLOY / "prometheus" / "syncd-alerts.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_parses_every_dashboard_expression(tmp_path):
    tool = _promtool()
    rules = [{"record": f"dashboard:panel{p['id']}:{t['refId']}",
              "expr": t["expr"].replace("$__rate_interval", "5m").replace("$job", ".*")}
             for p in _dashboard()["panels"] for t in p["targets"]]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
