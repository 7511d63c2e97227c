"""The benchmarks still run, at a toy size: a refactoring that breaks them shows up here, not on
the day someone needs the figures. Nothing here looks at a figure: benchmarks are not tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slapd, pytest.mark.long(75)]


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _rows(out: str, first_cell: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()
            if line.startswith(f"| {first_cell} |")]


def test_the_directory_benchmark_runs_every_measure_at_a_toy_size():
    out = _run("-m", "bench", "--sizes", "300", "--no-postgres", "--requests", "2000", "--due", "200",
               "--apply", "100", "--raw-adds", "200", "--no-readme")
    for measure in ("raw ldap3 batched member adds", "apply, SQLite", "reconcile, no drift, SQLite",
                    "reconcile, 1% drift repaired, SQLite", "desk, 500 pending requests rendered, SQLite", "tacit sweep, SQLite: 2,000 requests, 200 due"):
        assert measure in out, f"{measure!r} missing from:\n{out}"


def test_the_web_benchmark_runs_every_measure_at_a_toy_size_with_every_call_answered():
    out = _run("bench/web_decisions.py", "--engines", "sqlite", "--workers", "1", "--decisions", "200",
               "--ldap-samples", "3", "--bursts", "1", "--burst-size", "5")
    throughput, with_daemon = _rows(out, "sqlite")[:2]
    assert throughput[3] == "200" and throughput[-1] == "0"      # 200 decisions, none answered otherwise than 200
    assert with_daemon[3] == "200" and with_daemon[-1] == "0"
    latencies = _rows(out, "sqlite")[2:]
    assert [row[1] for row in latencies] == ["one at a time", "bursts of 5"]
    assert all(row[-1] != "inf" for row in latencies), "every decision reached LDAP"
