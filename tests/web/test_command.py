"""``syncd web`` serves the app: a real process, configured like an operator would, on a free port."""

from __future__ import annotations

import signal

import httpx

from syncd.cli import _parser
from syncd.web.auth import signed_headers
from tests.web.conftest import syncd_web_process


def test_the_command_line_knows_the_web_command():
    args = _parser().parse_args(["web", "--host", "127.0.0.1", "--port", "8181"])
    assert (args.command, args.host, args.port) == ("web", "127.0.0.1", 8181)


def test_syncd_web_serves_the_api_with_clients_from_the_environment(tmp_path):
    secret = "s" * 40
    with syncd_web_process(tmp_path, secret) as (base, proc):
        target = "/api/v1/requests/1"
        signed = httpx.get(base + target, headers=signed_headers("portal", secret, "GET", target))
        assert (signed.status_code, signed.json()["error"]) == (404, "not_found")
        assert httpx.get(base + target).status_code == 401
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught: the usual exit of a service.
    assert proc.returncode in (0, -signal.SIGTERM)
