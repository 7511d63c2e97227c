"""``syncd web`` serves the app: a real process, configured like an operator would, on a free port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from syncd.cli import _parser
from syncd.store.migrate import upgrade
from syncd.web.auth import signed_headers
from tests.fixtures_smtp import free_port

REPO = Path(__file__).resolve().parents[2]


def test_the_command_line_knows_the_web_command():
    args = _parser().parse_args(["web", "--host", "127.0.0.1", "--port", "8181"])
    assert (args.command, args.host, args.port) == ("web", "127.0.0.1", 8181)


def test_syncd_web_serves_the_api_with_clients_from_the_environment(tmp_path):
    url = f"sqlite:///{tmp_path / 'syncd.db'}"
    upgrade(url)
    config = tmp_path / "syncd.yaml"
    config.write_text(f"mappings: {REPO / 'mappings'}\ndatabase:\n  url: {url}\n"
                      f"web:\n  base_url: http://127.0.0.1\nlog:\n  format: json\n", encoding="utf-8")
    secret = "s" * 40
    (tmp_path / "clients.json").write_text(json.dumps({"portal": secret}), encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env |= {"SYNCD_CONFIG": str(config), "SYNCD_WEB__CLIENTS_FILE": str(tmp_path / "clients.json"),
            "SYNCD_WEB__SIGNING_KEY": "k" * 40}
    proc = subprocess.Popen([sys.executable, "-m", "syncd", "web", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"syncd web did not start:\n{proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.1)
        target = "/api/v1/requests/1"
        signed = httpx.get(base + target, headers=signed_headers("portal", secret, "GET", target))
        assert (signed.status_code, signed.json()["error"]) == (404, "not_found")
        assert httpx.get(base + target).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught: the usual exit of a service.
    assert proc.returncode in (0, -signal.SIGTERM)
