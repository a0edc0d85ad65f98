"""Runtime settings: one frozen pydantic-settings object, read from the environment.

Where values come from, in order: keyword arguments, environment variables with the
``PERSONAFLOW_`` prefix (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL`` and
``SCHEMA_REGISTRY_URL`` are also read without prefix, as most tooling sets them), a ``.env``
file in the working directory, then the defaults below.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PERSONAFLOW_", env_file=".env", frozen=True, extra="ignore"
    )

    kafka_bootstrap_servers: str = Field(
        default="",
        validation_alias=AliasChoices(
            "PERSONAFLOW_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="host:port[,host:port]; empty means: use the embedded local stack",
    )
    redis_url: str = Field(
        default="",
        validation_alias=AliasChoices("PERSONAFLOW_REDIS_URL", "REDIS_URL"),
        description="redis://host:port/db; empty means: use the embedded local stack",
    )
    schema_registry_url: str = Field(
        default="",
        validation_alias=AliasChoices("PERSONAFLOW_SCHEMA_REGISTRY_URL", "SCHEMA_REGISTRY_URL"),
        description="Confluent Schema Registry REST URL; empty means: the file-based registry",
    )
    topic_prefix: str = Field(default="", description="prefix for every topic name")
    partitions: int = Field(default=12, ge=1, description="partitions of co-partitioned topics")
    replication_factor: int = Field(default=1, ge=1)
    data_dir: Path = Field(default=Path(".personaflow"), description="local state (RocksDB, stack)")
    rules_file: Path | None = Field(default=None, description="persona/trigger rules YAML override")
    templates_dir: Path | None = Field(default=None, description="email templates override")
    log_level: str = "INFO"
