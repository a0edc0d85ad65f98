"""The shared fixtures use KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set and start nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_INNER = textwrap.dedent("""
    import os
    from pathlib import Path

    def _servers():
        found = set()
        for proc in Path("/proc").iterdir():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if proc.name.isdigit() and int(proc.name) != os.getpid() and (
                    b"tansu" in cmd or b"redis-server" in cmd):
                found.add(int(proc.name))
        return found

    BEFORE = _servers()

    def test_configured_endpoints_are_used(kafka_bootstrap, redis_url, make_topics, unique):
        assert kafka_bootstrap == os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        assert redis_url == os.environ["REDIS_URL"]
        assert make_topics(unique)["events.site"] == unique + "events.site"
        assert _servers() <= BEFORE  # nothing new was started
""")


def test_fixtures_honour_environment(kafka_bootstrap, redis_url, tmp_path):
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(_INNER)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_url}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "--rootdir", str(tmp_path), str(test_file)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
