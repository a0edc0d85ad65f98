"""``python -m sinks``: the same as ``personaflow sink`` (settings from the environment)."""

from __future__ import annotations

import sys

from sinks.app import run_from_env

if __name__ == "__main__":
    sys.exit(run_from_env(web="--no-web" not in sys.argv[1:]))
