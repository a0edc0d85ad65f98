"""The embedded local stack: start, record, resolve, stop, and leave nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis
from confluent_kafka.admin import AdminClient

from personaflow.devstack import (
    LocalStack,
    RedisProcess,
    StackNotRunning,
    local_stack,
    pid_alive,
    read_state,
    resolve_endpoints,
)
from personaflow.settings import Settings
from schemas.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parents[2]


def _settings(tmp_path: Path, **kw: object) -> Settings:
    """Settings that ignore the caller's environment endpoints."""
    base: dict[str, object] = {"kafka_bootstrap_servers": "", "redis_url": "",
                               "data_dir": tmp_path / ".personaflow", "partitions": 2}
    return Settings(**{**base, **kw})  # type: ignore[arg-type]


def _gone(*pids: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(pid_alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_local_stack_records_itself_and_resolves(tmp_path):
    settings = _settings(tmp_path)
    stack = LocalStack(settings)
    endpoints = stack.start()
    try:
        state = read_state(settings)
        assert state is not None and state.alive()
        assert resolve_endpoints(settings) == endpoints
        assert redis.Redis.from_url(endpoints.redis_url).ping() is True
        assert AdminClient({"bootstrap.servers": endpoints.bootstrap}).list_topics(timeout=5)
    finally:
        stack.stop()
    assert _gone(state.broker_pid, state.redis_pid)
    assert read_state(settings) is None
    with pytest.raises(StackNotRunning, match="personaflow dev up"):
        resolve_endpoints(settings)


def test_configured_endpoints_win_over_the_state_file(tmp_path):
    settings = _settings(tmp_path, kafka_bootstrap_servers="kafka:9092", redis_url="redis://r:1/0")
    assert resolve_endpoints(settings).bootstrap == "kafka:9092"
    assert resolve_endpoints(settings).redis_url == "redis://r:1/0"


def test_stale_state_file_is_reported(tmp_path):
    settings = _settings(tmp_path)
    settings.data_dir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state = {"bootstrap": "127.0.0.1:1", "redis_url": "redis://127.0.0.1:2/0",
             "broker_pid": dead.pid, "redis_pid": dead.pid, "broker_port": 1, "redis_port": 2,
             "started_at": "2026-01-01T00:00:00+00:00", "owner_pid": dead.pid}  # fmt: skip
    (settings.data_dir / "stack.json").write_text(json.dumps(state))
    with pytest.raises(StackNotRunning, match="no longer running"):
        resolve_endpoints(settings)


def test_local_stack_context_manager_provisions_and_cleans_up(tmp_path):
    settings = _settings(tmp_path, topic_prefix="ctx-")
    with local_stack(settings) as endpoints:
        state = read_state(settings)
        topics = AdminClient({"bootstrap.servers": endpoints.bootstrap}).list_topics(timeout=5)
        assert {f"ctx-{s.name}" for s in ALL_TOPICS} <= set(topics.topics)
        assert all(len(topics.topics[f"ctx-{s.name}"].partitions) == 2 for s in ALL_TOPICS)
    assert state is not None and _gone(state.broker_pid, state.redis_pid)
    assert read_state(settings) is None


def _cli(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"}}  # fmt: skip
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "personaflow.cli", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_cli_dev_up_detach_status_down(tmp_path):
    up = _cli(tmp_path, "dev", "up", "--detach")
    assert up.returncode == 0, up.stderr
    state = read_state(_settings(tmp_path))
    assert state is not None
    try:
        assert f"export KAFKA_BOOTSTRAP_SERVERS={state.bootstrap}" in up.stdout
        assert f"export REDIS_URL={state.redis_url}" in up.stdout
        assert state.alive()  # outlived the command that started it
        status = _cli(tmp_path, "dev", "status")
        assert status.returncode == 0 and state.bootstrap in status.stdout
        exports = _cli(tmp_path, "dev", "env").stdout.splitlines()
        assert exports == [f"export KAFKA_BOOTSTRAP_SERVERS={state.bootstrap}",
                           f"export REDIS_URL={state.redis_url}"]  # fmt: skip
        again = _cli(tmp_path, "dev", "up", "--detach")
        assert "already running" in again.stdout
    finally:
        down = _cli(tmp_path, "dev", "down")
    assert down.returncode == 0 and "Stopped" in down.stdout
    assert _gone(state.broker_pid, state.redis_pid)
    assert _cli(tmp_path, "dev", "status").returncode == 1


def test_cli_dev_up_foreground_stops_on_ctrl_c(tmp_path):
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "personaflow.cli", "dev", "up",
                             "--no-provision"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C" in line:
            break
    state = read_state(_settings(tmp_path))
    assert state is not None and state.alive(), lines
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 0
    assert _gone(state.broker_pid, state.redis_pid)
    assert read_state(_settings(tmp_path)) is None


_ORPHAN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from personaflow.devstack import BrokerProcess, RedisProcess
    broker, redis = BrokerProcess(), RedisProcess()
    broker.start(); redis.start()
    print(broker.pid, redis.pid, flush=True)
    time.sleep(60)
""")


def test_servers_die_with_a_killed_parent():
    parent = subprocess.Popen([sys.executable, "-c", _ORPHAN], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert parent.stdout is not None
    broker_pid, redis_pid = map(int, parent.stdout.readline().split())
    assert pid_alive(broker_pid) and pid_alive(redis_pid)
    parent.kill()  # SIGKILL: no atexit, no finally
    parent.wait()
    assert _gone(broker_pid, redis_pid)


def test_redis_restart_keeps_its_port(tmp_path):
    server = RedisProcess(data_dir=tmp_path / "r")
    server.start()
    try:
        port = server.port
        server.stop()
        assert not server.running()
        server.start()
        assert server.port == port and redis.Redis.from_url(server.url).ping()
    finally:
        server.stop()


def test_a_taken_port_is_retried_on_a_fresh_one(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        stack = LocalStack(_settings(tmp_path))
        stack.redis.port = taken
        try:
            endpoints = stack.start()
            assert stack.redis.port != taken
            assert redis.Redis.from_url(endpoints.redis_url).ping() is True
        finally:
            stack.stop()
