"""Seeded synthetic shoppers: :func:`generate_events` (the Python API) and the
``personaflow generate`` command (:mod:`personaflow.generator.cli`), which publishes them."""

from __future__ import annotations

from personaflow.generator.stream import generate_events

__all__ = ["generate_events"]
