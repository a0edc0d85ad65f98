"""``templates check``: render every template folder against the sample triggers and report
problems (render errors, empty subjects, unescaped markup, missing unsubscribe link)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sinks.errors import TemplateError
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


def check_templates(templates_dir: Path) -> tuple[int, list[Problem]]:
    """``(renders done, problems)`` for every folder and sample trigger."""
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
        for trigger in sample_triggers(folder):
            renders += 1
            try:
                rendered = renderer.render(trigger, _UNSUB)
            except TemplateError as exc:
                problems.append(Problem(folder, trigger.trigger_id, str(exc)))
                continue
            problems += _check_rendered(folder, trigger.trigger_id, rendered)
    return renders, problems
