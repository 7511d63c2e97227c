"""Wake-up hints on SQLite: a datagram to every daemon of the same database, sent at commit.

PostgreSQL has NOTIFY (``leadership.notify``). SQLite has nothing of the kind, so a decision
committed by ``syncd web`` or the CLI waited for the daemon's next poll (``jobs.wake_poll_seconds``).
Here each daemon binds a Unix datagram socket in a folder beside the database file
(``<database>.wake/``); a commit that asked for a wake-up sends one byte to every socket there.

Why this shape:
- The folder sits beside the database, so whoever may write the database may wake its daemons
  (the same file permissions decide both: the folder is made group-writable like the database's
  own folder under the process umask) and no pid file or port number has to be agreed on.
- Datagrams never block the sender: a full or dead socket is skipped, a socket nobody holds any
  more (a daemon killed with -9) is removed by the next sender.
- It is a hint only: the daemon's probe still polls, so a lost datagram costs at most one poll.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import socket
from pathlib import Path

import structlog
from sqlalchemy.engine import Connection, Engine

log = structlog.get_logger(__name__)

_PENDING_KEY = "syncd_wake_after_commit"
# Unix socket paths are limited to 107 bytes on Linux: a longer one is reached through the
# folder's open descriptor (/proc/self/fd/N/name), which is always short.
_MAX_SOCKET_PATH = 100


@contextlib.contextmanager
def _short_paths(folder: Path):
    """Yield a function giving a path to a file of ``folder`` short enough for a socket address."""
    if len(os.fsencode(str(folder))) + 40 <= _MAX_SOCKET_PATH or not os.path.isdir("/proc/self/fd"):
        yield lambda name: str(folder / name)
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield lambda name: f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)


def wake_folder(engine_or_conn: Engine | Connection) -> Path | None:
    """The folder of wake-up sockets of this SQLite database (None: not SQLite, or in memory)."""
    engine = engine_or_conn.engine if isinstance(engine_or_conn, Connection) else engine_or_conn
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    # Asked twice by every decision (at the statement, then after the commit): worked out once
    # per database, but for a relative path, which depends on the working directory.
    return _folder_of(database) if database and os.path.isabs(database) else _folder_of.__wrapped__(database)


@functools.lru_cache(maxsize=64)
def _folder_of(database: str | None) -> Path | None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(os.path.abspath(database) + ".wake")


def wake_after_commit(conn: Connection) -> None:
    """Ask for a wake-up of this database's daemons once ``conn``'s transaction commits."""
    if wake_folder(conn) is not None:
        conn.info[_PENDING_KEY] = True


def send_if_asked(conn: Connection) -> None:
    """Called by ``db.transaction`` after a successful commit: send the hint it asked for."""
    if conn.info.pop(_PENDING_KEY, False):
        folder = wake_folder(conn)
        if folder is not None:
            send(folder)


def forget_request(conn: Connection) -> None:
    """The transaction rolled back: nothing was committed, so nobody needs waking."""
    conn.info.pop(_PENDING_KEY, None)


def send(folder: Path) -> int:
    """Send one byte to every daemon socket in ``folder``; return how many took it."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0                      # no daemon has ever listened here
    sent = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender, _short_paths(folder) as short:
        sender.setblocking(False)
        for entry in entries:
            if not entry.name.endswith(".sock"):
                continue
            try:
                sender.sendto(b"w", short(entry.name))
                sent += 1
            except ConnectionRefusedError:
                with contextlib.suppress(OSError):   # nobody listens: a daemon that died
                    os.unlink(entry.path)
            except OSError as exc:
                # Full buffer (the daemon is already awake), or no permission: a hint lost, not an error.
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EACCES, errno.ENOENT):
                    log.debug("wake_send_failed", error=str(exc))
    return sent


class WakeSocket:
    """The daemon's end: a datagram socket in the database's wake folder (context manager)."""

    def __init__(self, folder: Path, name: str):
        self.path = folder / f"{name}.sock"
        self._sock: socket.socket | None = None
        folder.mkdir(mode=0o770, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()                     # left by a daemon of the same name killed earlier
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with _short_paths(folder) as short:
                sock.bind(short(self.path.name))
            os.chmod(self.path, 0o660)
        except OSError:
            sock.close()
            raise
        self._sock = sock

    @property
    def active(self) -> bool:
        return self._sock is not None

    def wait(self, timeout: float) -> bool:
        """True if a hint arrived within ``timeout`` seconds (every queued hint is consumed)."""
        if self._sock is None:
            return False
        self._sock.settimeout(max(0.0, timeout))
        try:
            self._sock.recv(16)
        except (TimeoutError, BlockingIOError):
            return False
        self._sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while self._sock.recv(16):
                pass
        return True

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
            with contextlib.suppress(OSError):
                self.path.unlink()

    def __enter__(self) -> "WakeSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
