"""Child services of the main job: started in their own process group, stopped for sure.

A service is stopped with SIGTERM (graceful: drain, commit), then SIGKILL of its whole group
after a grace period, so `personaflow run` never leaves a process behind, even when a child
hangs or spawned helpers of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Service:
    """One child process with its log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        log.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace_s: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``grace_s``, then SIGKILL the process group. Returns exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait(timeout=10)
        # helpers the child spawned in its session die with it
        self._signal_group(signal.SIGKILL)
        return self.process.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def personaflow_argv(*args: str) -> list[str]:
    """argv running a personaflow subcommand with this interpreter (works without PATH)."""
    return [sys.executable, "-m", "personaflow.cli", *args]


def wait_until(predicate: object, timeout_s: float, interval_s: float = 0.25) -> bool:
    """Poll ``predicate()`` until true or timeout; returns whether it became true."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())
