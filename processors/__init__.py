"""The domain core: pure functions of (state, input, time). No Kafka, Redis, network or clock.

- :mod:`processors.engine`: the contract the stream workers call (Engine, InputRef, Outcome)
- :mod:`processors.state` / :mod:`processors.statecodec`: CustomerState and its compact codec
- :mod:`processors.reducers`: one reducer per input event type
- :mod:`processors.machine`: the declarative persona state machine
- :mod:`processors.deadlines`: time-based behaviour kept as data in the state
- :mod:`processors.triggers`: trigger rules, arbitration, budget, quiet hours, holdout, variants
- :mod:`processors.policy`: shared send rules (also used by the sink)
- :mod:`processors.scoring`: RFM, engagement and category affinity
- :mod:`processors.ruleset` (+ ``ruleload``, ``ruleitems``, ``rulebuilder``, ``yamlsrc``):
  rule files, validated with file/line/field errors; :mod:`processors.conditions` and
  :mod:`processors.facts`: the guard language and what it can read
- :mod:`processors.merge`: identity stitching; :mod:`processors.explain`: ``rules explain``
- :mod:`processors.samples`: event builders for tests, examples and benchmarks

See docs/personas.md.

Compiled or interpreted (docs/native.md): ``make native`` compiles these modules with mypyc
next to their sources. They are used only when every compiled module's source still matches
the digest recorded at build time; otherwise (or with ``PERSONAFLOW_NATIVE=0``) the
interpreted sources are imported instead. :data:`NATIVE` says which, and why.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

_HERE = Path(__file__).resolve().parent
_MANIFEST = _HERE / "_native_sources.json"


_BUILT = any(any(_HERE.glob("*" + s)) for s in importlib.machinery.EXTENSION_SUFFIXES)


def _native_mode() -> str:
    """``"compiled"``, or ``"interpreted: <why>"`` (no build, turned off, or out of date)."""
    if not _BUILT:
        return "interpreted: not built (make native)"
    if os.environ.get("PERSONAFLOW_NATIVE", "1") == "0":
        return "interpreted: PERSONAFLOW_NATIVE=0"
    try:
        digests = json.loads(_MANIFEST.read_text())
    except (OSError, ValueError):
        return "interpreted: compiled modules without their source digests (make native)"
    for module, digest in sorted(digests.items()):
        source = _HERE / f"{module}.py"
        if not source.is_file() or hashlib.sha256(source.read_bytes()).hexdigest() != digest:
            return f"interpreted: compiled {module} is out of date with its source (make native)"
    return "compiled"


class _SourcesOnly(importlib.abc.MetaPathFinder):
    """Imports this package's modules from their ``.py`` files, never a compiled module."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(__name__ + "."):
            return None
        source = _HERE / (fullname.rpartition(".")[2] + ".py")
        if not source.is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, source)


NATIVE = _native_mode()
"""How this package's modules run: ``"compiled"`` (mypyc) or ``"interpreted: <why>"``."""

if _BUILT and NATIVE != "compiled":
    sys.meta_path.insert(0, _SourcesOnly())
