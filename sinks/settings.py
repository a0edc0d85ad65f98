"""Settings of the ESP sink: one frozen pydantic-settings object, env prefix ``PERSONAFLOW_SINK_``.

Every field can be set from the environment, e.g. ``PERSONAFLOW_SINK_ESP=smtp``,
``PERSONAFLOW_SINK_SMTP_PORT=2525``, ``PERSONAFLOW_SINK_HTTP_API_KEY=...``. Kafka and Redis
endpoints and the topic prefix come from the shared :class:`personaflow.settings.Settings`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from processors.policy import BudgetPolicy, QuietHours

TEMPLATES_DIR = Path(__file__).parent / "templates"
"""The templates shipped with the sink (one folder per trigger type)."""


class EspKind(StrEnum):
    """Which ESP adapter sends the mail."""

    OUTBOX = "outbox"
    SMTP = "smtp"
    HTTP = "http"


class SinkSettings(BaseSettings):
    """Everything the sink service can be told; frozen once read."""

    model_config = SettingsConfigDict(
        env_prefix="PERSONAFLOW_SINK_", env_file=".env", frozen=True, extra="ignore"
    )

    esp: EspKind = Field(default=EspKind.OUTBOX, description="ESP adapter: outbox, smtp or http")
    outbox_dir: Path = Field(
        default=Path(".personaflow/outbox"), description="where the outbox adapter writes .eml"
    )
    smtp_host: str = Field(default="127.0.0.1", description="SMTP server host")
    smtp_port: int = Field(default=2525, ge=1, le=65535, description="SMTP server port")
    smtp_connections: int = Field(default=4, ge=1, description="pooled SMTP connections")
    http_url: str = Field(
        default="http://127.0.0.1:8025/v3/mail/send",
        description="SendGrid v3 mail/send compatible endpoint",
    )
    http_api_key: SecretStr = Field(
        default=SecretStr(""), description="bearer token for the HTTP ESP (never logged)"
    )
    http_batch_size: int = Field(
        default=500, ge=1, le=1000,
        description="personalizations per HTTP request (1 = none; SendGrid takes up to 1,000)",
    )
    http_batch_wait_ms: float = Field(
        default=5.0, ge=0, description="how long a batch waits to fill before it is sent"
    )
    esp_timeout_s: float = Field(default=10.0, gt=0, description="one ESP request's timeout")
    group_id: str = Field(default="personaflow-sink", description="Kafka consumer group")
    feedback_group_id: str = Field(
        default="personaflow-sink-suppression",
        description="consumer group of the suppression feed (identity + engagement)",
    )
    session_timeout_ms: int = Field(
        default=6000, ge=1000, description="consumer group session timeout (Kafka)"
    )
    fetch_wait_max_ms: int = Field(
        default=50, ge=1, le=5000,
        description="longest a fetch waits for new triggers (latency vs. idle fetches); 10 was "
        "tried: on Tansu better at 200/s, worse at 500/s (docs/bench/sink.md)",
    )
    concurrency: int = Field(
        default=1024, ge=1,
        description="triggers processed at once (bench.sink: 512 in flight left the loop idle "
        "a third of the time at 3k/s)",
    )
    batch_size: int = Field(
        default=1000, ge=1, le=2000,
        description="most triggers handled as one batch (one task, one admission script call, "
        "one produce flush); also capped by concurrency",
    )
    max_attempts: int = Field(default=5, ge=1, description="ESP attempts before dead letter")
    backoff_base_s: float = Field(default=0.5, gt=0, description="first retry delay")
    backoff_max_s: float = Field(default=30.0, gt=0, description="longest retry delay")
    rate_limit_per_s: float = Field(
        default=0.0, ge=0, description="ESP sends per second across all instances (0 = none)"
    )
    rate_limit_burst: int = Field(default=100, ge=1, description="token bucket size")
    quiet_start_hour: int = Field(default=21, ge=0, le=23, description="local quiet from")
    quiet_end_hour: int = Field(default=8, ge=0, le=23, description="local quiet until")
    budget_per_day: int = Field(default=1, ge=0, description="marketing sends per 24 h")
    budget_per_week: int = Field(default=3, ge=0, description="marketing sends per 7 days")
    from_address: str = Field(default="shop@example.com", description="From: address")
    from_name: str = Field(default="The Shop", description="From: display name")
    unsubscribe_base_url: str = Field(
        default="http://127.0.0.1:8090/unsubscribe",
        description="base of the one-click unsubscribe link (token appended)",
    )
    unsubscribe_mailto: str = Field(
        default="unsubscribe@example.com", description="mailto: fallback of List-Unsubscribe"
    )
    unsubscribe_secret: SecretStr = Field(
        default=SecretStr("change-me"), description="HMAC key of unsubscribe tokens"
    )
    shop_url: str = Field(default="https://shop.example.com", description="links in emails")
    templates_dir: Path = Field(default=TEMPLATES_DIR, description="templates, one dir per type")
    http_host: str = Field(default="0.0.0.0", description="webhook/metrics listener host")
    http_port: int = Field(default=8090, ge=0, le=65535, description="webhook/metrics port")
    lease_s: float = Field(
        default=120.0, gt=0, description="how long a pending ledger entry blocks others"
    )
    redis_key_prefix: str = Field(default="pf:sink:", description="prefix of every Redis key")
    redis_retry_max_s: float = Field(
        default=5.0, gt=0, description="longest pause between retries while Redis is down"
    )
    defer_poll_s: float = Field(default=1.0, gt=0, description="deferred queue poll period")
    crash_hook: str = Field(
        default="",
        description="TEST ONLY: 'after_accept' / 'after_ledger' exits the process hard there",
    )

    @model_validator(mode="after")
    def _check_backoff(self) -> SinkSettings:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s must be >= backoff_base_s")
        return self

    def quiet_hours(self) -> QuietHours:
        """The quiet-hours rule (shared with processors.policy)."""
        return QuietHours(self.quiet_start_hour, self.quiet_end_hour)

    def budget(self) -> BudgetPolicy:
        """The frequency budget (shared with processors.policy)."""
        return BudgetPolicy(self.budget_per_day, self.budget_per_week)
