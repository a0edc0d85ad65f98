"""YAML reading that remembers where every value came from (file and line), for error reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from processors.errors import RuleError, RuleErrors

Path_ = tuple[str | int, ...]


class Source:
    """One parsed YAML file: its data and the 1-based line of every value by path."""

    def __init__(self, file: str, data: Any, lines: dict[Path_, int]) -> None:
        self.file = file
        self.data = data
        self.lines = lines

    def line(self, path: Path_) -> int | None:
        """The line of the value at ``path`` or of its nearest parent."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


def _walk(node: yaml.Node, path: Path_, out: dict[Path_, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _walk(value, (*path, str(key.value)), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), out)


def parse_yaml(text: str, file: str) -> Source:
    """Parse ``text`` (safe loader: no object tags); raises :class:`RuleErrors` with the line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        error = RuleError(f"invalid YAML: {exc.problem or exc}", file=file, line=line)
        raise RuleErrors([error]) from exc
    except yaml.YAMLError as exc:
        raise RuleErrors([RuleError(f"invalid YAML: {exc}", file=file)]) from exc
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return Source(file, data, lines)


def read_yaml(path: Path) -> Source:
    """Read and parse a YAML file; a missing or unreadable file is a :class:`RuleErrors`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        error = RuleError(f"cannot read rule file: {exc.strerror}", file=str(path))
        raise RuleErrors([error]) from exc
    return parse_yaml(text, str(path))
