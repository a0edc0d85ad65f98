"""Compact serialisation of :class:`~processors.state.CustomerState`: orjson of positional arrays.

Layout: ``[version, last_seen, scalars..., products, collections...]``. No key names; the
collections hold short arrays. Two tricks keep a typical customer well under 1 KB:

- **relative times**: every time except ``last_seen`` is stored as ``last_seen - t`` (small
  numbers; negative for future deadlines);
- **a product table**: views and cart lines refer by index to one list of distinct
  ``[product_id, name, category, price]`` entries, so a viewed-then-added product is stored once;
- **topic aliases**: watermark keys name catalogue topics by index (``events.site:3`` is stored
  as ``#0:3``; a topic prefix is kept). ``#`` cannot occur in a Kafka topic name.

``decode_state(encode_state(s)) == s`` exactly (times are whole seconds; floats round-trip).
"""

from __future__ import annotations

import dataclasses
import operator
from functools import lru_cache
from typing import Any

import orjson

from processors.errors import StateDecodeError
from processors.state import Cart, Change, CustomerState, Deadline, Item, Order, Sent, View
from schemas.topics import ALL_TOPICS

VERSION = 2

_new = tuple.__new__
"""Builds a NamedTuple from a ready tuple in C (no Python-level ``__new__`` frame)."""

_CONTAINERS = (
    "anonymous_ids", "views", "affinity", "carts", "recent_orders", "categories", "changes",
    "deadlines", "sent", "watermarks",
)
_TIMES = frozenset({
    "identified_at", "erased_at", "first_seen", "first_order_at", "last_order_at",
    "last_open", "last_click", "engagement_at", "persona_at", "interest_at", "journey_at",
})
_SCALARS = tuple(
    f.name for f in dataclasses.fields(CustomerState)
    if f.name not in _CONTAINERS and f.name != "last_seen"
)
"""Plain fields in declaration order (after the version and last_seen)."""
_LAST_SEEN_AT = [f.name for f in dataclasses.fields(CustomerState)].index("last_seen")
_IS_TIME = tuple(name in _TIMES for name in _SCALARS)
_DEFAULTS: tuple[Any, ...] = tuple(
    f.default for f in dataclasses.fields(CustomerState) if f.name in _SCALARS
)
_TIME_SLOTS = tuple((i, d) for i, (t, d) in enumerate(zip(_IS_TIME, _DEFAULTS, strict=True))
                    if t)
"""(position among the scalars, default) of every time field."""
_GET_SCALARS = operator.attrgetter(*_SCALARS)
_DIMS = ("lifecycle", "interest", "journey")
_DIM_INDEX = {d: i for i, d in enumerate(_DIMS)}


_TOPICS = tuple(spec.name for spec in ALL_TOPICS)


@lru_cache(maxsize=4096)
def _alias(key: str) -> str:
    base, tilde, source = key.partition("~")  # "~" cannot occur in a topic name
    topic, sep, partition = base.rpartition(":")
    for i, name in enumerate(_TOPICS):
        if topic.endswith(name):
            return f"{topic[: -len(name)]}#{i}{sep}{partition}{tilde}{source}"
    return key


@lru_cache(maxsize=4096)
def _unalias(key: str) -> str:
    base, tilde, source = key.partition("~")
    if "#" not in base:
        return key
    prefix, _, rest = base.partition("#")
    index, sep, partition = rest.partition(":")
    return f"{prefix}{_TOPICS[int(index)]}{sep}{partition}{tilde}{source}"


class _Products:
    """Distinct (product_id, name, category, price) entries, referred to by index."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, str, str, float], int] = {}

    def ref(self, pid: str, name: str, category: str, price: float) -> int:
        key = (pid, name, category, price)
        found = self.index.get(key)
        if found is None:
            found = self.index[key] = len(self.index)
        return found


def encode_state(state: CustomerState) -> bytes:
    """Serialise ``state`` to compact JSON bytes (see the module docstring)."""
    base = state.last_seen
    scalars = list(_GET_SCALARS(state))
    for i, default in _TIME_SLOTS:  # unset (the default: None or 0) is stored as null
        value = scalars[i]
        scalars[i] = None if value == default else base - value
    out: list[Any] = [VERSION, base, *scalars]
    products = _Products()
    views = [[products.ref(v[0], v[1], v[2], v[3]), base - v[4]] for v in state.views]
    carts = [
        [c.cart_id, [[products.ref(i[0], i[1], i[2], i[3]), i[4]] for i in c.items.values()],
         base - c.created_at, base - c.updated_at,
         None if c.checkout_at is None else base - c.checkout_at, c.fired, c.currency]
        for c in state.carts.values()
    ]
    out.append([list(p) for p in products.index])
    out.append(state.anonymous_ids)
    out.append(views)
    out.append([[k, v[0], base - v[1]] for k, v in state.affinity.items()])
    out.append(carts)
    out.append([[o[0], o[1], base - o[2], o[3]] for o in state.recent_orders])
    out.append(state.categories)
    out.append(_changes_out(base, state.changes))
    out.append([
        [base - d[0], d[1], d[2], d[3]] if not d[4] and not d[5]
        else [base - d[0], d[1], d[2], d[3], d[4], base - d[5]]
        for d in state.deadlines
    ])
    out.append([[base - s[0], s[1], s[2], s[3]] for s in state.sent])
    out.append({_alias(k): v for k, v in state.watermarks.items()})
    return orjson.dumps(out)


def decode_state(data: bytes) -> CustomerState:
    """Rebuild a state written by :func:`encode_state`; raises :class:`StateDecodeError`."""
    try:
        raw = orjson.loads(data)
        version = raw[0] if isinstance(raw, list) and raw else None
    except orjson.JSONDecodeError as exc:
        raise StateDecodeError("corrupt state: not JSON") from exc
    if version != VERSION:
        raise StateDecodeError(f"unknown state version {version!r}")
    try:
        return _build(raw)
    except (IndexError, TypeError, KeyError, ValueError) as exc:
        raise StateDecodeError(f"corrupt state: {type(exc).__name__}") from exc


def _changes_out(base: int, changes: list[Change]) -> list[list[Any]]:
    """Persona changes; ``from`` is left out (0) when it is the previous change's ``to``."""
    last: dict[str, str | None] = {}
    out = []
    for c in changes:
        implied = c.dimension in last and last[c.dimension] == c.from_persona
        out.append([base - c.at, _DIM_INDEX[c.dimension], 0 if implied else c.from_persona,
                    c.to_persona, c.rule_id])
        last[c.dimension] = c.to_persona
    return out


def _changes_in(base: int, raw: list[list[Any]]) -> list[Change]:
    last: dict[str, str | None] = {}
    out = []
    for at, dim_index, from_persona, to, rule_id in raw:
        dim = _DIMS[dim_index]
        if from_persona == 0:
            from_persona = last[dim]
        out.append(_new(Change, (base - at, dim, from_persona, to, rule_id)))
        last[dim] = to
    return out


def _deadline(base: int, d: list[Any]) -> Deadline:
    if len(d) == 4:
        return _new(Deadline, (base - d[0], d[1], d[2], d[3], "", 0))
    return _new(Deadline, (base - d[0], d[1], d[2], d[3], d[4], base - d[5]))


def _build(raw: list[Any]) -> CustomerState:
    base: int = raw[1]
    n = len(_SCALARS) + 2
    args: list[Any] = raw[2:n]
    for i, default in _TIME_SLOTS:
        value = args[i]
        args[i] = default if value is None else base - value
    args.insert(_LAST_SEEN_AT, base)
    (products, anon, views, affinity, carts, orders, cats, changes, deadlines, sent,
     marks) = raw[n:]
    args += [
        anon,
        [_new(View, (*products[v[0]], base - v[1])) for v in views],
        {a[0]: (a[1], base - a[2]) for a in affinity},
        {c[0]: _cart(c, products, base) for c in carts},
        [_new(Order, (o[0], o[1], base - o[2], o[3])) for o in orders],
        cats,
        _changes_in(base, changes) if changes else [],
        [_deadline(base, d) for d in deadlines],
        [_new(Sent, (base - s[0], s[1], s[2], s[3])) for s in sent],
        {_unalias(k): v for k, v in marks.items()},
    ]
    return CustomerState(*args)


def _cart(c: list[Any], products: list[Any], base: int) -> Cart:
    items = {products[i[0]][0]: _new(Item, (*products[i[0]], i[1])) for i in c[1]}
    checkout = None if c[4] is None else base - c[4]
    return Cart(c[0], items, base - c[2], base - c[3], checkout, c[5], c[6])
