"""Local development commands: ``dev up|down|status``, ``topics create|list`` and ``generate``.

Heavy imports (Kafka clients, the generator) happen inside the commands so ``--help`` is fast.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from personaflow.settings import Settings

console = Console()
err = Console(stderr=True)

dev_app = typer.Typer(help="The embedded local stack: Kafka-protocol broker + Redis, no Docker.")
topics_app = typer.Typer(help="Topic provisioning from the catalogue (schemas/topics.py).")

PrefixOpt = Annotated[
    str | None, typer.Option("--prefix", help="topic name prefix [default: settings]")
]
PartitionsOpt = Annotated[
    int | None, typer.Option("--partitions", min=1, help="partitions [default: settings]")
]


def register(app: typer.Typer) -> None:
    """Add ``dev``, ``topics`` and ``generate`` to the main app."""
    from personaflow.generator.cli import generate

    app.add_typer(dev_app, name="dev")
    app.add_typer(topics_app, name="topics")
    app.command("generate")(generate)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


# ---------------------------------------------------------------- dev


def _print_exports(endpoints: Any) -> None:
    console.print("Connect with:")
    for name, value in endpoints.as_env().items():
        console.print(f"  export {name}={value}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C (SIGINT) or SIGTERM while the block runs."""
    stop = threading.Event()

    def _handler(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dev_app.command("up")
def dev_up(
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="leave the stack running in the background")
    ] = False,
    provision: Annotated[
        bool, typer.Option("--provision/--no-provision", help="create the catalogue topics")
    ] = True,
) -> None:
    """Start broker + Redis on free loopback ports and print how to connect."""
    from personaflow.devstack import LocalStack, StackError, read_state

    settings = Settings()
    running = read_state(settings)
    if running is not None and running.alive():
        console.print(f"A local stack is already running (started {running.started_at}).")
        _print_exports(running.endpoints)
        return
    stack = LocalStack(settings)
    try:
        endpoints = stack.start(detached=detach)
        if provision:
            _print_topic_report(stack.provision())
    except StackError as exc:
        stack.stop()
        raise _fail(str(exc)) from exc
    console.print(
        f"[green]Local stack up[/green]: broker {endpoints.bootstrap}, redis {endpoints.redis_url}"
    )
    _print_exports(endpoints)
    if detach:
        console.print("Running in the background; stop it with `personaflow dev down`.")
        return
    try:
        with _stop_signals() as stop:
            console.print("Press Ctrl-C to stop.")
            while not stop.wait(0.5):
                pass
    finally:
        stack.stop()
        console.print("Local stack stopped.")


@dev_app.command("down")
def dev_down() -> None:
    """Stop a detached local stack and remove its state file."""
    from personaflow.devstack import stop_recorded_stack

    state = stop_recorded_stack(Settings())
    if state is None:
        console.print("No local stack recorded; nothing to stop.")
        return
    console.print(f"Stopped the local stack (broker {state.bootstrap}, redis {state.redis_url}).")


@dev_app.command("status")
def dev_status() -> None:
    """Say whether a local stack runs and where; exit code 1 when none does."""
    from personaflow.devstack import read_state, state_path

    settings = Settings()
    state = read_state(settings)
    if state is None:
        raise _fail("no local stack recorded: run `personaflow dev up`")
    if not state.alive():
        raise _fail(f"{state_path(settings)} names a stack that is no longer running")
    console.print(f"[green]running[/green] since {state.started_at}")
    console.print(f"  broker {state.bootstrap} (pid {state.broker_pid})")
    console.print(f"  redis  {state.redis_url} (pid {state.redis_pid})")
    _print_exports(state.endpoints)


@dev_app.command("env")
def dev_env() -> None:
    """Print only the export lines, for `eval "$(personaflow dev env)"`."""
    from personaflow.devstack import StackNotRunning, resolve_endpoints

    try:
        endpoints = resolve_endpoints(Settings())
    except StackNotRunning as exc:
        raise _fail(str(exc)) from exc
    for name, value in endpoints.as_env().items():
        typer.echo(f"export {name}={value}")


# ---------------------------------------------------------------- topics


def _print_topic_report(report: Any) -> None:
    table = Table("topic", "status", title="topics")
    for name in report.names.values():
        if name in report.errors:
            status = f"[red]error[/red]: {report.errors[name]}"
        elif name in report.created:
            status = "[green]created[/green]"
        else:
            status = "already present"
        if name in report.configs_skipped:
            status += f" (configs not applied: {report.configs_skipped[name]})"
        table.add_row(name, status)
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
    summary = f"{len(report.created)} created, {len(report.present)} already present"
    console.print(summary + ("" if report.changed else " - nothing changed"))


def _bootstrap(settings: Settings) -> str:
    from personaflow.devstack import StackNotRunning, resolve_endpoints

    try:
        return resolve_endpoints(settings, need_redis=False).bootstrap
    except StackNotRunning as exc:
        raise _fail(str(exc)) from exc


@topics_app.command("create")
def topics_create(
    prefix: PrefixOpt = None,
    partitions: PartitionsOpt = None,
    replication: Annotated[
        int | None, typer.Option("--replication", min=1, help="replication factor")
    ] = None,
) -> None:
    """Create every catalogue topic that is missing (idempotent) and print what was done."""
    from personaflow.admin import create_topics
    from personaflow.kafka import KafkaClientError

    settings = Settings()
    try:
        report = create_topics(
            _bootstrap(settings),
            settings.topic_prefix if prefix is None else prefix,
            partitions or settings.partitions,
            replication or settings.replication_factor,
        )
    except KafkaClientError as exc:
        raise _fail(str(exc)) from exc
    _print_topic_report(report)
    if report.errors:
        raise typer.Exit(1)


@topics_app.command("list")
def topics_list(prefix: PrefixOpt = None) -> None:
    """List the topics on the cluster (with the prefix), marking catalogue topics."""
    from personaflow.admin import list_topics
    from personaflow.kafka import KafkaClientError

    settings = Settings()
    try:
        chosen = settings.topic_prefix if prefix is None else prefix
        infos = list_topics(_bootstrap(settings), chosen)
    except KafkaClientError as exc:
        raise _fail(str(exc)) from exc
    table = Table("topic", "partitions", "catalogue")
    for info in infos:
        table.add_row(info.name, str(info.partitions), "yes" if info.in_catalogue else "")
    console.print(table)
