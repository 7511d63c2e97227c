"""The end-of-run summary (tests/run_summary.py) says why a kind of tests was skipped, in one
process and when pytest-xdist's workers ran the fixtures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = '''
import pytest

from tests import run_summary


@pytest.fixture
def server():
    run_summary.tests_skipped("Imaginary server tests skipped", "IMAGINARY SERVER TESTS NOT RUN: not installed")
    run_summary.note("Imaginary server", "started in 1.5 s")
    pytest.skip("not installed")


def test_one(server):
    pass


def test_two(server):
    pass
'''


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "two xdist workers"])
def test_a_skipped_kind_of_tests_gets_a_red_section_of_its_own_at_the_end(tmp_path, workers):
    (tmp_path / "test_probe.py").write_text(PROBE)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.run_summary", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), "-c", "/dev/null", *workers, str(tmp_path / "test_probe.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    titles = [i for i, line in enumerate(lines) if "Imaginary server tests skipped" in line and line.startswith("!!")]
    assert len(titles) == 1, done.stdout
    assert lines[titles[0] + 1] == "IMAGINARY SERVER TESTS NOT RUN: not installed"
    assert any(line.startswith("Imaginary server") and line.endswith(": started in 1.5 s") for line in lines), done.stdout
