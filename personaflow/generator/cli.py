"""``personaflow generate``: synthetic shoppers to Kafka (Avro) or to a JSONL file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from personaflow.generator.publish import PublishStats
from personaflow.generator.stream import generate_events
from personaflow.settings import Settings
from schemas.models import Envelope

console = Console(stderr=True)


class TimeMode(StrEnum):
    """How event times are set: simulated history, or the wall clock at publish time."""

    HISTORY = "history"
    NOW = "now"


def default_start() -> datetime:
    """History starts 30 days before today's midnight (UTC); pass --start to pin it."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=30)


def _parse_start(value: str | None) -> datetime:
    if not value:
        return default_start()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint="--start") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _events(seed: int, customers: int, events: int, start: datetime,
            mode: TimeMode) -> Iterator[Envelope]:  # fmt: skip
    clock: Callable[[], datetime] | None = None
    if mode is TimeMode.NOW:
        def clock() -> datetime:
            return datetime.now(UTC)

    return generate_events(seed, customers, events, start, clock=clock)


def _summary(stats: PublishStats, target: str) -> None:
    table = Table("event type", "count", title=f"generated -> {target}")
    for name, count in sorted(stats.by_type.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(name, str(count))
    console.print(table)
    line = (f"produced {stats.produced}, delivered {stats.delivered}, failed {stats.failed} "
            f"in {stats.seconds:.2f}s ({stats.rate:,.0f} events/s)")  # fmt: skip
    console.print(line, highlight=False)
    for error, count in stats.errors.most_common():
        console.print(f"  [red]{error}[/red]: {count}")


def _input_event(line: bytes) -> Envelope:
    from schemas.codec import decode_json
    from schemas.errors import DecodeError

    event = decode_json(line)
    if not isinstance(event, Envelope):
        raise DecodeError(f"{event.__class__.__name__} is not an input event", line)
    return event


def read_jsonl(path: Path) -> list[Envelope]:
    """Every event of a JSONL file, validated; a bad line stops with its line number."""
    from schemas.errors import DecodeError

    events: list[Envelope] = []
    number = 0
    try:
        with path.open("rb") as lines:
            for number, line in enumerate(lines, 1):  # noqa: B007 - reported on error
                if line.strip():
                    events.append(_input_event(line))
    except OSError as exc:
        raise typer.BadParameter(str(exc), param_hint="--replay") from exc
    except DecodeError as exc:
        raise typer.BadParameter(f"{path}:{number}: {exc.reason}", param_hint="--replay") from exc
    return events


def _bootstrap(settings: Settings, prefix: str, create_topics: bool) -> str:
    from personaflow.admin import create_topics as provision
    from personaflow.devstack import resolve_endpoints
    from personaflow.generator.publish import missing_topics

    bootstrap = resolve_endpoints(settings, need_redis=False).bootstrap
    if create_topics:
        provision(bootstrap, prefix, settings.partitions,
                  settings.replication_factor).raise_for_errors()  # fmt: skip
    missing = missing_topics(bootstrap, prefix)
    if missing:
        raise typer.BadParameter(
            f"topics missing on {bootstrap}: {', '.join(missing)}; run `personaflow topics "
            "create` first or pass --create-topics"
        )
    return bootstrap


def generate(
    events: Annotated[int, typer.Option("--events", "-n", min=0, help="how many events")] = 1000,
    customers: Annotated[int, typer.Option("--customers", "-c", min=1, help="shoppers")] = 100,
    seed: Annotated[int, typer.Option("--seed", "-s", help="same seed, same events")] = 42,
    rate: Annotated[float, typer.Option("--rate", "-r", min=0, help="events/s; 0 = max")] = 0.0,
    out: Annotated[Path | None, typer.Option("--out", help="write JSONL here instead")] = None,
    time_mode: Annotated[TimeMode, typer.Option("--time-mode")] = TimeMode.HISTORY,
    start: Annotated[
        str | None, typer.Option("--start", help="history start (ISO 8601) [default: -30d]")
    ] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="topic prefix")] = None,
    create_topics: Annotated[
        bool, typer.Option("--create-topics", help="provision missing topics first")
    ] = False,
    replay: Annotated[
        Path | None, typer.Option("--replay", help="publish the events of a JSONL file instead")
    ] = None,
) -> None:
    """Generate seeded synthetic shoppers' events; publish them as Avro or write JSONL."""
    from personaflow.devstack import StackNotRunning
    from personaflow.generator.publish import Publisher, write_jsonl
    from personaflow.kafka import KafkaClientError

    settings = Settings()
    if replay is not None:
        loaded = read_jsonl(replay)
        stream, events = iter(loaded), len(loaded)
    else:
        stream = _events(seed, customers, events, _parse_start(start), time_mode)
    topic_prefix = settings.topic_prefix if prefix is None else prefix
    with ProgressBar(events) as report:
        try:
            if out is not None:
                target = str(out)
                stats = write_jsonl(stream, out, report)
            else:
                bootstrap = _bootstrap(settings, topic_prefix, create_topics)
                target = f"Kafka {bootstrap}"
                stats = Publisher(bootstrap, topic_prefix).publish(stream, rate, report)
        except (StackNotRunning, KafkaClientError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
    _summary(stats, target)
    if not stats.ok:
        raise typer.Exit(1)


class ProgressBar:
    """A rich progress bar of delivered events, as a context manager yielding a callback."""

    def __init__(self, total: int) -> None:
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console, transient=False)  # fmt: skip
        self.task = self.bar.add_task("delivered", total=total)

    def __enter__(self) -> Callable[[PublishStats], None]:
        self.bar.start()
        return self._update

    def _update(self, stats: PublishStats) -> None:
        self.bar.update(self.task, completed=stats.delivered)

    def __exit__(self, *_: object) -> None:
        self.bar.stop()
