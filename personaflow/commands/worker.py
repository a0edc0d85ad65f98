"""``personaflow worker`` (a stream worker) and ``personaflow replay`` (rules over history)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def _overrides(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def worker(
    web_port: int = typer.Option(None, help="HTTP port of /metrics, /healthz, views [6066]"),
    data_dir: Path = typer.Option(None, help="where RocksDB tables live [.personaflow]"),
    clock: str = typer.Option(None, help="wall | event | accelerated [wall]"),
    clock_speed: float = typer.Option(None, help="accelerated clock: seconds per real second"),
    app_id: str = typer.Option(None, help="consumer group / changelog prefix"),
    topic_prefix: str = typer.Option(None, help="prefix of every topic name"),
    partitions: int = typer.Option(None, help="partitions of co-partitioned topics [12]"),
    rules: Path = typer.Option(None, help="persona/trigger rules YAML [shipped default]"),
    store: str = typer.Option(None, help="table store: rocksdb:// or memory://"),
    create_topics: bool = typer.Option(True, help="create missing catalogue topics first"),
    loglevel: str = typer.Option("info", help="debug | info | warning | error"),
) -> None:
    """Run a stream worker: events -> customer state -> persona transitions and triggers.

    Reads PERSONAFLOW_* settings (see streams/settings.py); options override them. Stops
    cleanly on SIGTERM / Ctrl-C. Run more of them (same app id) to share the partitions.
    """
    from streams.app import create_app, resolve_bootstrap
    from streams.settings import StreamSettings

    settings = StreamSettings(
        **_overrides(
            worker_web_port=web_port,
            data_dir=data_dir,
            clock=clock,
            clock_speed=clock_speed,
            app_id=app_id,
            topic_prefix=topic_prefix,
            partitions=partitions,
            rules_file=rules,
            store=store,
        )
    )
    bootstrap = resolve_bootstrap(settings)
    if create_topics:
        from personaflow.admin import create_topics as provision

        provision(
            bootstrap, settings.topic_prefix, settings.partitions, settings.replication_factor
        ).raise_for_errors()
    from processors.errors import RuleErrors

    try:
        app = create_app(settings, bootstrap=bootstrap)
    except RuleErrors as exc:  # a config error: say where, no traceback
        typer.echo(f"personaflow worker: invalid rules: {str(exc).strip()}", err=True)
        raise typer.Exit(2) from exc
    from faust.worker import Worker

    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()


def replay(
    file: Path = typer.Argument(..., help="JSONL history (the generator's --out format)"),
    rules: Path = typer.Option(None, help="rules YAML to replay with [shipped default]"),
    out: Path = typer.Option(Path("replay-out"), help="directory for the .jsonl outputs"),
    diff_against: Path = typer.Option(None, help="second rules YAML: compare trigger sets"),
) -> None:
    """Replay a history through the processors in event time, without a broker.

    Writes OUT/transitions.jsonl and OUT/triggers.jsonl; with --diff-against also replays
    with the other rules (OUT/against/), prints how the trigger sets differ and writes the
    triggers only one of them emits to OUT/diff.jsonl (with "only_in": "rules"/"against").
    """
    from streams.replay import diff_triggers, replay_file, write_diff

    result = replay_file(file, rules, out)
    typer.echo(result.summary())
    if diff_against is not None:
        other = replay_file(file, diff_against, out / "against")
        typer.echo(other.summary())
        diff = diff_triggers(result, other)
        write_diff(diff, out / "diff.jsonl")
        typer.echo(diff.summary())


def register(app: typer.Typer) -> None:
    """Add ``worker`` and ``replay`` to the main app."""
    app.command(name="worker")(worker)
    app.command(name="replay")(replay)
