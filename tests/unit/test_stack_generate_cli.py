"""`personaflow generate --out` writes JSONL that replays to exactly the generated events."""

from __future__ import annotations

from datetime import UTC, datetime

from typer.testing import CliRunner

from personaflow.cli import app
from personaflow.generator import generate_events
from schemas.codec import decode_json


def test_generate_out_writes_replayable_jsonl(tmp_path):
    out = tmp_path / "events.jsonl"
    result = CliRunner().invoke(app, ["generate", "--events", "400", "--customers", "12",
                                      "--seed", "5", "--start", "2026-04-01", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) == 400
    replayed = [decode_json(line) for line in lines]
    assert replayed == list(generate_events(5, 12, 400, datetime(2026, 4, 1, tzinfo=UTC)))


def test_generate_now_mode_stamps_wall_clock(tmp_path):
    out = tmp_path / "now.jsonl"
    before = datetime.now(UTC).replace(microsecond=0)
    result = CliRunner().invoke(app, ["generate", "-n", "50", "--time-mode", "now",
                                      "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    stamps = [decode_json(line).occurred_at for line in out.read_text().splitlines()]
    assert all(before <= t <= datetime.now(UTC) for t in stamps)


def test_generate_rejects_bad_start(tmp_path):
    result = CliRunner().invoke(app, ["generate", "--start", "yesterday",
                                      "--out", str(tmp_path / "x")])  # fmt: skip
    assert result.exit_code == 2
    assert "ISO 8601" in result.output


def test_generate_without_a_broker_says_what_to_do(tmp_path, monkeypatch):
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "PERSONAFLOW_KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["generate", "-n", "5"])
    assert result.exit_code == 2
    assert "personaflow dev up" in result.output


def test_replay_names_the_bad_line(tmp_path):
    good = tmp_path / "good.jsonl"
    CliRunner().invoke(app, ["generate", "-n", "3", "--out", str(good)])
    bad = tmp_path / "bad.jsonl"
    lines = good.read_text().splitlines()
    bad.write_text("\n".join([lines[0], lines[1], '{"type": "Page Viewed"}', lines[2]]) + "\n")
    result = CliRunner().invoke(app, ["generate", "--replay", str(bad), "--out",
                                      str(tmp_path / "never.jsonl")])  # fmt: skip
    assert result.exit_code == 2
    assert "bad.jsonl:3" in result.output
    assert not (tmp_path / "never.jsonl").exists()


def test_replay_to_jsonl_copies_events(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    CliRunner().invoke(app, ["generate", "-n", "120", "--seed", "9", "--out", str(first)])
    result = CliRunner().invoke(app, ["generate", "--replay", str(first), "--out", str(second)])
    assert result.exit_code == 0, result.output
    assert [decode_json(x) for x in first.read_text().splitlines()] == [
        decode_json(x) for x in second.read_text().splitlines()]  # fmt: skip
