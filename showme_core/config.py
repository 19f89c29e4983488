"""Service configuration: one typed settings object, read from a TOML file and the environment.

Values may be written as ``{"$env": "NAME"}`` (or ``{"$file": "/run/secrets/x"}``) so
that secrets stay out of configuration files and out of the repository.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENV_PREFIX = "SHOWME_"


class ConfigError(Exception):
    """The configuration cannot be used; the message says what to fix."""


class Settings(BaseModel):
    """Everything an operator can set. Defaults give the embedded single-instance service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Path("var")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default: SQLite file in data_dir.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = Field(
        default=None,
        description="Base URL callers and providers reach, e.g. https://showme.example.org",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Proxy addresses whose X-Forwarded-Proto/For headers are believed.",
    )
    secret_keys: list[str] = Field(
        default_factory=list,
        description="Signing and sealing secrets, newest last; shared by all instances. "
        "Empty: a key kept in data_dir/secret.key.",
    )
    plugins: list[str] = Field(
        default_factory=list,
        description="Names of installed 'showme' entry points to activate (allow-list).",
    )
    plugin_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    log_level: str = "info"
    log_file: Path | None = None
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    session_max_age_seconds: int = 12 * 3600
    sse_heartbeat_seconds: float = 15.0
    # The whole send; longer than the providers' own HTTP timeouts, so theirs classify a failure.
    sms_timeout_seconds: float = 15.0
    # Waits before retrying a provider that provably did not get the message (then the next one).
    sms_retry_delays: list[float] = Field(default_factory=lambda: [0.5, 1.0])
    # Pictures (docs/media.md): bytes refused before parsing, pixels refused before decoding.
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=50_000_000, ge=1)
    # SMS links per sender (dispatcher or API key) and per organisation: (count, seconds) windows.
    sms_rate_per_sender: list[tuple[int, float]] = Field(
        default_factory=lambda: [(10, 60.0), (60, 3600.0)]
    )
    sms_rate_per_organisation: list[tuple[int, float]] = Field(
        default_factory=lambda: [(60, 60.0), (600, 3600.0)]
    )
    # Uploads being received or decoded at once: per caller, per organisation, and in all.
    max_uploads_per_invite: int = Field(default=2, ge=1)
    max_uploads_per_organisation: int = Field(default=8, ge=1)
    max_uploads_in_flight: int = Field(default=32, ge=1)
    # Pixels being decoded at once in this instance (memory follows pixels, docs/media.md).
    max_decoding_pixels: int = Field(default=64_000_000, ge=1)
    # Stored media bytes without a committed row (a crash between the write and the commit) are
    # removed at start-up and by the retention sweep once they are this old.
    orphan_grace_seconds: float = Field(default=600.0, ge=60)
    # Invites (with or without an SMS) per sender and per organisation: (count, seconds) windows.
    invite_rate_per_sender: list[tuple[int, float]] = Field(
        default_factory=lambda: [(30, 60.0), (300, 3600.0)]
    )
    invite_rate_per_organisation: list[tuple[int, float]] = Field(
        default_factory=lambda: [(120, 60.0), (1200, 3600.0)]
    )
    # Event feeds open at once per credential (API key or signed-in user) and per organisation,
    # and how often an open feed's credentials are checked again (revocation, expiry).
    max_feeds_per_credential: int = Field(default=8, ge=1)
    max_feeds_per_organisation: int = Field(default=200, ge=1)
    feed_recheck_seconds: float = Field(default=10.0, gt=0)
    # The HTTP layer (docs/operations.md, "Limits"): request heads, bodies, idle connections.
    max_header_bytes: int = Field(default=32 * 1024, ge=4096)
    header_timeout_seconds: float = Field(default=15.0, gt=0)
    idle_timeout_seconds: float = Field(default=20.0, gt=0)
    body_timeout_seconds: float = Field(default=300.0, gt=0)
    body_grace_seconds: float = Field(default=10.0, ge=0)
    body_min_bytes_per_second: int = Field(default=1024, ge=0)
    max_connections: int = Field(default=10_000, ge=1)
    # Host names (with :port when not the scheme's default) requests may carry besides
    # public_url's own; "*" accepts any.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Prometheus metrics: on a listener of their own ("127.0.0.1:9100"; /metrics on the main port
    # then answers 404), and/or behind a bearer token.
    metrics_listen: str | None = None
    metrics_token: str | None = None
    # Refuse an event whose payload drifts from the catalogue (tests, development); in production
    # such a drift is logged and the event still goes out.
    strict_events: bool = False
    # Threads decoding pictures; 0 means one per CPU core.
    image_workers: int = Field(default=0, ge=0)
    # How often each instance looks for media past its retention period; 0 turns the sweep off.
    retention_sweep_seconds: float = Field(default=60.0, ge=0)

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # unset (an empty SHOWME_PUBLIC_URL too): the request's own URL
        if not value.startswith(("http://", "https://")):
            raise ValueError("public_url must start with http:// or https://")
        return value.rstrip("/")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'showme.db').resolve()}"

    def signing_keys(self) -> list[str]:
        """``secret_keys``; without them, a key kept in ``data_dir/secret.key`` (made once,
        readable by the service alone), so that a restart of an embedded instance signs nobody
        out and can still open what it sealed. Several instances must share ``secret_keys``."""
        return self.secret_keys or [_data_dir_key(self.data_dir)]

    def settings_for(self, plugin: str) -> dict[str, Any]:
        """The settings block of one plugin (empty when none is configured)."""
        return dict(self.plugin_settings.get(plugin, {}))


_DATA_DIR_KEYS: dict[Path, str] = {}


def _data_dir_key(data_dir: Path) -> str:
    path = (data_dir / "secret.key").resolve()
    if path not in _DATA_DIR_KEYS:
        try:
            key = path.read_text().strip()
        except FileNotFoundError:
            key = _make_key_file(path)
        if len(key) < 32:
            # An empty or cut key would sign sessions and seal secrets with a guessable key.
            raise ConfigError(
                f"{path.name} in the data directory holds no usable key (too short); "
                "remove it to have a new one made (everyone is signed out), or set secret_keys"
            )
        _DATA_DIR_KEYS[path] = key
    return _DATA_DIR_KEYS[path]


def _make_key_file(path: Path) -> str:
    """Write a new key whole, then link it into place: the file either does not exist or holds
    a whole key, whatever crashes, and two processes starting at once agree on the first's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd, draft = tempfile.mkstemp(dir=path.parent, prefix=".secret.key.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            return path.read_text().strip()
    finally:
        os.unlink(draft)
    return key


def resolve_references(value: Any) -> Any:
    """Replace ``{"$env": NAME}`` and ``{"$file": PATH}`` by what they point at."""
    if isinstance(value, dict):
        if set(value) == {"$env"}:
            name = value["$env"]
            if name not in os.environ:
                raise ConfigError(f"environment variable {name} is referenced but not set")
            return os.environ[name]
        if set(value) == {"$file"}:
            path = Path(value["$file"])
            try:
                return path.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read secret file {path}: {exc.strerror}") from exc
        return {key: resolve_references(item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_references(item) for item in value]
    return value


_LIST_FIELDS = {"trusted_proxies", "secret_keys", "plugins", "allowed_hosts"}
_JSON_FIELDS = {
    "plugin_settings",
    "sms_retry_delays",
    "sms_rate_per_sender",
    "sms_rate_per_organisation",
    "invite_rate_per_sender",
    "invite_rate_per_organisation",
}


def _from_environment(environ: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in Settings.model_fields:
        raw = environ.get(ENV_PREFIX + field.upper())
        if raw is None:
            continue
        if field in _LIST_FIELDS:
            values[field] = [item.strip() for item in raw.split(",") if item.strip()]
        elif field in _JSON_FIELDS:
            try:
                values[field] = json.loads(raw)
            except ValueError as exc:
                raise ConfigError(f"{ENV_PREFIX}{field.upper()} must be JSON: {exc}") from exc
        else:
            values[field] = raw
    return values


def load_settings(
    path: Path | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read settings from a TOML file (if any), then ``SHOWME_*`` variables, then overrides."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    path = path or (Path(env["SHOWME_CONFIG"]) if env.get("SHOWME_CONFIG") else None)
    if path is not None:
        try:
            values.update(tomllib.loads(path.read_text()))
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc
    values.update(_from_environment(env))
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return Settings.model_validate(resolve_references(values))
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
