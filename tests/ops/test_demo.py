"""`make demo` stays true: the demo brings up its servers and a request reaches LDAP."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slapd

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_takes_a_request_from_the_queue_to_ldap_and_exits_when_asked(tmp_path):
    shutil.copytree(REPO / "mappings", tmp_path / "mappings")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    done = subprocess.run([sys.executable, "-m", "syncd", "demo", "--var", str(tmp_path / "var"),
                           "--exit-after-scenario"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "s after the decision" in done.stdout
    assert "memberOf:" in done.stdout
