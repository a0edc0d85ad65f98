"""Compact serialisation of :class:`~processors.state.CustomerState` (orjson of positional arrays).

Layout: ``[version, field, field, ...]`` in the order of :data:`_FIELDS`; nested records are
arrays too (no key names), so a typical customer takes a few hundred bytes. Floats round-trip
exactly (orjson writes the shortest repr), so ``decode(encode(s)) == s``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from processors.errors import StateDecodeError
from processors.state import (
    Cart,
    Change,
    CustomerState,
    Deadline,
    Item,
    Order,
    Sent,
    View,
)

VERSION = 1

_CONTAINERS = (
    "anonymous_ids", "views", "affinity", "carts", "recent_orders", "categories", "changes",
    "deadlines", "sent", "watermarks",
)
_SCALARS = tuple(
    f.name for f in dataclasses.fields(CustomerState) if f.name not in _CONTAINERS
)
"""Plain fields, stored as they are, in declaration order, after the version."""
assert [f.name for f in dataclasses.fields(CustomerState)] == [*_SCALARS, *_CONTAINERS]


def _cart_out(c: Cart) -> list[Any]:
    return [c.cart_id, [list(i) for i in c.items.values()], c.created_at, c.updated_at,
            c.checkout_at, c.fired, c.currency]


def _cart_in(raw: list[Any]) -> Cart:
    items = {i[0]: Item(*i) for i in raw[1]}
    return Cart(raw[0], items, raw[2], raw[3], raw[4], raw[5], raw[6])


def encode_state(state: CustomerState) -> bytes:
    """Serialise ``state`` to compact JSON bytes (see the module docstring)."""
    out: list[Any] = [VERSION]
    out.extend(getattr(state, name) for name in _SCALARS)
    out.append(state.anonymous_ids)
    out.append([list(v) for v in state.views])
    out.append([[k, v[0], v[1]] for k, v in state.affinity.items()])
    out.append([_cart_out(c) for c in state.carts.values()])
    out.append([list(o) for o in state.recent_orders])
    out.append(state.categories)
    out.append([list(c) for c in state.changes])
    out.append([list(d) for d in state.deadlines])
    out.append([list(s) for s in state.sent])
    out.append(state.watermarks)
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


def _build(raw: list[Any]) -> CustomerState:
    n = len(_SCALARS) + 1
    anon, views, affinity, carts, orders, cats, changes, deadlines, sent, marks = raw[n:]
    args = [
        *raw[1:n],
        anon,
        [View(*v) for v in views],
        {a[0]: (a[1], a[2]) for a in affinity},
        {c[0]: _cart_in(c) for c in carts},
        [Order(*o) for o in orders],
        cats,
        [Change(*c) for c in changes],
        [Deadline(*d) for d in deadlines],
        [Sent(*s) for s in sent],
        marks,
    ]
    return CustomerState(*args)
