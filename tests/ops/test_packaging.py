"""Packaging edges: what `make demo` installs, `syncd demo` from a wheel, and the container files
checked without a container engine (none runs on the project's machines).

* ``make -n`` shows the demo installing the package alone and the tests installing the extras.
* A wheel built with ``pip wheel --no-deps`` from a copy of the source tree, installed into a
  throwaway venv (the dependencies come from this interpreter's site-packages through a ``.pth``
  file, as ``--system-site-packages`` would give them), runs ``syncd demo`` to the end; without
  its data files, or without slapd, it stops with one sentence on stderr and no traceback.
* ``deploy/compose.yaml`` validates against the compose-spec schema (vendored by the
  check-jsonschema package); its web service gets the API clients ``make-secrets.sh`` writes.
* The Containerfile's entrypoint is the console script and its command a syncd subcommand; its
  build stage copies every data file the wheel declares.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
DATA_FILES = [source for sources in PYPROJECT["tool"]["setuptools"]["data-files"].values() for source in sources]


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without syncd's settings nor a PYTHONPATH that would shadow the wheel."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_") and k != "PYTHONPATH"}
    env.update(extra)
    return env


# -- make --------------------------------------------------------------------------------------------

def _make_dry_run(target: str, tmp_path: Path) -> str:
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    done = subprocess.run(["make", "-n", "-C", str(REPO), target, f"VENV={tmp_path / 'venv'}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_demo_installs_the_package_without_the_test_extras(tmp_path):
    demo = _make_dry_run("demo", tmp_path)
    assert "pip install --quiet -e .\n" in demo
    assert "[test]" not in demo
    assert "pip install --quiet -e '.[test]'" in _make_dry_run("test", tmp_path)


# -- syncd demo from a wheel -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A throwaway venv holding syncd installed from its wheel (not editable)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "syncd", source / "syncd", ignore=ignore)
    for data_file in DATA_FILES:
        (source / data_file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / data_file, source / data_file)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(work / "dist"),
                            str(source)], capture_output=True, text=True, timeout=300, env=_clean_env())
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheel = next((work / "dist").glob("syncd-*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                                "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True,
                               timeout=300, env=_clean_env())
    assert installed.returncode == 0, installed.stderr[-3000:]
    site_packages = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    (Path(site_packages) / "syncd-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run([python, "-c", "import syncd; print(syncd.__file__)"], capture_output=True, text=True,
                           env=_clean_env(), cwd=work)
    assert where.stdout.startswith(str(venv)), f"syncd must come from the wheel, not {where.stdout or where.stderr}"
    return venv


def _demo(venv: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "syncd"), "demo", "--var", str(tmp_path / "var"),
                           "--exit-after-scenario"], cwd=tmp_path, capture_output=True, text=True, timeout=180,
                          env=_clean_env(**env))


@pytest.mark.slapd
def test_syncd_demo_runs_from_an_installed_wheel(wheel_venv, tmp_path):
    if shutil.which("slapd") is None and not Path("/usr/sbin/slapd").exists():
        pytest.skip("no slapd: apt-get install -y slapd ldap-utils")
    done = _demo(wheel_venv, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "s after the decision" in done.stdout and "memberOf:" in done.stdout


@pytest.mark.parametrize("what_is_missing, env", [
    ("the wheel's data files", {}),
    ("slapd", {"SYNCD_SLAPD": "/nonexistent/slapd"}),
])
def test_syncd_demo_from_a_wheel_stops_with_one_sentence_when_something_is_missing(
        wheel_venv, tmp_path, what_is_missing, env):
    if what_is_missing == "the wheel's data files":
        share = wheel_venv / "share" / "syncd"
        hidden = wheel_venv / "share" / "syncd.hidden"
        share.rename(hidden)
    try:
        done = _demo(wheel_venv, tmp_path, **env)
    finally:
        if what_is_missing == "the wheel's data files":
            hidden.rename(share)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("syncd demo cannot start its OpenLDAP server:"), done.stderr


# -- compose -------------------------------------------------------------------------------------------

def _check_compose(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(path)], capture_output=True, text=True, timeout=120)


def test_the_compose_file_follows_the_compose_specification(tmp_path):
    done = _check_compose(DEPLOY / "compose.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "compose.yaml"       # the check bites: a condition compose does not know
    broken.write_text((DEPLOY / "compose.yaml").read_text().replace("service_completed_successfully",
                                                                    "service_finished", 1))
    assert _check_compose(broken).returncode != 0


def test_the_compose_web_service_gets_the_api_clients_make_secrets_writes(tmp_path):
    from syncd.settings import load_settings
    from syncd.web.auth import load_clients

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    web = compose["services"]["web"]
    clients_file = web["environment"]["SYNCD_WEB__CLIENTS_FILE"]
    assert clients_file.startswith("/run/secrets/")
    secret = clients_file.removeprefix("/run/secrets/")
    assert secret in web["secrets"] and secret in compose["secrets"]
    assert web["environment"]["SYNCD_LDAP__BIND_PASSWORD_FILE"] == "/run/secrets/ldap-syncd-password"
    assert set(compose["services"]["syncd"]["secrets"]) <= set(web["secrets"])

    (tmp_path / "compose").mkdir()
    script = shutil.copy(DEPLOY / "compose" / "make-secrets.sh", tmp_path / "compose")
    subprocess.run(["sh", script], check=True, capture_output=True, timeout=30)
    for name, declared in compose["secrets"].items():
        assert (tmp_path / declared["file"]).is_file(), f"make-secrets.sh does not write {name}"
    written = tmp_path / compose["secrets"][secret]["file"]
    settings = load_settings(DEPLOY / "compose" / "syncd.yaml",
                             environ={"SYNCD_WEB__CLIENTS_FILE": str(written)})
    assert set(load_clients(settings)) == {"portal"}
    again = subprocess.run(["sh", script], check=True, capture_output=True, text=True, timeout=30)
    assert again.stdout == "", "a second run keeps every secret"


# -- Containerfile --------------------------------------------------------------------------------------

def _stages(path: Path) -> list[list[tuple[str, str]]]:
    from tests.ops.test_deploy import _instructions
    stages: list[list[tuple[str, str]]] = []
    for op, arg in _instructions(path):
        if op == "FROM":
            stages.append([])
        stages[-1].append((op, arg))
    return stages


def test_the_image_runs_the_console_script_with_a_real_subcommand():
    from tests.ops.test_deploy import _syncd_commands
    steps = _stages(DEPLOY / "Containerfile")[-1]
    entrypoint = [yaml.safe_load(arg) for op, arg in steps if op == "ENTRYPOINT"]
    command = [yaml.safe_load(arg) for op, arg in steps if op == "CMD"]
    assert entrypoint == [["syncd"]] and PYPROJECT["project"]["scripts"]["syncd"] == "syncd.cli:main"
    assert command and command[-1][0] in _syncd_commands()


def test_the_image_build_stage_copies_every_data_file_of_the_wheel():
    build = _stages(DEPLOY / "Containerfile")[0]
    workdir = Path([arg for op, arg in build if op == "WORKDIR"][-1])
    copied = []
    for op, arg in build:
        if op == "COPY":
            *sources, target = arg.split()
            for source in sources:
                destination = workdir / target
                copied.append(destination / Path(source).name if target.endswith("/") else destination)
    for data_file in DATA_FILES:
        inside = workdir / data_file
        assert any(inside == c or c in inside.parents for c in copied), f"the build stage does not copy {data_file}"
