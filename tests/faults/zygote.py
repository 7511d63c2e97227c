"""A fork server for the kill -9 test: imports syncd once, then forks one daemon per request.

Starting ``syncd run`` costs about a second of imports on a small machine; fifty crash cycles
would spend most of the suite's time there. This process imports everything ``syncd run``
imports, then reads JSON commands on stdin, one per line::

    {"argv": ["-c", "/path/syncd.yaml", "run"], "env": {...}, "log": "/path/daemon-7.log"}

and for each forks a child that becomes exactly the ``syncd`` command (``syncd.cli.main(argv)``
with that environment, its output in ``log``), answering the child's pid on stdout. The test
kills children with SIGKILL; this process reaps them. Children are real, separate processes
running the daemon's own entry point; only the imports were done before the fork (and no
thread, socket or database connection exists at that point).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys


def _preload() -> None:
    import syncd.cli  # noqa: F401
    import syncd.daemon  # noqa: F401
    import syncd.directory.adapter  # noqa: F401
    import syncd.jobs.accounts  # noqa: F401
    import syncd.jobs.apply  # noqa: F401
    import syncd.jobs.deliver  # noqa: F401
    import syncd.jobs.intake  # noqa: F401
    import syncd.jobs.provision  # noqa: F401
    import syncd.jobs.routing  # noqa: F401
    import syncd.jobs.tacit  # noqa: F401
    import syncd.logs  # noqa: F401
    import syncd.mail.render  # noqa: F401
    import syncd.mappings  # noqa: F401
    import syncd.store.migrate  # noqa: F401
    import psycopg  # noqa: F401
    import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401
    import sqlalchemy.dialects.sqlite.pysqlite  # noqa: F401


def _reap(*_args) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _die_with_parent() -> None:
    """Linux: SIGKILL this child if the zygote goes (no daemon outlives a crashed test run)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the harness kills its children itself
        pass


def _child(command: dict) -> None:
    _die_with_parent()
    fd = os.open(command["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(command["env"])
    random.seed()
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    from syncd.cli import main
    try:
        code = main(command["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        code = 70
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def main() -> None:
    _preload()
    signal.signal(signal.SIGCHLD, _reap)
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(command)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
