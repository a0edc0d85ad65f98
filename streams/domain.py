"""The port to the domain core (processors/): the engine and the state codec, typed loosely.

streams/ never takes a decision itself: it hands (state, input, time) to the engine and
persists and emits what comes back. :func:`load_domain` builds the engine from a rules file
(the shipped default when ``None``).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class Outcome(Protocol):
    """What the engine returns: the new state and what to emit."""

    state: Any
    transitions: list[Any]
    triggers: list[Any]
    applied: bool


class EnginePort(Protocol):
    """The engine contract (see processors/engine.py)."""

    def apply(self, state: Any, customer_id: str, event: Any, ref: Any, now: float) -> Any: ...

    def tick(self, state: Any, customer_id: str, now: float, ref: Any) -> Any: ...

    def merge(
        self, state: Any, anonymous_state: Any, customer_id: str, now: float, cause_event_id: Any
    ) -> Any: ...

    def next_due(self, state: Any) -> float | None: ...


@dataclass(frozen=True)
class Domain:
    """The engine plus how to (de)serialise customer states."""

    engine: EnginePort
    encode_state: Callable[[Any], bytes]
    decode_state: Callable[[bytes], Any]
    input_ref: Callable[[str, int, int], Any]


def _load_rules(rules_file: Path | None) -> Any:
    engine_mod = importlib.import_module("processors.engine")
    loader = getattr(engine_mod, "load_rules", None)
    if loader is None:
        loader = importlib.import_module("processors.rules").load_rules
    return loader(rules_file) if rules_file is not None else loader()


def load_domain(rules_file: Path | None = None) -> Domain:
    """The engine for ``rules_file`` (default rules when ``None``) and the state codec."""
    engine_mod = importlib.import_module("processors.engine")
    rules = _load_rules(rules_file)
    return Domain(
        engine=engine_mod.Engine(rules),
        encode_state=engine_mod.encode_state,
        decode_state=engine_mod.decode_state,
        input_ref=engine_mod.InputRef,
    )


def persona_of(state: Any) -> str | None:
    """The lifecycle persona of a state ("" or ``None`` when it has none)."""
    value = getattr(state, "persona", None)
    return str(value) if value else None


def describe(state: Any) -> dict[str, Any]:
    """A JSON-friendly view of a state for the operator's web view (contact data removed)."""
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        data = _plain(dataclasses.asdict(state))
    elif hasattr(state, "model_dump"):
        data = state.model_dump(mode="json")
    else:
        data = {"state": repr(state)}
    for private in ("email", "first_name"):
        if data.get(private):
            data[private] = "<redacted>"
    return data if isinstance(data, dict) else {"state": data}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
