"""Rule-file reading helpers: the error-collecting builder and value converters."""

from __future__ import annotations

import re
from typing import Any

from processors.conditions import Condition, ConditionError, compile_condition
from processors.errors import RuleError
from processors.facts import GETTERS
from processors.yamlsrc import Path_, Source

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like ``90s``, ``30m``, ``48h``, ``30d``, ``2w``."""
    if isinstance(value, bool):
        raise TypeError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration (use e.g. 30m, 48h, 30d): {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


class Builder:
    """Collects errors while reading the layers."""

    def __init__(self, layers: list[Source]) -> None:
        self.layers = layers
        self.errors: list[RuleError] = []

    # ------------------------------------------------------------------ helpers
    def err(self, msg: str, src: Source, path: Path_, field: str) -> None:
        self.errors.append(RuleError(msg, file=src.file, line=src.line(path), field=field))

    def lookup(self, path: Path_) -> tuple[Any, Source, Path_] | None:
        """The value at ``path`` in the highest layer that has it."""
        for src in self.layers:
            node: Any = src.data
            for key in path:
                if not isinstance(node, dict) or key not in node:
                    break
                node = node[key]
            else:
                return node, src, path
        return None

    def value(self, path: Path_, default: Any, conv: Any) -> Any:
        """``conv(value)`` of the setting at ``path`` (errors recorded), else ``default``."""
        found = self.lookup(path)
        if found is None:
            return default
        raw, src, where = found
        try:
            return conv(raw)
        except (ValueError, TypeError) as exc:
            self.err(str(exc), src, where, ".".join(map(str, path)))
            return default

    def check_keys(self, data: Any, allowed: set[str], src: Source, path: Path_) -> None:
        name = ".".join(map(str, path)) or "(top level)"
        if not isinstance(data, dict):
            self.err("expected a mapping", src, path, name)
            return
        for key in data:
            if str(key) not in allowed:
                known = ", ".join(sorted(allowed))
                self.err(f"unknown key {key!r} (known: {known})", src, (*path, str(key)), name)

    def condition(self, text: Any, src: Source, path: Path_, field: str) -> Condition | None:
        if text is None:
            return None
        if isinstance(text, bool):
            text = "true" if text else "false"
        try:
            return compile_condition(str(text), GETTERS)
        except ConditionError as exc:
            self.err(f"bad condition: {exc}", src, path, field)
            return None


def int_min(low: int) -> Any:
    def conv(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"expected an integer >= {low}, got {v!r}")
        return v

    return conv


def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"expected true or false, got {v!r}")
    return v


def share(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
        raise ValueError(f"expected a share between 0 and 1, got {v!r}")
    return float(v)


