"""A small condition language for rule guards, parsed once and compiled to closures (no eval).

Grammar (keywords are lower case)::

    expr    := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := value (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") value)?
    value   := NUMBER | DURATION | STRING | "true" | "false" | "null" | FACT
             | "[" [value ("," value)*] "]" | "(" expr ")"

``FACT`` is a dotted name from the fact registry (``orders``, ``event.type``, ``rfm.r``...).
``DURATION`` is a number with a unit: ``30s``, ``15m``, ``48h``, ``30d``, ``2w`` (seconds).
Strings use single or double quotes. An ordering comparison with a missing value (null) is
false; a bare value is tested for truth. Unknown facts and syntax errors raise
:class:`ConditionError` with the column, at load time.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from processors.errors import ConditionError

__all__ = ["Condition", "ConditionError", "compile_condition"]

Getter = Callable[[Any], Any]
"""A compiled piece: takes the evaluation context, returns a value."""

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<dur>\d+(?:\.\d+)?[smhdw])\b
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<str>'[^']*'|"[^"]*")
    | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled guard: ``test(ctx) -> bool``; ``facts`` lists the fact names it reads."""

    text: str
    test: Callable[[Any], bool]
    facts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    col: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            col = len(text[:pos]) + len(text[pos:]) - len(text[pos:].lstrip()) + 1
            raise ConditionError(f"unexpected character {text[col - 1]!r}", col)
        kind = m.lastgroup or ""
        value = m.group(kind)
        col = m.start(kind) + 1
        if kind == "name" and value in _KEYWORDS:
            kind = "kw"
        toks.append(_Tok(kind, value, col))
        pos = m.end()
    toks.append(_Tok("end", "", len(text) + 1))
    return toks


def _const(value: Any) -> Getter:
    return lambda ctx: value


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False
        try:
            return bool(op(a, b))
        except TypeError:
            return False

    return compare


def _member(a: Any, b: Any) -> bool:
    try:
        return a is not None and b is not None and a in b
    except TypeError:
        return False


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": _ordered(operator.lt),
    "<=": _ordered(operator.le),
    ">": _ordered(operator.gt),
    ">=": _ordered(operator.ge),
    "in": _member,
    "not in": lambda a, b: not _member(a, b),
}


_NUMBERS = (int, float, bool)


def _against_constant(op: str, left: Getter, v: Any) -> Getter:
    """``left op v`` for a constant ``v`` as one closure (the hot path of most guards).
    Ordering is only against numbers; a null or non-number left side is false."""
    if op == "==":
        return (lambda ctx: left(ctx) is None) if v is None else (lambda ctx: left(ctx) == v)
    if op == "!=":
        return (lambda ctx: left(ctx) is not None) if v is None else (lambda ctx: left(ctx) != v)
    if op == ">=":
        return lambda ctx: (a := left(ctx)) is not None and a.__class__ in _NUMBERS and a >= v
    if op == ">":
        return lambda ctx: (a := left(ctx)) is not None and a.__class__ in _NUMBERS and a > v
    if op == "<=":
        return lambda ctx: (a := left(ctx)) is not None and a.__class__ in _NUMBERS and a <= v
    return lambda ctx: (a := left(ctx)) is not None and a.__class__ in _NUMBERS and a < v


_FAST = frozenset({"==", "!=", ">=", ">", "<=", "<"})


def _truth(getter: Getter) -> Getter:
    return lambda ctx: bool(getter(ctx))


def _both(a: Getter, b: Getter) -> Getter:
    return lambda ctx: a(ctx) and b(ctx)


def _all3(a: Getter, b: Getter, c: Getter) -> Getter:
    return lambda ctx: a(ctx) and b(ctx) and c(ctx)


def _either(a: Getter, b: Getter) -> Getter:
    return lambda ctx: a(ctx) or b(ctx)


def _any3(a: Getter, b: Getter, c: Getter) -> Getter:
    return lambda ctx: a(ctx) or b(ctx) or c(ctx)


class _Parser:
    def __init__(self, text: str, facts: Mapping[str, Getter]) -> None:
        self.toks = _tokenize(text)
        self.i = 0
        self.facts = facts
        self.used: list[str] = []
        self.consts: dict[int, Any] = {}  # id(getter) -> value, for constant getters
        self.booleans: set[int] = set()  # ids of getters that always return a bool

    def boolean(self, getter: Getter) -> Getter:
        self.booleans.add(id(getter))
        return getter

    def const(self, value: Any) -> Getter:
        getter = _const(value)
        self.consts[id(getter)] = value
        return getter

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text != text:
            raise ConditionError(f"expected {text!r}, found {tok.text or 'end'!r}", tok.col)

    def parse(self) -> Getter:
        node = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            raise ConditionError(f"unexpected {tok.text!r}", tok.col)
        return node

    def expr(self) -> Getter:
        parts = [self.conj()]
        while self.peek().text == "or" and self.peek().kind == "kw":
            self.take()
            parts.append(self.conj())
        return self.fold(parts, _either, _any3)

    def conj(self) -> Getter:
        parts = [self.neg()]
        while self.peek().text == "and" and self.peek().kind == "kw":
            self.take()
            parts.append(self.neg())
        return self.fold(parts, _both, _all3)

    def fold(self, parts: list[Getter], pair: Callable[[Getter, Getter], Getter],
             triple: Callable[[Getter, Getter, Getter], Getter]) -> Getter:
        """Chain ``parts`` by threes and pairs from the right (short-circuiting in order, no
        generator per evaluation, as few nested calls as possible)."""
        if len(parts) == 1:
            return parts[0]
        parts = [p if id(p) in self.booleans else _truth(p) for p in parts]
        node = parts.pop()
        while parts:
            if len(parts) >= 2:
                node = triple(parts[-2], parts[-1], node)
                del parts[-2:]
            else:
                node = pair(parts.pop(), node)
        return self.boolean(node)

    def neg(self) -> Getter:
        tok = self.peek()
        if tok.kind == "kw" and tok.text == "not":
            self.take()
            inner = self.neg()
            return self.boolean(lambda ctx: not inner(ctx))
        return self.compare()

    def compare(self) -> Getter:
        left = self.value()
        tok = self.peek()
        op = tok.text if tok.kind == "op" or tok.text == "in" else ""
        if tok.kind == "kw" and tok.text == "not" and self.toks[self.i + 1].text == "in":
            self.take()
            op = "not in"
        if op not in _COMPARE:
            return left
        self.take()
        right = self.value()
        fn = _COMPARE[op]
        value = self.consts.get(id(right))
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if op in _FAST and id(right) in self.consts and (numeric or op in ("==", "!=")):
            return self.boolean(_against_constant(op, left, value))
        return self.boolean(lambda ctx: fn(left(ctx), right(ctx)))

    def value(self) -> Getter:
        tok = self.take()
        if tok.kind == "num":
            return self.const(float(tok.text))
        if tok.kind == "dur":
            return self.const(float(tok.text[:-1]) * UNITS[tok.text[-1]])
        if tok.kind == "str":
            return self.const(tok.text[1:-1])
        if tok.kind == "kw" and tok.text in ("true", "false", "null"):
            return self.const({"true": True, "false": False, "null": None}[tok.text])
        if tok.kind == "name":
            return self.fact(tok)
        if tok.text == "(":
            inner = self.expr()
            self.expect(")")
            return inner
        if tok.text == "[":
            return self.listing()
        raise ConditionError(f"expected a value, found {tok.text or 'end'!r}", tok.col)

    def fact(self, tok: _Tok) -> Getter:
        getter = self.facts.get(tok.text)
        if getter is None:
            raise ConditionError(f"unknown fact {tok.text!r}", tok.col)
        if tok.text not in self.used:
            self.used.append(tok.text)
        return getter

    def listing(self) -> Getter:
        items: list[Getter] = []
        if self.peek().text != "]":
            items.append(self.value())
            while self.peek().text == ",":
                self.take()
                items.append(self.value())
        self.expect("]")
        if all(id(i) in self.consts for i in items):
            return self.const(frozenset(self.consts[id(i)] for i in items))
        return lambda ctx: [i(ctx) for i in items]


def compile_condition(text: str, facts: Mapping[str, Getter]) -> Condition:
    """Parse ``text`` against the fact registry ``facts`` and compile it to a closure."""
    parser = _Parser(str(text), facts)
    node = parser.parse()
    if id(node) in parser.booleans:
        return Condition(str(text), node, tuple(parser.used))

    def test(ctx: Any) -> bool:
        return bool(node(ctx))

    return Condition(str(text), test, tuple(parser.used))
