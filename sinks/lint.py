"""``templates check``: render every template folder against the sample triggers and report
problems (render errors, empty subjects, unescaped markup, missing unsubscribe link, and
``persona`` / ``segment`` compared with names the engine never emits)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import TemplateSyntaxError, nodes

from sinks.errors import TemplateError
from sinks.personas import (
    LAPSING_PERSONAS,
    LOYAL_PERSONAS,
    NEWCOMER_PERSONAS,
    TOP_SEGMENTS,
    Vocabulary,
    vocabulary,
)
from sinks.render import PARTS, RenderedEmail, Renderer
from sinks.samples import TRIGGER_TYPES, sample_triggers

_UNSUB = "https://unsubscribe.example/u?t=tok"


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: which folder, which sample trigger, what is wrong."""

    folder: str
    sample: str
    message: str

    def __str__(self) -> str:
        return f"{self.folder} [{self.sample}]: {self.message}"


def _check_rendered(folder: str, sample: str, r: RenderedEmail) -> list[Problem]:
    subject, html, text = r.subject, r.html, r.text
    problems = []
    if "<script>" in html or "<b>Bold" in html:
        problems.append(Problem(folder, sample, "event data is not escaped in the HTML part"))
    if _UNSUB not in html and _UNSUB.replace("&", "&amp;") not in html:
        problems.append(Problem(folder, sample, "no unsubscribe link in the HTML part"))
    if _UNSUB not in text:
        problems.append(Problem(folder, sample, "no unsubscribe link in the text part"))
    if len(subject) > 150:
        problems.append(Problem(folder, sample, f"subject is {len(subject)} chars (> 150)"))
    return problems


def check_templates(
    templates_dir: Path, rules_file: Path | None = None
) -> tuple[int, list[Problem]]:
    """``(renders done, problems)`` for every folder and sample trigger; persona names come
    from the shipped rules merged with ``rules_file`` (the override the engine runs)."""
    renderer = Renderer(templates_dir)
    folders = sorted(set(renderer.trigger_types()) | set(TRIGGER_TYPES) | {"_default"})
    problems: list[Problem] = []
    renders = 0
    for folder in folders:
        if not (templates_dir / folder).is_dir():
            problems.append(Problem(folder, "-", "no template folder (uses _default)"))
            continue
        missing = [p for p in PARTS if not (templates_dir / folder / f"{p}.j2").is_file()]
        if missing:
            problems.append(Problem(folder, "-", f"missing parts: {', '.join(missing)}"))
            continue
        for trigger in sample_triggers(folder, rules_file):
            renders += 1
            try:
                rendered = renderer.render(trigger, _UNSUB)
            except TemplateError as exc:
                problems.append(Problem(folder, trigger.trigger_id, str(exc)))
                continue
            problems += _check_rendered(folder, trigger.trigger_id, rendered)
    return renders, problems + check_names(templates_dir, vocabulary(rules_file))


def _subject_name(node: nodes.Node) -> str | None:
    """``persona`` / ``segment`` (bare or ``trigger.persona``) when ``node`` reads one."""
    if isinstance(node, nodes.Name) and node.name in ("persona", "segment"):
        return node.name
    if isinstance(node, nodes.Getattr) and node.attr in ("persona", "segment"):
        return node.attr
    return None


def _literals(node: nodes.Node) -> list[str]:
    """String constants of ``node`` (a constant, or a list/tuple of constants)."""
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return [v for item in node.items for v in _literals(item)]
    return []


def compared_names(source: str, renderer: Renderer) -> list[tuple[str, str]]:
    """``(persona|segment, literal)`` for every comparison of those with a string literal."""
    found: list[tuple[str, str]] = []
    for cmp in renderer.env.parse(source).find_all(nodes.Compare):
        operands = [cmp.expr, *(op.expr for op in cmp.ops)]
        for i, node in enumerate(operands):
            name = _subject_name(node)
            if name is None:
                continue
            for other in operands[:i] + operands[i + 1:]:
                found += [(name, value) for value in _literals(other)]
    return found


def check_names(templates_dir: Path, vocab: Vocabulary | None = None) -> list[Problem]:
    """Templates (and the persona groups) must only name personas/segments the engine emits."""
    vocab = vocab or vocabulary()
    problems = [
        Problem("sinks.personas", "-", f"group names unknown persona {name!r}")
        for name in sorted(LOYAL_PERSONAS | NEWCOMER_PERSONAS | LAPSING_PERSONAS)
        if name not in vocab.lifecycle
    ] + [
        Problem("sinks.personas", "-", f"group names unknown segment {name!r}")
        for name in sorted(TOP_SEGMENTS) if name not in vocab.segments
    ]
    renderer = Renderer(templates_dir)
    for path in sorted(templates_dir.rglob("*.j2")):
        rel = str(path.relative_to(templates_dir))
        try:
            pairs = compared_names(path.read_text(), renderer)
        except TemplateSyntaxError as exc:
            problems.append(Problem(rel, "-", f"syntax error: {exc}"))
            continue
        for kind, value in pairs:
            known = vocab.persona_known(value) if kind == "persona" else (
                value in vocab.segments)
            if not known:
                problems.append(Problem(rel, "-", f"{kind} {value!r} is never emitted by the "
                                                  f"engine's rules"))
    return problems
