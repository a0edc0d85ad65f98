"""The README's first command, end to end: `personaflow run` on the embedded default.

Runs the real main job (its own Tansu broker and Redis, workers, sink, generator) as a
subprocess, twice: with one worker and with two. Both must finish cleanly, report non-zero
triggers and sends, leave no process behind, and the two runs must emit the same trigger ids.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.e2e

# both runs replay the same history ending at the same moment (a minute ago), so their trigger
# ids are comparable and their triggers are fresh for the sink
END = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0).isoformat()


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def _run(tmp_path: Path, workers: int) -> dict[str, object]:
    workdir = tmp_path / f"run-w{workers}"
    report = workdir / "report.json"
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}  # fmt: skip
    env["PERSONAFLOW_DATA_DIR"] = str(workdir / "data")
    done = subprocess.run(
        [sys.executable, "-m", "personaflow.cli", "run", "--events", "4000", "--customers", "400",
         "--workers", str(workers), "--partitions", "4", "--workdir", str(workdir),
         "--end", END, "--report", str(report)],
        env=env, capture_output=True, timeout=600, check=False,
    )  # fmt: skip
    output = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0, output[-4000:]
    assert "summary" in output and "sends by outcome" in output
    assert _processes_mentioning(str(workdir)) == []
    return orjson.loads(report.read_bytes())  # type: ignore[no-any-return]


def test_main_job_runs_and_two_workers_emit_the_same_triggers_as_one(tmp_path: Path) -> None:
    one = _run(tmp_path, workers=1)
    two = _run(tmp_path, workers=2)
    for report in (one, two):
        assert sum(report["events_by_type"].values()) == 4000  # type: ignore[union-attr]
        assert report["trigger_ids"], "no triggers"
        assert report["sends_by_outcome"].get("sent", 0) > 0  # type: ignore[union-attr]
        assert report["decode_errors"] == 0
    # The work is split by partition, not changed by it: event-time alignment, identity
    # requests released at their Identify's time and merge parking give the same order of
    # every customer's events however the partitions are split (docs/streams.md).
    ids_one, ids_two = set(one["trigger_ids"]), set(two["trigger_ids"])  # type: ignore[arg-type]
    assert ids_one == ids_two, (
        f"1 vs 2 workers: {len(ids_one - ids_two)} trigger ids only with one worker, "
        f"{len(ids_two - ids_one)} only with two (of {len(ids_one | ids_two)})"
    )


def test_main_job_fails_cleanly_when_a_worker_cannot_start(tmp_path: Path) -> None:
    """A worker that exits at start-up (here: a broken rules file) stops the run with exit 1,
    a message naming the service and its log, and no process left behind."""
    workdir = tmp_path / "run-broken"
    rules = tmp_path / "broken.yaml"
    rules.write_text("version: 1\npersonas:\n  lifecycle: [oops\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}  # fmt: skip
    env["PERSONAFLOW_DATA_DIR"] = str(workdir / "data")
    env["PERSONAFLOW_RULES_FILE"] = str(rules)
    done = subprocess.run(
        [sys.executable, "-m", "personaflow.cli", "run", "--events", "200", "--customers", "20",
         "--workers", "1", "--partitions", "2", "--workdir", str(workdir)],
        env=env, capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    output = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 1, output[-4000:]
    assert "pipeline failed" in output and "worker" in output, output[-4000:]
    unwrapped = "".join(output.split())  # the console wraps long paths
    assert f"{workdir}/" in unwrapped and "/logs/worker-0.log" in unwrapped, output[-4000:]
    assert f"invalidrules:{rules}:4:invalidYAML" in unwrapped, output[-4000:]
    assert "Traceback" not in output
    assert _processes_mentioning(str(workdir)) == []
