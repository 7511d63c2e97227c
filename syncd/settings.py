"""Runtime settings: one YAML file, every value overridable by a ``SYNCD_*`` variable.

Nested settings use ``__`` in variable names (``SYNCD_LDAP__URLS``, ``SYNCD_JOBS__APPLY_SECONDS``).
Secrets (LDAP bind password, SMTP password, signing keys) are read only from the environment
(``SYNCD_LDAP__BIND_PASSWORD``) or from a file named by the same variable with ``_FILE``
appended; a secret written in the config file is refused, so it never lands in a repository.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError
from pydantic_settings.sources.utils import parse_env_vars

from syncd.errors import ConfigError

ENV_PREFIX = "SYNCD_"
SECRET_FIELDS = (("ldap", "bind_password"), ("smtp", "password"), ("web", "signing_key"), ("web", "clients"))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    url: str = "sqlite:///var/syncd.db"
    echo: bool = False
    lease_seconds: int = Field(default=300, ge=5)   # how long a claim on a request holds
    # PostgreSQL connections each process keeps open (and up to 5 more for bursts).
    pool_size: int = Field(default=5, ge=1, le=100)


class TlsSettings(_Section):
    mode: Literal["none", "starttls", "ldaps"] = "none"
    ca_file: str | None = None
    verify: bool = True
    # The name the server's certificate carries, when syncd reaches it by another (an address,
    # a load balancer's name): the certificate is checked against it as well.
    server_name: str | None = None


class LdapSettings(_Section):
    urls: list[str] = ["ldap://127.0.0.1:389"]
    bind_dn: str = "cn=admin,dc=example,dc=org"
    bind_password: SecretStr | None = None
    tls: TlsSettings = TlsSettings()
    timeout_seconds: float = Field(default=10, gt=0)
    page_size: int = Field(default=1000, ge=1, le=100_000)
    batch_size: int = Field(default=500, ge=1, le=100_000)        # member values per modify
    max_request_bytes: int = Field(default=1_500_000, ge=10_000)  # 389-DS allows 2 MiB by default
    permissive_modify: Literal["auto", "on", "off"] = "auto"
    # Connections apply sends its group modifies on at once (1: one after the other).
    write_connections: int = Field(default=2, ge=1, le=8)


class SmtpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "syncd <no-reply@example.org>"
    timeout_seconds: float = 10
    # The language of the notifications (templates in syncd/mail/templates/<language>/).
    language: Literal["fr", "en"] = "fr"
    # Mails sent or given up on keep what was written into them (names, comments, the reason a
    # send failed) this many days; then the retention job erases it (syncd.jobs.retention).
    keep_content_days: int = Field(default=90, ge=1, le=3650)


class WebSettings(_Section):
    base_url: str = "http://127.0.0.1:8080"
    signing_key: SecretStr | None = None   # signs one-click decision links
    clients: SecretStr | None = None       # the portal's API clients: JSON {"client id": "secret"}
    # Requests doing database work at once (never more than database.pool_size); the others wait
    # their turn in the process. More threads contend for Python's GIL; more only pays when each
    # round trip to the database is long (a distant server).
    database_concurrency: int = Field(default=3, ge=1, le=100)


class DeskSettings(_Section):
    """The correspondents' desk and its daily digest (docs/web.md, docs/operations.md)."""

    # How long the link in a digest opens the desk; the operator revokes links sooner with
    # `syncd desk revoke`.
    link_days: int = Field(default=7, ge=1, le=90)
    # A desk session ends this long after the decider's last page (and never outlives its link).
    session_minutes: int = Field(default=30, ge=5, le=720)
    digest: bool = True                                  # send the daily digest at all
    digest_hour: int = Field(default=7, ge=0, le=23)     # Paris time: the digest goes out at or after it
    # Deciders (e-mail addresses) who prefer the digest: they get no mail per request (« à valider »,
    # reminders, escalations). ["*"]: every decider. Needs web.signing_key (the digest's link).
    digest_only: list[str] = []


class JobSettings(_Section):
    intake_seconds: float = Field(default=5, gt=0)
    apply_seconds: float = Field(default=5, gt=0)
    tacit_seconds: float = Field(default=60, gt=0)
    outbox_seconds: float = Field(default=10, gt=0)
    provision_seconds: float = Field(default=300, gt=0)
    # How often new audit rows are sealed into the hash chain (syncd.store.audit).
    audit_seal_seconds: float = Field(default=5, gt=0)
    retention_seconds: float = Field(default=3600, gt=0)   # how often old mail content is erased
    digest_seconds: float = Field(default=300, gt=0)       # how often the digest job looks (one digest a day)
    wake_poll_seconds: float = Field(default=0.5, gt=0)  # how often to look for new work
    batch_size: int = Field(default=500, ge=1)
    # Requests claimed per apply pass: the more per pass, the more values per group modify
    # (a modify costs ~2 ms whatever its size, a value ~0.6 ms with memberOf kept).
    apply_batch_size: int = Field(default=5000, ge=1)
    max_backoff_seconds: float = Field(default=300, gt=0)


class ReconcileSettings(_Section):
    """The daemon's periodic reconciliation (docs/reconcile.md)."""

    mode: Literal["off", "report", "repair"] = "report"
    interval_seconds: float = Field(default=3600, gt=0)
    # The incremental run (what changed in the directory since the last run; docs/reconcile.md).
    incremental_interval_seconds: float = Field(default=300, gt=0)
    max_changes: int | None = Field(default=1000, ge=0)      # above: nothing applied without --force
    max_percent: float | None = Field(default=5.0, ge=0)     # ... nor above this share of the values
    min_group_for_emptying_guard: int = Field(default=10, ge=1)
    disable_extra_accounts: bool = False                     # people unknown to the database: report only
    page_size: int | None = Field(default=None, ge=1)        # None: ldap.page_size


class MetricsSettings(_Section):
    # host:port where `syncd run` serves Prometheus /metrics (LDAP write latency and errors,
    # job runs); off when unset. The web process serves its own on its /metrics.
    listen: str | None = Field(default=None, pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):[0-9]{1,5}$")


class ReviewSettings(_Section):
    """Access review campaigns (docs/operations.md, "Access reviews"; syncd.core.reviews)."""

    # Days of the year ("MM-DD", 00:00 UTC) a campaign opens for every organisation; empty: only
    # `syncd review start` opens one.
    schedule: list[str] = []
    window_days: int = Field(default=30, ge=1, le=365)       # how long reviewers have to answer
    # What the end of the window does with a right nobody confirmed or withdrew.
    unanswered: Literal["keep", "withdraw"] = "keep"

    @field_validator("schedule")
    @classmethod
    def _days(cls, days: list[str]) -> list[str]:
        from syncd.core.reviews import parse_day
        for day in days:
            parse_day(day)       # ValueError: pydantic reports it with the setting's place
        return days


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class _GivenEnvironment(EnvSettingsSource):
    """pydantic-settings' environment source, reading the mapping we were handed.

    ``load_settings`` takes the environment as an argument (tests, the demo), so this source must
    not read ``os.environ`` behind our back. ``_load_env_vars`` is the one hook the library offers.
    """

    def _load_env_vars(self):
        return parse_env_vars(_ENVIRON.get() or {}, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


# No mutable default: a shared dict would leak one load's environment into another's.
_ENVIRON: ContextVar[dict[str, str] | None] = ContextVar("syncd_settings_environ", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    mappings: str = "mappings"
    worker_id: str | None = None
    database: DatabaseSettings = DatabaseSettings()
    ldap: LdapSettings = LdapSettings()
    smtp: SmtpSettings = SmtpSettings()
    web: WebSettings = WebSettings()
    desk: DeskSettings = DeskSettings()
    jobs: JobSettings = JobSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    metrics: MetricsSettings = MetricsSettings()
    review: ReviewSettings = ReviewSettings()
    log: LogSettings = LogSettings()
    config_dir: str = "."   # folder of the config file: relative paths resolve against it

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file (passed as init values).
        return (_GivenEnvironment(settings_cls), init_settings)

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else Path(self.config_dir) / p

    @property
    def database_url(self) -> str:
        """The URL with a relative SQLite path resolved against the config folder."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.resolve(url[len(prefix):]))
        return url


def _secrets_in_file(data: dict[str, Any]) -> list[str]:
    found = []
    for section, key in SECRET_FIELDS:
        if isinstance(data.get(section), dict) and data[section].get(key) not in (None, ""):
            found.append(
                f"{section}.{key} is a secret and may not be written in the config file: "
                f"set {ENV_PREFIX}{section.upper()}__{key.upper()} or "
                f"{ENV_PREFIX}{section.upper()}__{key.upper()}_FILE instead"
            )
    return found


def _load_secret_files(environ: dict[str, str]) -> dict[str, str]:
    """Turn each ``SYNCD_…_FILE`` variable into the secret it points to."""
    resolved = dict(environ)
    for section, key in SECRET_FIELDS:
        name = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
        file_var = environ.get(name + "_FILE")
        if file_var and not environ.get(name):
            try:
                resolved[name] = Path(file_var).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{name}_FILE names {file_var!r}, which cannot be read: {exc.strerror}") from exc
        resolved.pop(name + "_FILE", None)
    return resolved


def load_settings(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read the config file (``-c`` or ``SYNCD_CONFIG``), apply the environment, validate."""
    environ = dict(os.environ if environ is None else environ)
    path = path or environ.get("SYNCD_CONFIG")
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read the config file: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the config file must be a mapping of settings")
        problems = _secrets_in_file(loaded)
        if problems:
            raise ConfigError([f"{p}: {m}" for m in problems])
        data = loaded
        data.setdefault("config_dir", str(p.resolve().parent))
    token = _ENVIRON.set({k: v for k, v in _load_secret_files(environ).items()
                          if k.upper().startswith(ENV_PREFIX) and k.upper() != "SYNCD_CONFIG"})
    where = f"{path}: " if path else ""
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError([_locate(e, path, environ) for e in exc.errors()]) from exc
    except SettingsError as exc:   # a SYNCD_* variable that is not valid JSON where a list is expected
        raise ConfigError(f"{where}{exc}: lists and mappings are written as JSON, e.g. '[\"ldap://a\"]'") from exc
    finally:
        _ENVIRON.reset(token)


def _locate(error: dict[str, Any], path: str | os.PathLike | None, environ: dict[str, str]) -> str:
    """One validation error, said where the operator can fix it: the environment variable that
    set the value, or the config file's line."""
    loc = [str(x) for x in error["loc"]]
    setting = ".".join(loc)
    if error["type"] == "extra_forbidden":
        error = error | {"msg": _unknown(loc)}
    variable = ENV_PREFIX + "__".join(loc).upper()
    for name in (variable, variable + "_FILE"):
        if name in {k.upper() for k in environ}:
            return f"environment variable {name}: setting {setting}: {error['msg']}"
    if not path:
        return f"setting {setting}: {error['msg']}"
    line = _line_of(Path(path), loc)
    return f"{path}:{line}: setting {setting}: {error['msg']}" if line else f"{path}: setting {setting}: {error['msg']}"


def _unknown(loc: list[str]) -> str:
    """"unknown setting", with the closest known name when there is one."""
    import difflib
    model: Any = Settings
    for key in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(key)
        model = field.annotation if field is not None else None
    known = list(getattr(model, "model_fields", {}))
    close = difflib.get_close_matches(loc[-1], known, n=1)
    return "unknown setting" + (f" (did you mean '{close[0]}'?)" if close else "")


def _line_of(path: Path, loc: list[str]) -> int | None:
    """The line of the key at ``loc`` in the YAML file (1-based), or of the deepest parent found."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    line = None
    for key in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if key_node.value == key:
                line, node = key_node.start_mark.line + 1, value_node
                break
        else:
            break
    return line

