"""Release schema versions: snapshot changed ``.avsc`` files into history and assign ids.

Every released version of each schema is kept as ``schemas/avro/history/<Name>.v<N>.avsc`` and
listed in ``schemas/avro/registry.json`` with a new, never reused schema id. A new version is
released only if the current schema can read data written with every earlier version
(backward-transitive, see :mod:`schemas.compat`).

Usage: ``python -m schemas.release --check`` (exit 1 if a schema changed without a release, or
an unreleased change is incompatible) or ``python -m schemas.release`` (release the changes).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.avrogen import avsc_path, full_name, record_name, render
from schemas.compat import check_backward
from schemas.models import EVENT_TYPES
from schemas.registry import HISTORY_DIR, REGISTRY_FILE, fingerprint, load_json


@dataclass(frozen=True)
class Pending:
    """An event whose current schema is not yet a released version."""

    event_type: str
    version: int
    problems: tuple[str, ...]


def _empty_registry() -> dict[str, Any]:
    return {"subjects": {}}


def _load(path: Path) -> dict[str, Any]:
    return dict(load_json(path)) if path.exists() else _empty_registry()


def pending(registry_file: Path = REGISTRY_FILE) -> list[Pending]:
    """Events whose current ``.avsc`` differs from their latest released version."""
    data = _load(registry_file)
    out = []
    for event_type in EVENT_TYPES:
        current = load_json(avsc_path(event_type))
        versions = data["subjects"].get(full_name(event_type), {}).get("versions", [])
        olds = [load_json(registry_file.parent / v["file"]) for v in versions]
        if olds and olds[-1] == current:
            continue
        problems = [
            f"v{n}: {problem}"
            for n, old in enumerate(olds, start=1)
            for problem in check_backward(old, current)
        ]
        out.append(Pending(event_type, len(olds) + 1, tuple(problems)))
    return out


def release(registry_file: Path = REGISTRY_FILE) -> list[Pending]:
    """Write history files and registry entries for every compatible pending change."""
    data = _load(registry_file)
    next_id = 1 + max(
        (v["id"] for s in data["subjects"].values() for v in s["versions"]), default=0
    )
    done = []
    for item in pending(registry_file):
        if item.problems:
            continue
        name = record_name(item.event_type)
        file = f"{HISTORY_DIR.name}/{name}.v{item.version}.avsc"
        schema = load_json(avsc_path(item.event_type))
        (registry_file.parent / file).parent.mkdir(parents=True, exist_ok=True)
        (registry_file.parent / file).write_text(render(schema))
        subject = data["subjects"].setdefault(
            full_name(item.event_type), {"event_type": item.event_type, "versions": []}
        )
        subject["versions"].append(
            {"version": item.version, "id": next_id, "fingerprint": fingerprint(schema),
             "file": file}
        )
        next_id += 1
        done.append(item)
    registry_file.write_text(render(data))
    return done


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: report (``--check``) or release pending schema changes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report, exit 1 if pending")
    args = parser.parse_args(argv)
    todo = pending()
    for item in todo:
        state = "INCOMPATIBLE" if item.problems else "unreleased"
        print(f"{state}: {item.event_type} v{item.version}")
        for problem in item.problems:
            print(f"  - {problem}")
    if args.check:
        return 1 if todo else 0
    for item in release():
        print(f"released {item.event_type} v{item.version}")
    return 1 if any(item.problems for item in todo) else 0


if __name__ == "__main__":
    sys.exit(main())
