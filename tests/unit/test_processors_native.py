"""The domain core compiled with mypyc (``make native``, docs/native.md): used only when it
matches its sources, switched off by ``PERSONAFLOW_NATIVE=0``, and deciding exactly what the
interpreted sources decide."""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import processors

PACKAGE = Path(processors.__file__).parent
BUILT = any(any(PACKAGE.glob("*" + s)) for s in importlib.machinery.EXTENSION_SUFFIXES)
needs_build = pytest.mark.skipif(not BUILT, reason="processors/ not compiled: run `make native`")

_PROBE = ("import json, processors, processors.engine as e, processors.ruleset as r; "
          "print(json.dumps([processors.NATIVE, e.__file__, r.DEFAULT_RULES.is_file()]))")


def _probe(cwd: Path, **env: str) -> tuple[str, str, bool]:
    """NATIVE, the engine module's file and whether the shipped rules are found, as seen
    by a fresh interpreter started in ``cwd``."""
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=cwd, env={**os.environ, **env},
                         capture_output=True, text=True, check=True, timeout=60)
    mode, engine_file, rules_found = json.loads(out.stdout.strip().splitlines()[-1])
    return mode, engine_file, rules_found


def test_turned_off_imports_the_sources() -> None:
    mode, engine_file, rules_found = _probe(PACKAGE.parent, PERSONAFLOW_NATIVE="0")
    assert mode.startswith("interpreted: ")
    assert engine_file.endswith("engine.py") and rules_found


@needs_build
def test_built_and_current_runs_compiled() -> None:
    mode, engine_file, rules_found = _probe(PACKAGE.parent, PERSONAFLOW_NATIVE="1")
    assert mode == "compiled"
    assert not engine_file.endswith(".py")
    assert rules_found  # a compiled module's own __file__ is not where the package is


@needs_build
def test_an_edited_source_falls_back_to_the_sources(tmp_path: Path) -> None:
    copy = tmp_path / "processors"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "scoring.py").open("a") as f:
        f.write("\n# edited after the build\n")
    mode, engine_file, rules_found = _probe(tmp_path, PERSONAFLOW_NATIVE="1")
    assert "compiled scoring is out of date" in mode
    assert engine_file == str(copy / "engine.py") and rules_found


@needs_build
def test_compiled_without_digests_falls_back(tmp_path: Path) -> None:
    copy = tmp_path / "processors"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "_native_sources.json").unlink()
    mode, engine_file, _ = _probe(tmp_path, PERSONAFLOW_NATIVE="1")
    assert mode.startswith("interpreted: compiled modules without their source digests")
    assert engine_file.endswith("engine.py")


def _digest(**env: str) -> str:
    """bench.processors' digest of every outcome and state over 3,000 generator events."""
    out = subprocess.run([sys.executable, "-m", "bench.processors", "--digest", "--events",
                          "3000"], cwd=PACKAGE.parent, env={**os.environ, **env},
                         capture_output=True, text=True, check=True, timeout=300)
    return str(json.loads(out.stdout.strip().splitlines()[-1])["digest"])


@needs_build
def test_compiled_and_interpreted_decide_the_same() -> None:
    assert _digest(PERSONAFLOW_NATIVE="1") == _digest(PERSONAFLOW_NATIVE="0")
