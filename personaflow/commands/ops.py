"""Operator commands: ``personaflow dlq list | show | republish`` (see docs/operations.md).

Payloads hold customer data: ``list`` and ``show`` print sizes, reasons and origins only,
unless ``--show-payload`` is given.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from personaflow.dlq import BeforeWrite, DeadLetterRecord, DlqSnapshot, RepublishReport

dlq_app = typer.Typer(
    name="dlq",
    help="Inspect dead-letter topics and re-publish dead letters after a fix.",
    no_args_is_help=True,
)


class DlqTopic(StrEnum):
    """The dead-letter topics of the catalogue."""

    EVENTS = "dlq.events"
    SENDS = "dlq.sends"


TopicOption = Annotated[
    DlqTopic, typer.Option("--topic", "-t", help="dead-letter topic (catalogue name)")
]


def register(app: typer.Typer) -> None:
    """Add the ``dlq`` command group to the main app."""
    app.add_typer(dlq_app, name="dlq")


def _bootstrap_and_topic(topic: DlqTopic) -> tuple[str, str]:
    from personaflow.devstack import resolve_endpoints
    from personaflow.settings import Settings

    settings = Settings()
    endpoints = resolve_endpoints(settings, need_redis=False)
    return endpoints.bootstrap, f"{settings.topic_prefix}{topic.value}"


def _fail(exc: Exception) -> typer.Exit:
    retriable = getattr(exc, "retriable", False)
    hint = " (retriable: try again)" if retriable else ""
    typer.secho(f"error: {exc}{hint}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=75 if retriable else 1)


def _read(topic: DlqTopic) -> DlqSnapshot:
    from personaflow.devstack import StackError
    from personaflow.dlq import DlqError, read_dlq

    try:
        bootstrap, full_topic = _bootstrap_and_topic(topic)
        return read_dlq(bootstrap, full_topic)
    except (DlqError, StackError) as exc:
        raise _fail(exc) from exc


def _origin(letter: DeadLetterRecord) -> str:
    topic = letter.original_topic or "?"
    partition = "?" if letter.original_partition is None else letter.original_partition
    offset = "?" if letter.original_offset is None else letter.original_offset
    return f"{topic}[{partition}]@{offset}"


@dlq_app.command("list")
def list_command(
    topic: TopicOption = DlqTopic.EVENTS,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="newest N shown")] = 50,
    show_payload: Annotated[
        bool, typer.Option("--show-payload", help="also print payloads (customer data!)")
    ] = False,
) -> None:
    """List dead letters: reference, reason, error type, origin, size, re-publish status."""
    from rich.console import Console
    from rich.table import Table

    from personaflow.dlq import payload_text

    snapshot = _read(topic)
    console = Console()
    newest = sorted(snapshot.letters, key=lambda x: (x.timestamp_ms or 0, x.ref))[-limit:]
    table = Table(title=f"{snapshot.topic}: {len(snapshot.letters)} dead letters")
    for column in ("ref", "reason", "error type", "origin", "bytes", "status"):
        table.add_column(column, overflow="fold")
    for letter in newest:
        status = "republished" if snapshot.is_republished(letter) else "pending"
        table.add_row(str(letter.ref), letter.reason, letter.error_type, _origin(letter),
                      str(letter.size), status)  # fmt: skip
    console.print(table)
    for reason, count in snapshot.reason_counts().items():
        console.print(f"{count:>7}  {reason}", markup=False, highlight=False)
    if show_payload:
        for letter in newest:
            typer.echo(f"{letter.ref}: {payload_text(letter.payload)}")


@dlq_app.command("show")
def show_command(
    ref: Annotated[str, typer.Argument(metavar="OFFSET", help="OFFSET or PARTITION:OFFSET")],
    topic: TopicOption = DlqTopic.EVENTS,
    show_payload: Annotated[
        bool, typer.Option("--show-payload", help="also print the payload (customer data!)")
    ] = False,
) -> None:
    """Show one dead letter: every header, origin, key size and re-publish status."""
    from personaflow.dlq import DlqError, DlqRef, payload_text

    snapshot = _read(topic)
    try:
        letter = snapshot.find(*DlqRef.parse(ref))
    except DlqError as exc:
        raise _fail(exc) from exc
    marker = snapshot.republished.get(letter.source_id)
    lines = [
        f"dead letter  {letter.source_id}",
        f"reason       {letter.reason}",
        f"error type   {letter.error_type}",
        f"origin       {_origin(letter)}",
        f"payload      {letter.size} bytes",
        f"key          {'none' if letter.key is None else f'{len(letter.key)} bytes'}",
        f"status       {'republished' if marker else 'pending'}",
    ]
    lines += [f"header       {name}: {value!r}" for name, value in sorted(letter.headers.items())]
    typer.echo("\n".join(lines))
    if show_payload:
        typer.echo(payload_text(letter.payload))


def _print_report(report: RepublishReport) -> None:
    verb = "would re-publish" if report.dry_run else "re-published"
    fixed = " (fixed payload)" if report.fixed else ""
    for letter, target in report.republished:
        typer.echo(f"{verb} {letter.source_id} -> {target}{fixed}")
    for letter, why in report.skipped:
        typer.echo(f"skipped {letter.source_id}: {why}")
    if report.rearmed:
        typer.echo(f"cleared {len(report.rearmed)} failed sink-ledger entries: they will be sent")
    typer.echo(f"{verb}: {len(report.republished)}, skipped: {len(report.skipped)}")


@dlq_app.command("republish")
def republish_command(
    topic: TopicOption = DlqTopic.EVENTS,
    where_reason: Annotated[
        str | None, typer.Option("--where-reason", help="only reasons containing this text")
    ] = None,
    offset: Annotated[
        str | None, typer.Option("--offset", help="one dead letter: OFFSET or PARTITION:OFFSET")
    ] = None,
    fix_json: Annotated[
        Path | None,
        typer.Option("--fix-json", exists=True, dir_okay=False, help="corrected event (JSON)"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would be done")] = False,
    rearm: Annotated[
        bool,
        typer.Option(help="dlq.sends: clear the sink ledger's 'failed' entries so they resend"),
    ] = True,
) -> None:
    """Re-publish dead letters to their original topics with their original keys, once each."""
    from personaflow.devstack import StackError
    from personaflow.dlq import DlqError, republish

    if offset is None and where_reason is None and fix_json is None:
        typer.echo("no --offset or --where-reason: every pending dead letter is selected")
    try:
        bootstrap, full_topic = _bootstrap_and_topic(topic)
        hook = _rearmer() if rearm and topic is DlqTopic.SENDS and not dry_run else None
        report = republish(
            bootstrap,
            full_topic,
            ref=offset,
            where_reason=where_reason,
            fix_json=fix_json.read_bytes() if fix_json is not None else None,
            dry_run=dry_run,
            before_write=hook,
        )
    except (DlqError, StackError) as exc:
        raise _fail(exc) from exc
    _print_report(report)


def _rearmer() -> BeforeWrite:
    """The ledger re-arm hook, on the sink's Redis and key prefix."""
    from personaflow.devstack import resolve_endpoints
    from personaflow.dlq import ledger_rearmer
    from personaflow.settings import Settings
    from sinks.settings import SinkSettings

    redis_url = resolve_endpoints(Settings()).redis_url
    return ledger_rearmer(redis_url, SinkSettings().redis_key_prefix)
