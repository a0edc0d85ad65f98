"""The ``personaflow`` command. Each area registers its own subcommands from
``personaflow/commands/<area>.py`` (a ``register(app)`` function); heavy imports (Faust,
Kafka clients) happen inside the commands so ``personaflow --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="personaflow",
    help="Stream-native engine for micro-targeted email personalisation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# area modules, each owning its subcommands
_AREAS = ("dev", "rules", "worker", "sink", "ops", "run")


def _register_all() -> None:
    for area in _AREAS:
        module = importlib.import_module(f"personaflow.commands.{area}")
        module.register(app)


@app.callback()
def _root() -> None:
    """Stream-native engine for micro-targeted email personalisation."""


@app.command()
def version() -> None:
    """Print the installed personaflow version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("personaflow"))


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
