"""``personaflow rules explain|check FILE``: read a persona/trigger rule file and report on it.

``explain`` prints states, transitions with their guards, triggers, unreachable states and
conflicting guards; ``check`` validates only and exits 1 on errors (each with file, line and
field) or, with ``--strict``, on warnings (unreachable states, conflicts).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from processors.ruleset import RuleSet

rules_app = typer.Typer(help="Persona and trigger rules: explain and validate rule files.")

FileArg = Annotated[
    Path | None,
    typer.Argument(help="rule file (YAML); omitted: the shipped default", show_default=False),
]
NoDefaultOpt = Annotated[
    bool, typer.Option("--no-default", help="read FILE alone, not merged over the default")
]


def register(app: typer.Typer) -> None:
    """Add ``rules`` to the main app."""
    app.add_typer(rules_app, name="rules")


def _load(path: Path | None, no_default: bool) -> RuleSet:
    """The rule set, or exit 1 after printing every problem (file:line [field]: message)."""
    from processors.errors import RuleError
    from processors.ruleset import load_rules

    try:
        return load_rules(path, with_default=not no_default)
    except RuleError as exc:
        for line in str(exc).splitlines():
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(1) from exc


@rules_app.command("explain")
def explain_cmd(
    file: FileArg = None,
    no_default: NoDefaultOpt = False,
    facts: Annotated[bool, typer.Option("--facts", help="also list the facts guards can use")]
    = False,
) -> None:
    """Explain a rule file: states, transitions, triggers, unreachable states, conflicts."""
    from processors.explain import render

    rules = _load(file, no_default)
    for line in render(rules, with_facts=facts):
        typer.echo(line)


@rules_app.command("check")
def check_cmd(
    file: FileArg = None,
    no_default: NoDefaultOpt = False,
    strict: Annotated[bool, typer.Option("--strict", help="warnings fail too")] = False,
) -> None:
    """Validate a rule file; exit 1 on errors (file:line [field]: message)."""
    from processors.explain import explain

    rules = _load(file, no_default)
    ex = explain(rules)
    warnings = [f"unreachable {dim} state {state!r}"
                for dim, states in ex.unreachable.items() for state in states]
    warnings += [f"conflict in {c.dimension}: {c.first} / {c.second} (priority {c.priority})"
                 for c in ex.conflicts]
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"ok: {len(rules.transitions)} transitions, {len(rules.triggers)} triggers "
               f"({', '.join(rules.files)})")
    if strict and warnings:
        raise typer.Exit(1)
