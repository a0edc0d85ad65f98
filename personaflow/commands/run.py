"""``personaflow run``: the main job on the embedded default (what ``make run`` calls)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from personaflow.generator.publish import PublishStats
    from personaflow.mainjob import OutputMonitor, OutputTally, Pipeline, RunOptions

console = Console()


def register(app: typer.Typer) -> None:
    """Add ``run`` to the main app."""
    app.command("run")(run)


def run(
    events: Annotated[
        int, typer.Option("--events", "-n", min=1, help="events to generate")
    ] = 20_000,
    customers: Annotated[int, typer.Option("--customers", "-c", min=1)] = 1_500,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="stream workers")] = 2,
    partitions: Annotated[int, typer.Option("--partitions", min=1)] = 6,
    seed: Annotated[int, typer.Option("--seed", help="same seed, same shoppers")] = 7,
    rate: Annotated[float, typer.Option("--rate", min=0, help="events/s; 0 = max")] = 0.0,
    workdir: Annotated[
        Path, typer.Option("--workdir", help="logs, RocksDB and outbox of the run")
    ] = Path(".personaflow/run"),
    end: Annotated[
        str | None,
        typer.Option("--end", help="ISO time the generated history ends at [default: now]"),
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="also write the summary as JSON here")
    ] = None,
) -> None:
    """Run the whole pipeline on the embedded local stack, print what it did, stop everything.

    Starts a local broker and Redis (unless KAFKA_BOOTSTRAP_SERVERS / REDIS_URL are set),
    provisions topics, starts the stream workers and the sink (file outbox), publishes a
    bounded run of generated shoppers, waits until every trigger has an outcome, prints a
    summary and shuts everything down.
    """
    from personaflow.mainjob import PipelineFailed, RunOptions

    options = RunOptions(
        events=events, customers=customers, seed=seed, workers=workers,
        partitions=partitions, rate=rate, workdir=workdir, report=report,
        history_end=_parse_end(end),
    )  # fmt: skip
    try:
        _run(options)
    except PipelineFailed as exc:
        console.print(f"[red]pipeline failed:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc


def _parse_end(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint="--end") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _run(options: RunOptions) -> None:
    from personaflow.mainjob import OutputMonitor, running_pipeline, wait_ready, write_report
    from personaflow.settings import Settings

    with running_pipeline(options, Settings()) as pipeline:
        endpoints = pipeline.endpoints
        console.print(
            f"stack: Kafka {endpoints.bootstrap}, Redis {endpoints.redis_url}, "
            f"topic prefix {pipeline.prefix}"
        )
        worker_ports = pipeline.start_workers(options.workers, options.partitions)
        sink_port = pipeline.start_sink()
        with console.status(f"starting {options.workers} worker(s) and the sink ..."):
            wait_ready(pipeline, worker_ports, sink_port, timeout_s=120)
        console.print(f"workers on ports {worker_ports}, sink on {sink_port}; logs in "
                      f"{pipeline.workdir / 'logs'}")  # fmt: skip
        monitor = OutputMonitor(pipeline.endpoints.bootstrap, pipeline.prefix)
        monitor.start()
        try:
            stats = _publish(pipeline, options)
            settled = _settle(monitor, pipeline, options)
        finally:
            monitor.stop()
        _print_summary(stats, monitor.tally, pipeline, settled)
        if options.report is not None:
            write_report(options.report, dict(stats.by_type), monitor.tally)
            console.print(f"report: {options.report}")
        console.print("stopping workers, sink and the local stack ...")
    console.print("done: nothing left running.")


def _publish(pipeline: Pipeline, options: RunOptions) -> PublishStats:
    from personaflow.generator.cli import ProgressBar, default_start
    from personaflow.generator.publish import Publisher
    from personaflow.generator.stream import generate_events
    from personaflow.mainjob import ending_now

    with console.status(f"generating {options.events:,} events ..."):
        history = list(
            generate_events(options.seed, options.customers, options.events, default_start())
        )
        stream = ending_now(history, end=options.history_end)
    with ProgressBar(options.events) as report:
        stats = Publisher(pipeline.endpoints.bootstrap, pipeline.prefix).publish(
            stream, options.rate, report
        )
    if not stats.ok:
        console.print(f"[red]{stats.failed} event(s) not delivered[/red]: {dict(stats.errors)}")
    return stats


def _settle(monitor: OutputMonitor, pipeline: Pipeline, options: RunOptions) -> bool:
    """Wait for the pipeline to go quiet, showing live output counts."""
    from personaflow.mainjob import wait_settled

    with console.status("processing ...") as status:
        stop = threading.Event()

        def refresh() -> None:
            while not stop.wait(0.5):
                with monitor.lock:
                    tally = monitor.tally
                    line = (
                        f"processing: {tally.transitions:,} transitions, "
                        f"{len(tally.triggers):,} triggers, {len(tally.results):,} send outcomes"
                    )
                status.update(line)

        threading.Thread(target=refresh, name="run-status", daemon=True).start()
        try:
            return wait_settled(monitor, pipeline, options)
        finally:
            stop.set()


def _table(title: str, counts: Counter[str], limit: int = 20) -> Table:
    table = Table("name", "count", title=title, title_justify="left")
    for name, count in counts.most_common(limit):
        table.add_row(name, f"{count:,}")
    return table


def _print_summary(
    stats: PublishStats, tally: OutputTally, pipeline: Pipeline, settled: bool
) -> None:
    from personaflow.mainjob import subjects_by_persona

    console.rule("summary")
    console.print(_table(f"events published ({stats.delivered:,} delivered)", stats.by_type))
    console.print(
        _table("persona distribution (lifecycle)", Counter(tally.lifecycle_persona.values()))
    )
    console.print(
        _table(f"persona transitions ({tally.transitions:,})", tally.transitions_by_edge, 15)
    )
    console.print(_table(f"triggers by type ({len(tally.triggers):,})", tally.triggers_by_type))
    console.print(_table(f"sends by outcome ({len(tally.results):,})", tally.outcomes()))
    samples = Table(
        "persona", "subject line", "emails", title="sample emails", title_justify="left"
    )
    for persona, subjects in sorted(
        subjects_by_persona(pipeline.outbox, tally.trigger_persona).items()
    ):
        for subject, count in subjects.most_common(2):
            samples.add_row(persona, subject, str(count))
    console.print(samples)
    console.print(f"outbox: {pipeline.outbox.resolve()}  (one .eml per send)")
    if tally.decode_errors:
        console.print(f"[yellow]{tally.decode_errors} output record(s) failed to decode[/yellow]")
    if not settled:
        console.print("[yellow]not every trigger had an outcome before the timeout[/yellow]")
