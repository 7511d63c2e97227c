"""What every job is handed: settings, mappings, the database, the directory, mail, the clock;
and how the command line and the demo open one from the configuration."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from syncd.store.db import Engine

from syncd.core.mappings import Mappings
from syncd.errors import ConfigError
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


def load_config(config: str | None) -> tuple[Settings, Mappings]:
    """Settings, logging, mappings: everything validated before anything runs."""
    from syncd.logs import configure_logging
    from syncd.mappings import load_mappings
    from syncd.settings import load_settings

    settings = load_settings(config)
    configure_logging(settings.log.level, settings.log.format)
    return settings, load_mappings(settings.resolve(settings.mappings))


def open_runtime(config: str | None) -> Runtime:
    """A Runtime on the configured database, refused while its schema is behind the code."""
    from syncd.store.db import make_engine
    from syncd.store.migrate import is_up_to_date

    settings, mappings = load_config(config)
    engine = make_engine(settings.database_url, echo=settings.database.echo, pool_size=settings.database.pool_size)
    if not is_up_to_date(settings.database_url):
        raise ConfigError("the database schema is not up to date: run `syncd db upgrade` first")
    return Runtime(settings, mappings, engine, worker_id=settings.worker_id or default_worker_id())
