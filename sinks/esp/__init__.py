"""ESP adapters behind one interface (:class:`sinks.esp.base.EspAdapter`), chosen by settings."""

from __future__ import annotations

from sinks.esp.base import EspAdapter
from sinks.esp.factory import make_adapter

__all__ = ["EspAdapter", "make_adapter"]
