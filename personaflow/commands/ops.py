"""Subcommands of this area; see personaflow/cli.py."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app (nothing yet)."""
