"""``personaflow templates check`` and ``templates preview``, through the real command code."""

from __future__ import annotations

import json
import shutil

import typer
from typer.testing import CliRunner

from personaflow.commands import sink as sink_commands
from sinks.settings import TEMPLATES_DIR

app = typer.Typer()
sink_commands.register(app)
runner = CliRunner()

TRIGGER = {
    "trigger_id": "t-1", "customer_id": "c-1", "trigger_type": "browse_abandonment",
    "rule_id": "r", "created_at": "2026-01-01T00:00:00Z", "recipient": "a@example.com",
    "persona": "loyal", "tokens": {"first_name": "Bo"},
}


def test_templates_check_passes_on_shipped_templates():
    result = runner.invoke(app, ["templates", "check"])
    assert result.exit_code == 0, result.output
    assert "0 problem(s)" in result.output


def test_templates_check_fails_on_a_broken_folder(tmp_path):
    shutil.copytree(TEMPLATES_DIR, tmp_path / "t")
    (tmp_path / "t" / "welcome" / "subject.j2").write_text("{% if %}")
    result = runner.invoke(app, ["templates", "check", "--templates", str(tmp_path / "t")])
    assert result.exit_code == 1
    assert "problem: welcome" in result.output


def test_preview_prints_the_rendered_email_from_inline_json_or_file(tmp_path):
    result = runner.invoke(app, ["templates", "preview", json.dumps(TRIGGER)])
    assert result.exit_code == 0, result.output
    assert "Subject: Bo, we picked something for you" in result.output
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in result.output
    path = tmp_path / "t.json"
    path.write_text(json.dumps(TRIGGER))
    text = runner.invoke(app, ["templates", "preview", str(path), "--part", "text"])
    assert text.exit_code == 0 and text.output.startswith("Hi Bo,")


def test_preview_rejects_an_invalid_trigger():
    result = runner.invoke(app, ["templates", "preview", '{"trigger_id": ""}'])
    assert result.exit_code == 2
