"""The operator docs name real things: every environment variable is a settings field, and
every ``personaflow`` command line in a code block resolves in the CLI with its options."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.unit.test_deploy_compose import env_names, resolve_cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / name for name in ("operations.md", "scaling.md", "metrics.md")]
PENDING_COMMANDS: set[str] = set()
"""Commands another area is still adding (none now): the docs may name them before they exist."""
NOT_SETTINGS = {"PERSONAFLOW_"}


def _all_env_names() -> set[str]:
    from personaflow.settings import Settings
    from sinks.settings import SinkSettings
    from streams.settings import StreamSettings

    return env_names(Settings) | env_names(StreamSettings) | env_names(SinkSettings)


def _command_lines(text: str) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    lines = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|&(?!&)", line.split("#")[0]):
                words = shlex.split(re.split(r"[|>]", part)[0])
                while words and "=" in words[0]:  # VAR=value personaflow ...
                    words.pop(0)
                if words[:1] == ["personaflow"]:
                    lines.append(" ".join(words))
    return lines


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_environment_variables_in_docs_are_settings(doc):
    named = set(re.findall(r"\bPERSONAFLOW_[A-Z0-9_]+", doc.read_text())) - NOT_SETTINGS
    known = _all_env_names()
    assert not sorted(n for n in named if n not in known and not n.endswith("_"))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_command_lines_in_docs_exist(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # files the examples name exist here (options check them)
    for line in _command_lines(doc.read_text()):
        args = shlex.split(line)[1:]
        for arg in args:
            if re.fullmatch(r"[\w.-]+\.(json|jsonl|yaml)", arg):
                (tmp_path / arg).write_text("{}")
        if args and args[0] in PENDING_COMMANDS:
            continue
        resolve_cli(args)


def test_command_line_extraction():
    text = "```sh\nA=1 personaflow dlq list -n 2 > out  # note\nx && personaflow topics create\n```"
    assert _command_lines(text) == ["personaflow dlq list -n 2", "personaflow topics create"]
