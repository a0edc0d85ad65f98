"""Replay: the live processor driven in event time without a broker."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from streams.domain import load_domain
from streams.harness import TEST_RULES, cart_scenario, clock_advance, purchase
from streams.replay import Replayer, diff_triggers, replay_events, replay_file, write_diff

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()  # a Monday, 10:00 UTC
HOUR = 3600.0


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(TEST_RULES)
    return path


def _lines(events: list) -> list[bytes]:
    return [e.model_dump_json().encode() for e in events]


def _cart_triggers(result, customer: str) -> list[dict]:
    return [
        t for t in result.triggers
        if t["customer_id"] == customer and t["trigger_type"] == "cart_abandonment"
    ]  # fmt: skip


def test_cart_reminder_fires_after_one_hour_with_the_cart_items(rules: Path) -> None:
    events, cart_id, product_id = cart_scenario(T0)
    history = [*events, clock_advance(T0 + 180 + HOUR + 60)]
    result = replay_events(_lines(history), load_domain(rules))
    cart = _cart_triggers(result, "cust-1")
    assert len(cart) == 1
    assert [p["product_id"] for p in cart[0]["products"]] == [product_id]
    assert cart[0]["episode"].endswith(cart_id) or cart_id in cart[0]["trigger_id"]


def test_purchase_cancels_the_later_cart_steps(rules: Path) -> None:
    events, cart_id, _ = cart_scenario(T0)
    history = [
        *events,
        clock_advance(T0 + 180 + HOUR + 60),
        purchase(T0, 2 * HOUR, "cust-1", cart_id),
        clock_advance(T0 + 4 * 24 * HOUR, 1),
    ]
    result = replay_events(_lines(history), load_domain(rules))
    assert len(_cart_triggers(result, "cust-1")) == 1  # the 1 h step only, not 24 h / 48 h
    steps = [clock_advance(T0 + 180 + hours * HOUR + 60, n) for n, hours in enumerate((1, 24, 48))]
    without_purchase = replay_events(_lines([*events, *steps]), load_domain(rules))
    assert [t["step"] for t in _cart_triggers(without_purchase, "cust-1")] == [1, 2, 3]


def test_anonymous_history_is_merged_into_the_customer_on_identify(rules: Path) -> None:
    events, _, product_id = cart_scenario(T0)
    replayer = Replayer(load_domain(rules))
    for line in _lines(events):
        replayer.feed(line)
    replayer.finish()
    tables = replayer.tables.data
    assert tables["identity"]["a:anon-1"] == b"cust-1"
    assert "anon-1" not in tables["customers"]  # handed over, then deleted
    state = replayer.processor.domain.decode_state(tables["customers"]["cust-1"])
    assert product_id in [view.product_id for view in state.views]


def test_replay_is_deterministic_across_processes(tmp_path: Path) -> None:
    """Same history -> same trigger ids, in another process with another hash seed."""
    from personaflow.generator.publish import write_jsonl
    from personaflow.generator.stream import generate_events

    history = tmp_path / "history.jsonl"
    write_jsonl(generate_events(11, 40, 800, datetime(2026, 1, 5, tzinfo=UTC)), history)
    here = sorted(replay_file(history, None, tmp_path / "here").trigger_ids())
    script = (
        "import sys; from pathlib import Path; from streams.replay import replay_file; "
        "replay_file(Path(sys.argv[1]), None, Path(sys.argv[2]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = tmp_path / "there"
    subprocess.run([sys.executable, "-c", script, str(history), str(out)], check=True, env=env)
    rows = (out / "triggers.jsonl").read_bytes().splitlines()
    assert sorted(orjson.loads(r)["trigger_id"] for r in rows) == here
    assert here, "the generator's mix should produce some triggers"


def test_diff_against_reports_triggers_only_one_rule_set_emits(
    tmp_path: Path, rules: Path
) -> None:
    events, _, _ = cart_scenario(T0)
    history = tmp_path / "history.jsonl"
    history.write_bytes(b"\n".join(_lines([*events, clock_advance(T0 + 3 * HOUR)])) + b"\n")
    no_cart = tmp_path / "no-cart.yaml"
    no_cart.write_text(TEST_RULES + "triggers:\n  - id: cart_reminder\n    enabled: false\n")
    base = replay_file(history, rules, tmp_path / "a")
    other = replay_file(history, no_cart, tmp_path / "b")
    diff = diff_triggers(base, other)
    assert {t["trigger_type"] for t in diff.only_a} == {"cart_abandonment"}
    assert diff.only_b == []
    assert (tmp_path / "a" / "triggers.jsonl").read_bytes().count(b"\n") == len(base.triggers)
    write_diff(diff, tmp_path / "diff.jsonl")
    rows = [orjson.loads(line) for line in (tmp_path / "diff.jsonl").read_bytes().splitlines()]
    assert [(r["only_in"], r["trigger_type"]) for r in rows] == [("rules", "cart_abandonment")]


def test_undecodable_history_lines_are_counted_not_fatal(rules: Path) -> None:
    events, _, _ = cart_scenario(T0)
    lines = [b"{not json", *_lines(events), b'{"type": "Nope"}']
    result = replay_events(lines, load_domain(rules))
    assert result.dead_letters == 2
    assert result.events == len(events)
