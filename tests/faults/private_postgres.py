"""A throwaway PostgreSQL cluster of the test's own (``initdb`` + ``pg_ctl``), so that a test may
crash and restart it without touching the machine's shared server.

The binaries come from ``/usr/lib/postgresql/<version>/bin`` (Debian), ``SYNCD_PG_BINDIR``, or
the PATH. ``initdb`` refuses to run as root: as root the cluster runs as the ``postgres`` user
(``runuser``), in a folder under the system's temporary directory that user can reach.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from syncd.devslapd import free_port


class PrivatePostgresUnavailable(RuntimeError):
    pass


def _bindir() -> Path:
    env = os.environ.get("SYNCD_PG_BINDIR")
    candidates = [env] if env else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                         if Path(p).parent.name.isdigit() else 0, reverse=True)
    which = shutil.which("pg_ctl")
    if which:
        candidates.append(str(Path(which).parent))
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    raise PrivatePostgresUnavailable("no initdb/pg_ctl (apt-get install -y postgresql; or set SYNCD_PG_BINDIR)")


class PrivatePostgres:
    def __init__(self):
        self.bindir = _bindir()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                raise PrivatePostgresUnavailable("running as root and there is no 'postgres' user to run initdb as") from None
            if not shutil.which("runuser"):
                raise PrivatePostgresUnavailable("running as root and runuser is missing")
        self.folder = Path(tempfile.mkdtemp(prefix="syncd-pg-"))
        self.data = self.folder / "data"
        self.logfile = self.folder / "postgres.log"
        if self.as_root:
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        self.folder.chmod(0o700)
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/syncd"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync",
                  "--no-instructions")
        self.start()
        admin = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres",
                              isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE syncd"))
        admin.dispose()

    def _run(self, tool: str, *args: str, timeout: float = 60) -> str:
        argv = [str(self.bindir / tool), *args]
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=str(self.folder))
        if done.returncode != 0:
            raise PrivatePostgresUnavailable(f"{tool} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
                                             f"\n{self.log_tail()}")
        return done.stdout

    def log_tail(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
                   "-c fsync=off -c full_page_writes=off -c max_connections=60")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options, "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash: no checkpoint, clients cut, WAL replayed at the next start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def is_running(self) -> bool:
        argv = [str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"]
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True).returncode == 0

    def destroy(self) -> None:
        try:
            if self.is_running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
