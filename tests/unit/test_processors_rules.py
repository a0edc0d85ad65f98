"""Rule files: the shipped default, user overrides, line-precise validation, explain/check CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from personaflow.commands import rules as rules_cmd
from processors.errors import RuleError, RuleErrors
from processors.explain import explain
from processors.ruleset import DEFAULT_RULES, load_rules, rules_from_text


def errors_of(text: str, **kw: bool) -> list[RuleError]:
    with pytest.raises(RuleErrors) as info:
        rules_from_text(text, "my.yaml", **kw)
    assert info.value.retriable is False
    return info.value.errors


def test_default_rules_load_and_have_no_warnings() -> None:
    rules = load_rules()
    assert rules.files == (str(DEFAULT_RULES),)
    assert {t.trigger_type for t in rules.triggers} >= {
        "cart_abandonment", "browse_abandonment", "post_purchase_cross_sell", "welcome",
        "re_engagement", "win_back"}
    assert set(rules.dimensions["lifecycle"].states) >= {
        "new_visitor", "browsing", "cart_abandoner", "first_time_buyer", "repeat", "loyal",
        "high_value", "at_risk", "lapsed", "win_back"}
    ex = explain(rules)
    assert ex.conflicts == [] and all(not v for v in ex.unreachable.values())


def test_override_replaces_disables_and_adds_by_id(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("""
settings:
  budget: {per_day: 2}
deadlines:
  cart: {steps: [30m, 6h]}
transitions:
  - {id: starts_browsing, enabled: false}
triggers:
  - id: welcome
    type: welcome_v2
    source: {deadline: welcome}
  - id: loyal_hello
    type: persona_entry
    source: {transition: loyal}
""")
    rules = load_rules(path)
    assert rules.settings.budget.per_day == 2 and rules.settings.budget.per_week == 3
    assert rules.deadlines.cart == (1800.0, 21_600.0)
    assert "starts_browsing" not in {t.id for t in rules.transitions}
    by_id = {t.id: t for t in rules.triggers}
    assert by_id["welcome"].trigger_type == "welcome_v2"
    assert by_id["welcome"].file == str(path) and by_id["welcome"].line == 9
    assert by_id["loyal_hello"].source == "loyal"
    assert "cart_reminder" in by_id
    assert rules.files == (str(path), str(DEFAULT_RULES))


def test_replace_true_ignores_the_default() -> None:
    text = """
replace: true
dimensions:
  lifecycle: {initial: a, states: [a, b]}
  interest: {initial: none, states: [none]}
  journey: {initial: x, states: [x]}
transitions:
  - {id: t1, dimension: lifecycle, from: [a], to: b, events: [Order Completed]}
"""
    rules = rules_from_text(text, "solo.yaml")
    assert [t.id for t in rules.transitions] == ["t1"] and rules.triggers == ()
    assert rules.files == ("solo.yaml",)


def test_errors_name_file_line_and_field() -> None:
    errs = errors_of("""settings:
  budget: {per_day: -1}
  bogus: 1
transitions:
  - id: x
    dimension: lifecycle
    from: [nobody]
    to: loyal
    when: orders >> 2
  - id: y
    to: nowhere
    events: [Product Seen]
    priority: urgent
triggers:
  - id: t
    type: ok_type
    source: {deadline: someday}
""")
    got = {(e.line, e.field) for e in errs}
    assert (2, "settings.budget.per_day") in got
    assert (3, "settings") in got
    assert (7, "transitions[x].from") in got
    assert (9, "transitions[x].when") in got
    assert (11, "transitions[y].to") in got
    assert (12, "transitions[y].events") in got
    assert (13, "transitions[y].priority") in got
    assert (17, "triggers[t].source") in got
    assert all(e.file == "my.yaml" for e in errs)
    when = next(e for e in errs if e.field == "transitions[x].when")
    assert "column 9" in when.message


def test_yaml_syntax_error_has_line_and_no_python_tags() -> None:
    errs = errors_of("settings:\n  budget: [1, 2\n")
    assert errs[0].line is not None and "invalid YAML" in errs[0].message
    errs = errors_of("settings: !!python/object/apply:os.system ['true']\n")
    assert "invalid YAML" in errs[0].message


def test_duplicate_ids_unknown_facts_and_bad_experiment() -> None:
    errs = errors_of("""triggers:
  - {id: a, type: x, source: {deadline: cart}}
  - {id: a, type: x, source: {deadline: cart}, when: "foo > 1"}
  - {id: b, type: y, source: {deadline: cart}, experiment: {id: e, variants: [A, A]}}
""")
    messages = " | ".join(str(e) for e in errs)
    assert "duplicate id 'a'" in messages
    assert "unknown fact 'foo'" in messages
    assert "distinct" in messages


def _cli() -> typer.Typer:
    app = typer.Typer()
    rules_cmd.register(app)

    @app.callback()
    def _root() -> None:
        """test root"""

    return app


def test_cli_explain_lists_states_conflicts_and_unreachable(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("""
dimensions:
  lifecycle:
    initial: new_visitor
    states: [new_visitor, browsing, cart_abandoner, first_time_buyer, repeat, loyal,
             high_value, at_risk, lapsed, win_back, ghost]
transitions:
  - {id: clash, dimension: lifecycle, from: [new_visitor], to: repeat,
     events: [Product Viewed], priority: 10}
""")
    result = CliRunner().invoke(_cli(), ["rules", "explain", str(path), "--facts"])
    assert result.exit_code == 0, result.output
    assert "unreachable: ghost" in result.output
    assert "clash and starts_browsing" in result.output or \
        "starts_browsing and clash" in result.output
    assert "since_last_seen" in result.output
    check = CliRunner().invoke(_cli(), ["rules", "check", str(path), "--strict"])
    assert check.exit_code == 1 and "ghost" in check.output


def test_cli_check_reports_errors_with_location(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("transitions:\n  - id: t\n    to: browsing\n    when: 'views >'\n")
    result = CliRunner().invoke(_cli(), ["rules", "check", str(path)])
    assert result.exit_code == 1
    assert f"{path}:4 [transitions[t].when]" in result.output
    ok = CliRunner().invoke(_cli(), ["rules", "check"])
    assert ok.exit_code == 0 and ok.output.startswith("ok: ")
    missing = CliRunner().invoke(_cli(), ["rules", "check", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 1 and "cannot read" in missing.output
