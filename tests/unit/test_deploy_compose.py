"""docker-compose.yml and the Dockerfile, validated offline (no Docker engine runs here).

Checks that every personaflow service runs a command that really exists in the ``personaflow``
CLI (resolved and parsed through typer's click tree), that every environment variable it sets
is a real settings field (names derived from the pydantic-settings classes) with a valid value,
that workers can be scaled, and that the observability files compose mounts exist.
Helpers here are shared with tests/unit/test_deploy_k8s.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PERSONAFLOW_IMAGE = "personaflow"

IMAGE_BINARIES = {
    "apache/kafka": {"/opt/kafka/bin/kafka-broker-api-versions.sh"},
    "confluentinc/cp-schema-registry": {"curl"},
    "redis": {"redis-server", "redis-cli"},
    "axllent/mailpit": {"/mailpit"},
    "danielqsj/kafka-exporter": set(),
    "prom/prometheus": set(),
    "grafana/grafana": set(),
    PERSONAFLOW_IMAGE: {"python", "personaflow"},
}
"""Executables each third-party image is known to ship (from its published Dockerfile);
commands starting with ``-`` are arguments to the image's own entry point."""


# ------------------------------------------------------------------ shared helpers


def settings_classes(command: str) -> list[type[BaseSettings]]:
    """The settings classes a ``personaflow <command>`` process reads."""
    from personaflow.settings import Settings
    from sinks.settings import SinkSettings
    from streams.settings import StreamSettings

    by_command: dict[str, list[type[BaseSettings]]] = {
        "worker": [StreamSettings],
        "replay": [StreamSettings],
        "sink": [Settings, SinkSettings],
    }
    return by_command.get(command, [Settings, StreamSettings, SinkSettings])


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Every environment variable name ``cls`` reads (upper case: not case sensitive)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, AliasChoices):
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{name}")
    return {name.upper() for name in names}


def check_env(
    command: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Every name in ``env`` is a settings field of ``command``, and the values validate."""
    classes = settings_classes(command)
    accepted = set().union(*(env_names(cls) for cls in classes))
    unknown = sorted(set(env) - accepted)
    assert not unknown, f"{where}: not settings of `personaflow {command}`: {unknown}"
    for name in [n for n in list(__import__("os").environ) if n.startswith("PERSONAFLOW_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    for cls in classes:
        cls(_env_file=None)  # type: ignore[call-arg]  # raises on a bad value


def cli_root() -> Any:
    """The click command tree of ``personaflow`` (typer ships its own click: duck-typed)."""
    from personaflow.cli import app

    return typer.main.get_command(app)


def resolve_cli(args: list[str]) -> list[str]:
    """Resolve ``personaflow ARGS`` to its command path and parse its options (nothing runs);
    returns the path, e.g. ``["topics", "create"]``. Fails on an unknown command or option."""
    command = cli_root()
    ctx = command.context_class(command, info_name="personaflow")
    path: list[str] = []
    rest = list(args)
    while hasattr(command, "get_command") and rest and not rest[0].startswith("-"):
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"`personaflow {' '.join(args)}`: no command {rest[0]!r}"
        path.append(rest.pop(0))
        command, ctx = sub, sub.context_class(sub, info_name=path[-1], parent=ctx)
    if rest != ["--help"]:
        command.make_context(path[-1] if path else "personaflow", rest, parent=ctx.parent)
    return path


def command_list(value: Any) -> list[str]:
    """A compose/k8s command (string or list) as a list."""
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


# ------------------------------------------------------------------ compose


@pytest.fixture(scope="module")
def compose() -> Any:
    return yaml.safe_load(COMPOSE.read_text())


def _services(compose: dict[str, Any]) -> Any:
    return compose["services"]


def _image(service: dict[str, Any]) -> str:
    return re.sub(r":[^/]*$", "", service.get("image", PERSONAFLOW_IMAGE))


def _personaflow_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in _services(compose).items() if _image(s) == PERSONAFLOW_IMAGE}


def test_compose_has_the_whole_stack(compose):
    images = {name: _image(service) for name, service in _services(compose).items()}
    assert images["kafka"] == "apache/kafka"
    assert images["schema-registry"] == "confluentinc/cp-schema-registry"
    assert images["redis"] == "redis" and images["mailpit"] == "axllent/mailpit"
    assert images["prometheus"] == "prom/prometheus" and images["grafana"] == "grafana/grafana"
    ours = _personaflow_services(compose)
    run = {name: command_list(service.get("command")) for name, service in ours.items()}
    assert run["worker"] == ["worker"] and run["sink"] == ["sink"]
    assert run["topics"] == ["topics", "create"]
    env = _services(compose)["kafka"]["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # topics are provisioned


def test_every_personaflow_command_exists_in_the_cli(compose):
    for name, service in _personaflow_services(compose).items():
        args = command_list(service.get("command"))
        assert args, f"{name}: no command"
        resolve_cli(args)
        assert service.get("build") or service.get("image", "").startswith(PERSONAFLOW_IMAGE)


def test_other_services_run_binaries_their_images_ship(compose):
    for name, service in _services(compose).items():
        known = IMAGE_BINARIES[_image(service)]
        args = command_list(service.get("command"))
        if args and not args[0].startswith("-") and _image(service) != PERSONAFLOW_IMAGE:
            assert args[0] in known, f"{name}: {args[0]} is not in {_image(service)}"
        check = command_list(service.get("healthcheck", {}).get("test"))
        if check:
            assert check[0] == "CMD" and check[1] in known, f"{name}: healthcheck {check}"


def test_environment_names_are_settings_fields(compose, monkeypatch):
    for name, service in _personaflow_services(compose).items():
        command = command_list(service.get("command"))[0]
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        check_env(command, env, monkeypatch, f"docker-compose service {name}")


def test_check_env_rejects_unknown_names_and_bad_values(monkeypatch):
    with pytest.raises(AssertionError, match="PERSONAFLOW_WORKER_PORT"):
        check_env("worker", {"PERSONAFLOW_WORKER_PORT": "6066"}, monkeypatch, "example")
    with pytest.raises(ValueError, match="esp"):
        check_env("sink", {"PERSONAFLOW_SINK_ESP": "carrier-pigeon"}, monkeypatch, "example")
    with pytest.raises(AssertionError, match="no command"):
        resolve_cli(["no-such-command"])
    with pytest.raises(Exception, match="No such option"):
        resolve_cli(["dlq", "list", "--no-such-option"])
    assert resolve_cli(["topics", "create"]) == ["topics", "create"]


def test_workers_scale(compose):
    worker = _services(compose)["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker.get("expose") == ["6066"]
    for volume in worker.get("volumes", []):  # anonymous only: one RocksDB dir per replica
        assert ":" not in str(volume), f"worker volume {volume} would be shared by replicas"
    env = worker["environment"]
    assert env.get("PERSONAFLOW_WORKER_WEB_PORT", "6066") == "6066"


def test_dependencies_and_start_order(compose):
    services = _services(compose)
    for name, service in services.items():
        for dep in service.get("depends_on", {}) or {}:
            assert dep in services, f"{name} depends on unknown {dep}"
    assert services["worker"]["depends_on"]["topics"]["condition"] == (
        "service_completed_successfully"
    )
    bootstrap = services["worker"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"]
    assert f"PLAINTEXT://{bootstrap}" in services["kafka"]["environment"][
        "KAFKA_ADVERTISED_LISTENERS"
    ].split(",")
    sink = services["sink"]["environment"]
    assert sink["PERSONAFLOW_SINK_ESP"] == "smtp"
    assert sink["PERSONAFLOW_SINK_SMTP_HOST"] == "mailpit"


def test_mounted_config_files_exist(compose):
    for name, service in _services(compose).items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    for rule_file in prometheus["rule_files"]:
        assert (ROOT / "deploy/prometheus" / Path(rule_file).name).exists()
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["personaflow-worker"]["dns_sd_configs"][0] == {
        "names": ["worker"], "type": "A", "port": 6066, "refresh_interval": "15s"}  # fmt: skip
    assert jobs["personaflow-sink"]["static_configs"][0]["targets"] == ["sink:8090"]


def test_dockerfile_builds_the_cli_image():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert 'ENTRYPOINT ["personaflow"]' in text
    assert re.search(r"^EXPOSE 6066 8090$", text, re.M)
    copied = set(re.findall(r"^COPY (\w+) \./\1$", text, re.M))
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = set(re.findall(r'"(\w+)\*"', pyproject))
    assert packages and packages <= copied, f"Dockerfile does not copy {packages - copied}"
    assert "USER 10001" in text  # not root
