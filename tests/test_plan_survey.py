"""The plan survey plugin (tests/plan_survey.py) reports a whole-table read with its call site."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = '''
from syncd.store import accounts
from syncd.store.db import make_engine, transaction
from syncd.store.migrate import upgrade


def test_reads(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with transaction(engine) as conn:
        accounts.inactive_ids(conn)           # every account but the active ones: a whole read
        accounts.by_ids(conn, ["someone"])    # by key: not one
    engine.dispose()
'''


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "two xdist workers"])
def test_the_survey_lists_a_whole_read_once_with_the_syncd_function_that_sent_it(tmp_path, workers):
    (tmp_path / "test_probe.py").write_text(PROBE)
    report = tmp_path / "reads.txt"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.plan_survey", f"--plan-survey={report}",
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-c", "/dev/null", *workers,
                           str(tmp_path / "test_probe.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    text = report.read_text()
    ours = [block for block in text.split("\nSCAN ") if "syncd/store/accounts.py" in block]
    assert len(ours) == 1 and "inactive_ids" in ours[0] and "FROM accounts WHERE accounts.status != ?" in ours[0], text
    assert "accounts.id IN" not in text
