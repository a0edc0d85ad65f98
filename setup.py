"""Build hook. Everything else is declared in pyproject.toml.

By default the package is pure Python. With ``PERSONAFLOW_NATIVE_BUILD=1`` the domain core
(``processors/``, the modules listed by :func:`native_sources`) is also compiled with mypyc:
the same source, type-checked, turned into C extension modules that run about twice as fast
(docs/native.md). ``make native`` does this in place for a checkout::

    PERSONAFLOW_NATIVE_BUILD=1 python setup.py build_ext --inplace -j 2

Before compiling, the SHA-256 of every compiled source is written to
``processors/_native_sources.json``. At import, ``processors/__init__.py`` compares it with
the sources next to it and falls back to the pure-Python modules when any differs (a
compiled module never runs code other than the source it sits beside).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from setuptools import setup

ROOT = Path(__file__).resolve().parent
PACKAGE = "processors"
MANIFEST = ROOT / PACKAGE / "_native_sources.json"
# exception classes stay interpreted: mypyc cannot compile subclasses of built-in types
NOT_COMPILED = {"__init__.py", "errors.py"}


def native_sources() -> list[Path]:
    """The modules of processors/ that are compiled, in a stable order."""
    return sorted(p for p in (ROOT / PACKAGE).glob("*.py") if p.name not in NOT_COMPILED)


def write_manifest(sources: list[Path]) -> None:
    """Record what is compiled: module name -> SHA-256 of its source."""
    digests = {p.stem: hashlib.sha256(p.read_bytes()).hexdigest() for p in sources}
    MANIFEST.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")


def native_extensions() -> list[Any]:
    if os.environ.get("PERSONAFLOW_NATIVE_BUILD") != "1":
        return []
    from mypyc.build import mypycify  # only needed for the native build

    sources = native_sources()
    write_manifest(sources)
    relative = [str(p.relative_to(ROOT)) for p in sources]
    # one shared library inside the package (processors/_native__mypyc...so), not at the top
    return list(mypycify(relative, opt_level="3", group_name=f"{PACKAGE}._native"))


if __name__ == "__main__":
    try:
        setup(ext_modules=native_extensions())
    except BaseException:
        MANIFEST.unlink(missing_ok=True)  # a failed build must not look like a finished one
        raise
