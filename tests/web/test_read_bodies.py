"""A body on a GET is refused before it is read: a real ``syncd web`` process keeps its memory.

Reproduced on the old code: three 300 MB chunked GETs took the process from 119 MB to 1,347 MB
(the API read each body whole before checking the signature). Here three clients send 100 MB
each, at once, to an API route (unauthenticated), a page and ``/healthz``; the process's
resident memory, sampled every 20 ms, must grow by less than 32 MB, and every client must be
done (refused, or cut off) within the time bound.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx

from tests.web.conftest import syncd_web_process

BODY_BYTES = 100 * 1024 * 1024
CHUNK = b"x" * (1024 * 1024)
MAX_GROWTH = 32 * 1024 * 1024
TIME_BOUND_SECONDS = 60


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def chunked_get(port: int, path: str, outcome: dict) -> None:
    """Send ``GET path`` with a 100 MB chunked body, as fast as the server reads it; record the
    status line the server answered (if it got through) and how many bytes were sent."""
    sent = 0
    deadline = time.monotonic() + TIME_BOUND_SECONDS
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
            frame = f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n"
            while sent < BODY_BYTES and time.monotonic() < deadline:
                sock.sendall(frame)
                sent += len(CHUNK)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass   # the server closed the connection: what a refusal does
        try:
            outcome["status"] = sock.recv(64).split(b"\r\n", 1)[0].decode()
        except OSError:
            outcome["status"] = "reset"
    outcome["sent"] = sent


def test_three_concurrent_100_mb_chunked_gets_leave_the_process_memory_as_it_was(tmp_path):
    with syncd_web_process(tmp_path) as (base, proc):
        port = int(base.rsplit(":", 1)[1])
        for path in ("/healthz", "/api/v1/requests/1", "/decide/x"):   # warm every path up first
            httpx.get(base + path)
            httpx.request("GET", base + path, content=b"{}")
        time.sleep(0.2)
        before = rss_bytes(proc.pid)
        peak = before
        outcomes: list[dict] = [{}, {}, {}]
        clients = [threading.Thread(target=chunked_get, args=(port, path, outcome))
                   for path, outcome in zip(("/api/v1/requests/1", "/decide/x", "/healthz"), outcomes, strict=False)]
        started = time.monotonic()
        for c in clients:
            c.start()
        while any(c.is_alive() for c in clients) and time.monotonic() - started < TIME_BOUND_SECONDS + 15:
            peak = max(peak, rss_bytes(proc.pid))
            time.sleep(0.02)
        for c in clients:
            c.join(timeout=1)
        elapsed = time.monotonic() - started
        assert not any(c.is_alive() for c in clients), "a client was still sending after the time bound"
        peak = max(peak, rss_bytes(proc.pid))
        assert httpx.get(base + "/healthz").status_code == 200, "the process still serves"
    growth = peak - before
    print(f"RSS before {before / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB (+{growth / 2**20:.1f} MiB) "
          f"in {elapsed:.1f} s; {outcomes}")
    assert growth < MAX_GROWTH, f"RSS grew by {growth / 2**20:.1f} MiB"
    assert all(o.get("status") in ("HTTP/1.1 400 Bad Request", "reset", "") for o in outcomes), outcomes
    assert all(o["sent"] < BODY_BYTES for o in outcomes), f"a body was read whole: {outcomes}"
