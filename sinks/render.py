"""Rendering: a trigger + its templates -> subject, preheader, HTML and text parts.

Templates live in one folder per trigger type (``<templates>/<trigger_type>/``) with four
parts: ``subject.j2``, ``preheader.j2``, ``body.html.j2`` and ``body.txt.j2``. A/B variants
override any part with ``<part>.<variant>.j2`` (e.g. ``subject.B.j2``); a trigger type with no
folder uses ``_default/``. Shared layouts and macros live in ``_layout/``.

Rules templates can rely on:
- Jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment`; HTML parts are autoescaped, so
  event data containing markup is shown, never executed.
- Undefined names are errors (``StrictUndefined``). Tokens must be read with an explicit
  fallback: ``{{ token("first_name", "there") }}``; a missing or blank token gives the fallback.
- The context holds ``trigger`` (the model), ``persona``, ``segment``, ``interest``,
  ``journey_stage``, ``variant``, ``products`` (list), ``tokens`` (dict), ``shop_url``,
  ``unsubscribe_url``, ``interest_category`` (``shoes`` for ``recent_browser:shoes``) and the
  persona flags ``loyal``, ``newcomer``, ``lapsing``, ``top_segment`` (see
  :mod:`sinks.personas`: they use the engine's real persona and segment names).
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markupsafe
from jinja2 import FileSystemLoader, StrictUndefined, Template, TemplateNotFound
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.environment import TemplateModule
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, Macro
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing
from markupsafe import Markup, escape

from schemas.models import Product, Trigger
from sinks.errors import TemplateError
from sinks.personas import (
    LAPSING_PERSONAS,
    LOYAL_PERSONAS,
    NEWCOMER_PERSONAS,
    TOP_SEGMENTS,
    interest_category,
)

PARTS = ("subject", "preheader", "body.html", "body.txt")
"""The parts every trigger type's folder provides."""


DEFAULT_FOLDER = "_default"
_TYPE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """The four rendered parts of one email."""

    subject: str
    preheader: str
    html: str
    text: str


class _Token:
    """The ``token(name, fallback)`` template helper bound to one trigger's tokens."""

    __slots__ = ("tokens",)

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens

    def __call__(self, name: str, fallback: str) -> str:
        value = self.tokens.get(name, "")
        return value.strip() if value and value.strip() else fallback


_DATA_FIELDS: dict[type, frozenset[str]] = {
    model: frozenset(model.model_fields) for model in (Trigger, Product)
}
"""Data fields of the models templates read: plain values, safe to read without the
sandbox's attribute checks (which cost a third of a render)."""


_MISSING = object()
_new_context = Context.__new__
_new_eval_ctx = EvalContext.__new__


class _Sandbox(SandboxedEnvironment):
    """The sandbox with fast paths for what the shipped context holds: field reads of
    :class:`Trigger` / :class:`Product`, macros read from imported templates, calls of
    ``token`` and of template macros. Every other attribute read or call goes through the
    full sandbox checks."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.loaded: dict[tuple[str, str | None], Template] = {}

    def getattr(self, obj: Any, attribute: str) -> Any:
        fields = _DATA_FIELDS.get(type(obj))
        if fields is not None and attribute in fields:
            return obj.__dict__[attribute]
        if type(obj) is TemplateModule and attribute[:1] != "_":
            # a macro of an imported template (``m.greeting``): the module's exports
            exported = obj.__dict__.get(attribute, _MISSING)
            if exported is not _MISSING:
                return exported
        return super().getattr(obj, attribute)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if type(__obj) is _Token or type(__obj) is Macro:
            # what Context.call does for callables that take no context/environment (neither
            # does): drop the loop/block variables Jinja passes along, call
            if kwargs:
                kwargs.pop("_block_vars", None)
                kwargs.pop("_loop_vars", None)
            if not kwargs and type(__obj) is Macro:
                return _call_macro(__context, __obj, args)
            try:
                return __obj(*args, **kwargs)
            except StopIteration:
                return __context.environment.undefined(
                    "value was undefined because a callable raised a StopIteration exception"
                )
        return super().call(__context, __obj, *args, **kwargs)

    def get_template(
        self, name: str | Template, parent: str | None = None,
        globals: MutableMapping[str, Any] | None = None,
    ) -> Template:
        """Templates are never reloaded (``auto_reload=False``): the ``{% extends %}`` and
        ``{% import %}`` of every render find them in a plain dict instead of Jinja's locked
        LRU cache."""
        if globals is not None or not isinstance(name, str):
            return super().get_template(name, parent, globals)
        key = (name, parent)
        template = self.loaded.get(key)
        if template is None:
            template = self.loaded[key] = super().get_template(name, parent)
            _use_fast_escape(template)
        return template


_escape_str = getattr(markupsafe, "_escape_inner", None)
"""markupsafe's escaping of a plain ``str`` (its C speedup), when this version has it."""
_as_markup = str.__new__


def _fast_escape(value: Any) -> Markup:
    """:func:`markupsafe.escape` with the common cases done without ``Markup.__new__`` (a
    Python-level constructor that first looks for ``__html__``): a plain string is escaped
    and wrapped as is, an existing :class:`Markup` is already safe; the rest goes through
    :func:`markupsafe.escape`. The output is the same (checked against stock Jinja)."""
    kind = type(value)
    if kind is str and _escape_str is not None:
        return _as_markup(Markup, _escape_str(value))
    if kind is Markup:
        return value  # type: ignore[no-any-return]
    return escape(value)


def _use_fast_escape(template: Template) -> None:
    """Point the compiled template's ``escape`` (what every ``{{ ... }}`` of an autoescaped
    template calls) at :func:`_fast_escape`."""
    namespace = template.root_render_func.__globals__
    if namespace.get("escape") is escape:
        namespace["escape"] = _fast_escape


def _call_macro(context: Context, macro: Macro, args: tuple[Any, ...]) -> Any:
    """``macro(*args)`` as :meth:`Macro.__call__` does it for the simple case (positional
    arguments only, no ``caller``, no ``*varargs`` / ``**kwargs``; missing arguments are passed
    as ``missing`` so the macro applies its defaults), without its argument juggling; any
    other call goes through :meth:`Macro.__call__`."""
    count = macro._argument_count
    if (len(args) > count or macro.caller or macro.catch_kwargs or macro.catch_varargs
            or macro._environment.is_async):
        return macro(*args)
    if len(args) < count:
        args += (missing,) * (count - len(args))
    try:
        rv = macro._func(*args)
    except StopIteration:
        return context.environment.undefined(
            "value was undefined because a callable raised a StopIteration exception"
        )
    if not macro._default_autoescape:
        return rv
    return _as_markup(Markup, rv) if type(rv) is str else Markup(rv)


def _money(value: Any, currency: str = "USD") -> str:
    """Format a price: ``12.5`` -> ``12.50 USD``."""
    try:
        return f"{float(value):.2f} {currency}"
    except (TypeError, ValueError):
        return ""


def _safe_url(value: Any) -> str:
    """Only http(s) links reach an email (no ``javascript:``/``data:`` from event data)."""
    text = str(value or "").strip()
    return text if text.lower().startswith(("https://", "http://")) else "#"


def _one_line(value: str) -> str:
    """Collapse whitespace (subjects and preheaders are single header-safe lines); the same
    as replacing every run of ``\\s`` with one space and stripping, without a regex."""
    return " ".join(value.split())


class Renderer:
    """Renders triggers with the templates under ``templates_dir`` (compiled once, cached)."""

    def __init__(self, templates_dir: Path, *, shop_url: str = "https://shop.example.com") -> None:
        self.templates_dir = templates_dir
        self.shop_url = shop_url
        self.env = _Sandbox(
            loader=FileSystemLoader(str(templates_dir)),
            autoescape=lambda name: bool(name and name.endswith(".html.j2")),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self._names: dict[tuple[str, str, str | None], str] = {}
        self.env.filters["money"] = _money
        self.env.filters["safe_url"] = _safe_url
        self._globals = dict(self.env.globals)
        self._compiled: dict[str, Template] = {}
        self._prepared: dict[str | None, tuple[Template, bool, frozenset[str]]] = {}

    def trigger_types(self) -> list[str]:
        """Trigger types with their own template folder."""
        return sorted(
            p.name for p in self.templates_dir.iterdir() if p.is_dir() and p.name[0] not in "_."
        )

    def _folder(self, trigger_type: str) -> str:
        key = (trigger_type, "", None)
        folder = self._names.get(key)
        if folder is None:
            own = bool(_TYPE_NAME.fullmatch(trigger_type)) and (
                self.templates_dir / trigger_type
            ).is_dir()
            folder = self._names[key] = trigger_type if own else DEFAULT_FOLDER
        return folder

    def _template_name(self, folder: str, part: str, variant: str | None) -> str:
        """The template file for a part (cached: the folder is read once per process)."""
        key = (folder, part, variant)
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = self._find(folder, part, variant)
        return name

    def _find(self, folder: str, part: str, variant: str | None) -> str:
        if variant and re.fullmatch(r"[A-Za-z0-9_-]{1,32}", variant):
            name = f"{folder}/{part}.{variant}.j2"
            if (self.templates_dir / name).is_file():
                return name
        return f"{folder}/{part}.j2"

    def warm(self) -> int:
        """Compile every template now (not on the first trigger that needs it); returns how
        many compiled. Broken templates are left for :meth:`render` to report."""
        compiled = 0
        for name in self.env.list_templates(filter_func=lambda n: n.endswith(".j2")):
            try:
                self._template(name)
            except (JinjaTemplateError, SecurityError):
                continue
            compiled += 1
        return compiled

    def _template(self, name: str) -> Template:
        """The compiled template ``name`` (and the layouts/macros it uses), loaded once."""
        template = self._compiled.get(name)
        if template is None:
            template = self._compiled[name] = self.env.get_template(name)
            for other in self.env.list_templates(filter_func=lambda n: n.startswith("_layout/")):
                self._flatten(self.env.get_template(other))
            self._flatten(template)
        return template

    def _new_context(self, template: Template, shared: dict[str, Any]) -> Context:
        """``template.new_context(shared, shared=True)`` built directly: the same attributes
        (checked by the render tests), without Jinja's chain of helpers and the autoescape
        callback per part."""
        prepared = self._prepared.get(template.name)
        if prepared is None or prepared[0] is not template:
            prepared = self._prepared[template.name] = self._prepare(template)
        _, autoescape, globals_keys = prepared
        eval_ctx = _new_eval_ctx(EvalContext)
        eval_ctx.environment = self.env
        eval_ctx.autoescape = autoescape
        eval_ctx.volatile = False
        ctx = _new_context(Context)
        ctx.parent = shared
        ctx.vars = {}
        ctx.environment = self.env
        ctx.eval_ctx = eval_ctx
        ctx.exported_vars = set()
        ctx.name = template.name
        ctx.globals_keys = set(globals_keys)
        ctx.blocks = {k: [v] for k, v in template.blocks.items()}
        return ctx

    def _prepare(self, template: Template) -> tuple[Template, bool, frozenset[str]]:
        autoescape = EvalContext(self.env, template.name).autoescape
        return template, autoescape, frozenset(template.globals)

    @staticmethod
    def _flatten(template: Template) -> None:
        """Jinja keeps a template's globals as a ChainMap and diffs its keys on every
        ``{% import %}`` and context; a plain dict with the same items is far cheaper."""
        if not isinstance(template.globals, dict):
            template.globals = dict(template.globals)

    def context(self, trigger: Trigger, unsubscribe_url: str) -> dict[str, Any]:
        """The variables a template sees for ``trigger``."""
        persona = trigger.persona or ""
        return {
            **self._globals,
            "trigger": trigger,
            "persona": persona,
            "segment": trigger.segment or "",
            "interest": trigger.interest or "",
            "journey_stage": trigger.journey_stage or "",
            "variant": trigger.variant or "",
            "products": list(trigger.products),
            "tokens": dict(trigger.tokens),
            "token": _Token(trigger.tokens),
            "interest_category": interest_category(trigger.interest),
            "loyal": persona in LOYAL_PERSONAS,
            "newcomer": persona in NEWCOMER_PERSONAS,
            "lapsing": persona in LAPSING_PERSONAS,
            "top_segment": (trigger.segment or "") in TOP_SEGMENTS,
            "shop_url": trigger.tokens.get("shop_url") or self.shop_url,
            "unsubscribe_url": unsubscribe_url,
        }

    def render(self, trigger: Trigger, unsubscribe_url: str) -> RenderedEmail:
        """Render all four parts; any template problem raises :class:`TemplateError`."""
        folder = self._folder(trigger.trigger_type)
        ctx = self.context(trigger, unsubscribe_url)
        parts: dict[str, str] = {}
        for part in PARTS:
            name = self._template_name(folder, part, trigger.variant)
            try:
                template = self._template(name)
                # shared: the context is ours (globals merged in), not copied per template
                parts[part] = "".join(template.root_render_func(self._new_context(template, ctx)))
                if part in ("subject", "preheader"):
                    ctx[part] = _one_line(parts[part])
            except TemplateNotFound as exc:
                raise TemplateError(f"template {name} is missing", reason="template_missing") \
                    from exc
            except (JinjaTemplateError, SecurityError) as exc:
                raise TemplateError(f"template {name}: {exc}", reason="template_error") from exc
            except (TypeError, ValueError, AttributeError, KeyError, ArithmeticError) as exc:
                raise TemplateError(f"template {name}: {exc!r}", reason="template_error") from exc
        subject = ctx["subject"]
        if not subject:
            raise TemplateError(f"{folder}: the subject rendered empty", reason="template_error")
        return RenderedEmail(
            subject=subject,
            preheader=ctx["preheader"],
            html=parts["body.html"],
            text=parts["body.txt"].strip() + "\n",
        )
