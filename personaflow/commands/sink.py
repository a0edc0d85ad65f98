"""The ESP sink's commands: ``personaflow sink``, ``templates check`` and ``templates preview``.

Settings come from the environment (``PERSONAFLOW_SINK_*``, see sinks/settings.py); Kafka and
Redis from ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` or the running local stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

templates_app = typer.Typer(help="Email templates: lint them, preview a rendered email.")

TemplatesOpt = Annotated[
    Path | None,
    typer.Option("--templates", help="templates folder [default: the sink's built-in set]"),
]


def register(app: typer.Typer) -> None:
    """Add ``sink`` and ``templates`` to the main app."""
    app.command("sink")(sink)
    app.add_typer(templates_app, name="templates")


def sink(
    esp: Annotated[
        str | None, typer.Option("--esp", help="outbox | smtp | http [default: settings]")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="webhook/metrics port [default: 8090]")
    ] = None,
    no_web: Annotated[bool, typer.Option("--no-web", help="do not serve HTTP")] = False,
) -> None:
    """Run the ESP sink: consume triggers, send personalised email, publish Send Results."""
    from sinks.app import run_from_env

    code = run_from_env(esp=esp, port=port, web=not no_web)
    if code:
        raise typer.Exit(code)


def _templates_dir(path: Path | None) -> Path:
    if path is not None:
        return path
    from personaflow.settings import Settings
    from sinks.settings import SinkSettings

    return Settings().templates_dir or SinkSettings().templates_dir


@templates_app.command("check")
def templates_check(templates: TemplatesOpt = None) -> None:
    """Render every template folder against sample triggers (one per persona of the rules in
    use) and check persona/segment names against the rules; exit 1 on any problem."""
    from personaflow.settings import Settings
    from sinks.lint import check_templates

    folder = _templates_dir(templates)
    renders, problems = check_templates(folder, Settings().rules_file)
    for problem in problems:
        typer.echo(f"problem: {problem}")
    typer.echo(f"{renders} renders, {len(problems)} problem(s) in {folder}")
    if problems:
        raise typer.Exit(1)


@templates_app.command("preview")
def templates_preview(
    trigger_json: Annotated[
        str, typer.Argument(help="a Trigger as JSON: a file path, '-' for stdin, or inline")
    ],
    templates: TemplatesOpt = None,
    part: Annotated[
        str, typer.Option("--part", help="eml | html | text: what to print")
    ] = "eml",
) -> None:
    """Print the email a trigger renders to (no send, no Kafka, no Redis)."""
    import sys

    from pydantic import ValidationError

    from schemas.models import Trigger
    from sinks.compose import compose
    from sinks.errors import TemplateError
    from sinks.render import Renderer
    from sinks.settings import SinkSettings

    if trigger_json == "-":
        text = sys.stdin.read()
    elif Path(trigger_json).is_file():
        text = Path(trigger_json).read_text()
    else:
        text = trigger_json
    try:
        trigger = Trigger.model_validate_json(text)
    except ValidationError as exc:
        typer.echo(f"error: not a valid Trigger: {exc}", err=True)
        raise typer.Exit(2) from exc
    settings = SinkSettings(templates_dir=_templates_dir(templates))
    renderer = Renderer(settings.templates_dir, shop_url=settings.shop_url)
    try:
        email = compose(settings, renderer, trigger)
    except TemplateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if part == "html":
        typer.echo(email.rendered.html)
    elif part == "text":
        typer.echo(email.rendered.text)
    else:
        typer.echo(email.to_mime().as_string())
