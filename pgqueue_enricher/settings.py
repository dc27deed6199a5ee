"""Every setting of the daemon, read once from the environment (and `.env`).

The variable names are a contract (docs/configuration.md): operators set them in systemd
units, Railway and docker-compose files. Secrets are `SecretStr` so that a stray
`repr(settings)` or log line can never print them.
"""

from __future__ import annotations

import sys
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pgqueue_enricher.redact import redact_url

THINKING_LEVELS = ("minimal", "low", "medium", "high")
SERVICE_TIERS = ("standard", "flex")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the environment variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # `GEMINI_API_KEY=` in a .env file means "not set", not "set to the empty string".
        env_ignore_empty=True,
    )

    database_url: SecretStr | None = None
    database_listen_url: SecretStr | None = None

    enricher_provider: Literal["gemini", "local"] = "gemini"
    gemini_api_key: SecretStr | None = None
    gemini_base_url: str | None = None
    pass2_model: str = "gemini-3-flash-preview"
    # A response served by another model than PASS2_MODEL (not a dated snapshot of it): pause
    # Gemini for the fleet until someone decides, or accept it and stamp the model that served.
    pass2_on_model_substitution: Literal["pause", "accept"] = "pause"
    pass2_thinking_level: str = "high"
    pass2_temperature: float | None = None
    pass2_gemini_timeout: float = Field(300.0, gt=0)

    voyage_api_key: SecretStr | None = None
    voyage_base_url: str | None = None
    voyage_model: str = "voyage-3"
    pass2_voyage_timeout: float = Field(60.0, gt=0)

    supabase_url: str | None = None
    supabase_service_key: SecretStr | None = None
    storage_bucket: str = "project-files"
    storage_dir: str | None = None
    pass2_storage_timeout: float = Field(60.0, gt=0)

    pass2_max_concurrent: int = Field(3, ge=1, le=256)
    pass2_poll_interval: float = Field(5.0, gt=0)
    pass2_max_attempts: int = Field(5, ge=1)
    pass2_lease_seconds: float = Field(300.0, gt=0)
    pass2_backoff_base: float = Field(10.0, ge=0)
    pass2_backoff_max: float = Field(600.0, ge=0)
    pass2_shutdown_grace: float = Field(30.0, ge=0)
    pass2_max_image_bytes: int = Field(20 * 1024 * 1024, gt=0)
    pass2_max_image_pixels: int = Field(100_000_000, gt=0)

    # -- provider admission: fleet-wide limits, unset = adaptive --
    pass2_gemini_rpm: float | None = Field(None, gt=0, allow_inf_nan=False)
    pass2_gemini_tpm: float | None = Field(None, gt=0, allow_inf_nan=False)
    pass2_voyage_rpm: float | None = Field(None, gt=0, allow_inf_nan=False)
    pass2_voyage_tpm: float | None = Field(None, gt=0, allow_inf_nan=False)
    pass2_probe_base: float = Field(30.0, gt=0, allow_inf_nan=False)
    pass2_probe_max: float = Field(600.0, gt=0, allow_inf_nan=False)
    # -- end provider admission --
    # Scheduling and cost: Gemini service tier per lane, and prices in USD per 1M tokens
    # (gemini-3-flash-preview, paid tier; Flex at PASS2_FLEX_PRICE_FACTOR of them).
    pass2_interactive_tier: str = "standard"
    pass2_backfill_tier: str = "flex"
    pass2_flex_timeout: float = Field(900.0, ge=600)
    pass2_price_input: float = Field(0.50, ge=0)
    pass2_price_output: float = Field(3.00, ge=0)
    pass2_price_cached_input: float = Field(0.05, ge=0)
    pass2_flex_price_factor: float = Field(0.5, ge=0)
    # Voyage, USD per 1M tokens (voyage-3 and voyage-3.5 list price); `doctor` prints its cost.
    pass2_price_voyage: float = Field(0.06, ge=0)

    # The dashboard's HTTP basic auth: users `viewer` and `admin` (pgqueue-enricher dashboard).
    dashboard_viewer_password: SecretStr | None = None
    dashboard_admin_password: SecretStr | None = None

    log_format: Literal["json", "console"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    metrics_port: int | None = Field(None, ge=1, le=65535)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("pass2_thinking_level")
    @classmethod
    def _known_thinking_level(cls, value: str) -> str:
        # The SDK sends any string without complaint; a typo would only surface as a 400.
        if value.lower() not in THINKING_LEVELS:
            raise ValueError(f"must be one of {', '.join(THINKING_LEVELS)}")
        return value.lower()

    @field_validator("pass2_interactive_tier", "pass2_backfill_tier")
    @classmethod
    def _known_service_tier(cls, value: str) -> str:
        if value.lower() not in SERVICE_TIERS:
            raise ValueError(f"must be one of {', '.join(SERVICE_TIERS)}, got {value!r}")
        return value.lower()

    @field_validator("database_url", "database_listen_url", mode="before")
    @classmethod
    def _postgres_scheme(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw in (None, ""):
            return None
        if not isinstance(raw, str) or not raw.startswith(("postgres://", "postgresql://", "postgresql+")):
            raise ValueError("must be a postgresql:// URL")
        if not _ports_are_numbers(raw):
            # Checked here because the driver's own error would quote the bad "port", which is
            # a piece of the password when the password holds an unencoded / # or ?.
            raise ValueError(
                "is not a valid postgresql:// URL: its host:port part is malformed "
                "(percent-encode special characters in the password, e.g. / as %2F)"
            )
        return raw

    # -- derived values ---------------------------------------------------------------

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise ConfigError("DATABASE_URL is not set: point it at the Postgres database to work on")
        return plain_dsn(self.database_url.get_secret_value())

    def listen_url(self) -> str:
        url = self.database_listen_url or self.database_url
        if url is None:
            raise ConfigError("DATABASE_URL is not set: point it at the Postgres database to work on")
        return plain_dsn(url.get_secret_value())

    def check_provider_config(self) -> None:
        """Fail at start-up, not on the first pointer, when a provider cannot work."""
        if self.enricher_provider == "gemini":
            if self.gemini_api_key is None:
                raise ConfigError("GEMINI_API_KEY is not set (or set ENRICHER_PROVIDER=local)")
            if self.voyage_api_key is None:
                raise ConfigError("VOYAGE_API_KEY is not set (or set ENRICHER_PROVIDER=local)")
        if self.storage_dir is None:
            if not self.supabase_url:
                raise ConfigError("SUPABASE_URL is not set (or set STORAGE_DIR for local crops)")
            if self.supabase_service_key is None:
                raise ConfigError("SUPABASE_SERVICE_KEY is not set (or set STORAGE_DIR for local crops)")

    def safe_summary(self) -> dict[str, object]:
        """What may be logged at start-up: no keys, and URLs without passwords."""
        return {
            "database": redact_url(self.database_url.get_secret_value()) if self.database_url else None,
            "provider": self.enricher_provider,
            "model": self.pass2_model if self.enricher_provider == "gemini" else "local",
            "storage": self.storage_dir
            or (self.supabase_url and f"{self.supabase_url} [{self.storage_bucket}]"),
            "max_concurrent": self.pass2_max_concurrent,
            "poll_interval": self.pass2_poll_interval,
            "max_attempts": self.pass2_max_attempts,
            "lease_seconds": self.pass2_lease_seconds,
        }


def _ports_are_numbers(url: str) -> bool:
    """Whether every host of the URL has no port or a numeric one, parsed as asyncpg does."""
    try:
        netloc = urlparse(url).netloc
    except ValueError:
        return False
    hostspec = netloc.partition("@")[2] if "@" in netloc else netloc
    for host in hostspec.split(","):
        port = host.rpartition("]")[2] if host.startswith("[") else host
        port = port.partition(":")[2] if ":" in port else ""
        if port and not port.isdigit():
            return False
    return True


def plain_dsn(url: str) -> str:
    """asyncpg and psycopg want `postgresql://`; SQLAlchemy-style driver suffixes are dropped."""
    if url.startswith("postgresql+"):
        return "postgresql://" + url.split("://", 1)[1]
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://") :]
    return url


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning pydantic's errors into a ConfigError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "settings"
            # err["input"] may hold a secret: only pydantic's message is reported.
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


def exit_on_config_error(exc: ConfigError) -> None:
    print(f"pgqueue-enricher: {exc}", file=sys.stderr)
    raise SystemExit(2)
