"""What every job is handed: settings, mappings, the database, the directory, mail, the clock."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from syncd.store.db import Engine

from syncd.mappings import Mappings
from syncd.settings import Settings

if TYPE_CHECKING:
    from syncd.directory.adapter import Directory


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Runtime:
    settings: Settings
    mappings: Mappings
    engine: Engine
    clock: Callable[[], datetime] = system_clock
    worker_id: str = field(default_factory=default_worker_id)
    _directory: "Directory | None" = None

    @property
    def directory(self) -> "Directory":
        """Connected on first use, so a job that needs no LDAP runs while LDAP is down."""
        if self._directory is None:
            from syncd.directory.adapter import Directory
            self._directory = Directory(self.settings.ldap, self.mappings.directory)
        return self._directory

    def close(self) -> None:
        if self._directory is not None:
            self._directory.close()
            self._directory = None
        self.engine.dispose()
