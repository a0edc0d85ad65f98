"""Benchmark of the domain core: cost of applying one event, of firing due deadlines, and the
serialised state size, over the generator's event mix.

    python -m bench.processors [--customers 2000] [--events 60000] [--repeat 3]

The engine is fed what the stream worker applies: each event encoded to Avro and decoded by
the worker's decode (``Codec.decode_plain``: the plain, read-only records of
:mod:`schemas.plain`), before timing, so decoding is excluded. Each event is timed on its own
(``perf_counter_ns``); the same run times a naive baseline (a pydantic-model state updated by
dump-update-validate per event, without any persona/trigger logic) on the same events (as
pydantic models) for a ratio, and a calibration workload (``sum(range(1000))``, best of 20)
that shows how fast or
loaded the machine was. Results are medians over ``--repeat`` runs (``apply_us_p50_runs``
lists each run's p50). The last line is one JSON object.

Noise-free instruction counts of one class of events (see :func:`replay`)::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --collect-atstart=no \
        --toggle-collect=starmap_next --callgrind-out-file=/dev/null \
        python -m bench.processors --events 20000 --replay "Product Viewed:nomove"

("Collected" divided by the events printed: only the applies are counted.)
"""

from __future__ import annotations

import argparse
import collections
import gc
import hashlib
import itertools
import json
import statistics
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

import processors
from processors.engine import Engine, InputRef, decode_state, encode_state
from schemas.codec import Codec
from schemas.models import (
    CheckoutStarted,
    Identify,
    OrderCompleted,
    PageViewed,
    Product,
    ProductAdded,
    ProductViewed,
    Traits,
)
from schemas.topics import EVENT_TOPIC

START = datetime(2026, 1, 5, tzinfo=UTC)


def events(customers: int, count: int) -> tuple[list[Any], str]:
    """The generator's mix if available, else a representative hand-made mix."""
    try:
        from personaflow.generator import generate_events

        return list(generate_events(11, customers, count, START)), "personaflow.generator"
    except ImportError:
        return _fallback(customers, count), "fallback mix"


def _fallback(customers: int, count: int) -> list[Any]:
    out: list[Any] = []
    t = START.timestamp()
    for i in range(count):
        cid = f"c{i % customers}"
        at = datetime.fromtimestamp(t + i * 7, UTC)
        p = Product(product_id=f"p{i % 40}", name="Item", category=f"cat{i % 6}", price=20)
        kind = i % 20
        env: dict[str, Any] = {"event_id": f"e{i}", "occurred_at": at, "customer_id": cid}
        if kind < 9:
            out.append(ProductViewed(**env, product=p))
        elif kind < 14:
            out.append(PageViewed(**env))
        elif kind < 17:
            out.append(ProductAdded(**env, cart_id=f"k{cid}", product=p))
        elif kind == 17:
            out.append(CheckoutStarted(**env, cart_id=f"k{cid}"))
        elif kind == 18:
            out.append(OrderCompleted(**env, order_id=f"o{i}", cart_id=f"k{cid}", revenue=40))
        else:
            out.append(Identify(**env, traits=Traits(email=f"{cid}@example.com")))
    return out


def as_worker_reads(evs: list[Any]) -> list[Any]:
    """``evs`` as the stream worker hands them to the engine: encoded, then decoded by its
    decode (plain records, :mod:`schemas.plain`)."""
    codec = Codec()
    return [codec.decode_plain(codec.encode(ev)) for ev in evs]


def pct(values: list[int], q: float) -> float:
    """Percentile of nanosecond timings, in microseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] / 1000


# --------------------------------------------------------------------------- baseline


class NaiveState(BaseModel):
    """The naive alternative: the same kind of state as a pydantic model, dumped, updated and
    re-validated per event (the usual "immutable pydantic state" reducer)."""

    customer_id: str
    email: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    views: list[Product] = Field(default_factory=list)
    carts: dict[str, list[Product]] = Field(default_factory=dict)
    orders: int = 0
    revenue: float = 0.0
    affinity: dict[str, float] = Field(default_factory=dict)
    deadlines: list[tuple[float, str, str]] = Field(default_factory=list)
    watermarks: dict[str, int] = Field(default_factory=dict)
    persona: str = "new_visitor"


def naive_apply(state: NaiveState | None, key: str, ev: Any, topic: str, offset: int
                ) -> NaiveState:
    """Dump, update and validate a pydantic state (what the core avoids)."""
    data: dict[str, Any] = state.model_dump() if state else {"customer_id": key}
    if data.get("watermarks", {}).get(topic, -1) >= offset:
        return state if state is not None else NaiveState.model_validate(data)
    data.setdefault("first_seen", ev.occurred_at)
    data["last_seen"] = ev.occurred_at
    product: Any = getattr(ev, "product", None)
    if product is not None:
        affinity = data.setdefault("affinity", {})
        affinity[product.category] = affinity.get(product.category, 0.0) * 0.99 + 1.0
    if ev.type == "Product Viewed":
        data["views"] = [*data.get("views", []), product.model_dump()][-5:]
    elif ev.type == "Product Added":
        data.setdefault("carts", {}).setdefault(ev.cart_id, []).append(product.model_dump())
        data.setdefault("deadlines", []).append((ev.occurred_at.timestamp() + 3600, "cart",
                                                 ev.cart_id))
    elif ev.type == "Order Completed":
        data["orders"] = data.get("orders", 0) + 1
        data["revenue"] = data.get("revenue", 0.0) + ev.revenue
        data["persona"] = "repeat" if data["orders"] > 1 else "first_time_buyer"
    elif ev.type == "Identify":
        data["email"] = ev.traits.email or data.get("email")
    data.setdefault("watermarks", {})[topic] = offset
    return NaiveState.model_validate(data)


# --------------------------------------------------------------------------- runs


def run_engine(engine: Engine, evs: list[Any]) -> tuple[list[int], dict[str, Any]]:
    """Apply every event; return per-event ns and the final states."""
    states: dict[str, Any] = {}
    offsets: dict[str, int] = defaultdict(int)
    timings: list[int] = []
    clock = time.perf_counter_ns
    for ev in evs:
        key = ev.customer_id or ev.anonymous_id
        topic = EVENT_TOPIC[ev.type].name
        offsets[topic] += 1
        ref = InputRef(topic, 3, offsets[topic])
        now = ev.occurred_at.timestamp()
        state = states.get(key)
        t0 = clock()
        out = engine.apply(state, key, ev, ref, now)
        timings.append(clock() - t0)
        states[key] = out.state
    return timings, states


def run_baseline(evs: list[Any]) -> list[int]:
    """The naive baseline over the same events."""
    states: dict[str, NaiveState] = {}
    offsets: dict[str, int] = defaultdict(int)
    timings: list[int] = []
    clock = time.perf_counter_ns
    for ev in evs:
        key = ev.customer_id or ev.anonymous_id
        topic = EVENT_TOPIC[ev.type].name
        offsets[topic] += 1
        t0 = clock()
        states[key] = naive_apply(states.get(key), key, ev, topic, offsets[topic])
        timings.append(clock() - t0)
    return timings


def calibrate() -> float:
    """Microseconds of a fixed pure-Python workload: how loaded/fast the machine is now."""
    best = float("inf")
    for _ in range(20):
        t0 = time.perf_counter_ns()
        sum(range(1000))
        best = min(best, (time.perf_counter_ns() - t0) / 1000)
    return best


def run_due(engine: Engine, states: dict[str, Any]) -> tuple[list[int], list[int], int]:
    """Time tick() at each state's next deadline (on a decoded copy) and due() listing."""
    tick_ns: list[int] = []
    list_ns: list[int] = []
    fired = 0
    clock = time.perf_counter_ns
    for key, st in states.items():
        due = st.next_due
        if due is None:
            continue
        copy = decode_state(encode_state(st))
        t0 = clock()
        engine.due(copy, due)
        list_ns.append(clock() - t0)
        t0 = clock()
        out = engine.tick(copy, key, due)
        tick_ns.append(clock() - t0)
        fired += len(out.triggers)
    return tick_ns, list_ns, fired


def run_codec(states: dict[str, Any]) -> tuple[list[int], list[int], list[int]]:
    """Encoded sizes and encode/decode times of the final states."""
    sizes, enc, dec = [], [], []
    clock = time.perf_counter_ns
    for st in states.values():
        t0 = clock()
        data = encode_state(st)
        enc.append(clock() - t0)
        t0 = clock()
        decode_state(data)
        dec.append(clock() - t0)
        sizes.append(len(data))
    return sizes, enc, dec


def once(evs: list[Any], models: list[Any]) -> dict[str, float]:
    """One full measurement: the engine over ``evs`` (what the worker applies), the
    baseline over the same events as ``models``."""
    engine = Engine()
    timings, states = run_engine(engine, evs)
    base = run_baseline(models)
    tick_ns, list_ns, fired = run_due(engine, states)
    sizes, enc, dec = run_codec(states)
    sizes.sort()
    apply_p50 = pct(timings, 0.5)
    calibration = calibrate()
    return {
        "calibration_us": calibration,
        "apply_p50_in_calibrations": apply_p50 / calibration,
        "apply_us_p50": apply_p50,
        "apply_us_p90": pct(timings, 0.9),
        "apply_us_p99": pct(timings, 0.99),
        "apply_us_mean": statistics.fmean(timings) / 1000,
        "baseline_us_p50": pct(base, 0.5),
        "speedup_vs_baseline_p50": pct(base, 0.5) / apply_p50,
        "due_us_p50": pct(tick_ns, 0.5),
        "due_us_p99": pct(tick_ns, 0.99),
        "due_list_us_p50": pct(list_ns, 0.5),
        "state_bytes_p50": float(sizes[len(sizes) // 2]),
        "state_bytes_p90": float(sizes[int(len(sizes) * 0.9)]),
        "state_bytes_max": float(sizes[-1]),
        "encode_us_p50": pct(enc, 0.5),
        "decode_us_p50": pct(dec, 0.5),
        "events_per_s_single_core": 1e6 / (statistics.fmean(timings) / 1000),
        "tick_triggers": float(fired),
    }


def digest(evs: list[Any]) -> str:
    """SHA-256 (16 hex digits) of every transition, trigger and skip over ``evs`` applied as
    the bench applies them, then of one tick per customer 200 days after the last event and
    of every final encoded state: an optimisation must leave it unchanged."""
    engine, h = Engine(), hashlib.sha256()
    states: dict[str, Any] = {}
    offsets: dict[str, int] = defaultdict(int)
    for ev in evs:
        key = ev.customer_id or ev.anonymous_id
        topic = EVENT_TOPIC[ev.type].name
        offsets[topic] += 1
        ref = InputRef(topic, 3, offsets[topic])
        out = engine.apply(states.get(key), key, ev, ref, ev.occurred_at.timestamp())
        states[key] = out.state
        for record in [*out.transitions, *out.triggers]:
            h.update(record.model_dump_json().encode())
        h.update(repr(list(out.skipped)).encode())
    last = max(ev.occurred_at.timestamp() for ev in evs) + 200 * 86_400
    for key, st in states.items():
        out = engine.tick(st, key, last)
        for record in [*out.transitions, *out.triggers]:
            h.update(record.model_dump_json().encode())
        h.update(encode_state(out.state))
    return h.hexdigest()[:16]


def replay_pairs(evs: list[Any], selected: str, start: int, count: int
                 ) -> tuple[Engine, list[tuple[bytes, str, Any, InputRef]]]:
    """(encoded state before, key, event, ref) for the events of ``selected`` (an input type,
    optionally ``:move`` or ``:nomove``, or ``all``) among ``evs[start:count]``, with the
    states ``evs[:count]`` applied in stream order give them."""
    engine = Engine()
    etype, _, moving = selected.partition(":")
    states: dict[str, Any] = {}
    offsets: dict[str, int] = defaultdict(int)
    pairs = []
    for i, ev in enumerate(evs[:count]):
        key = ev.customer_id or ev.anonymous_id
        topic = EVENT_TOPIC[ev.type].name
        offsets[topic] += 1
        ref = InputRef(topic, 3, offsets[topic])
        before = encode_state(states[key]) if key in states else b""
        out = engine.apply(states.get(key), key, ev, ref, 0.0)
        states[key] = out.state
        # kept: an existing customer's event of the class, that moves a persona if ":move",
        # that does not if ":nomove"
        if i >= start and before and etype in ("all", ev.type) and (
            not moving or (moving == "move") == bool(out.transitions)
        ):
            pairs.append((before, key, ev, ref))
    return engine, pairs


def replay(evs: list[Any], selected: str) -> int:
    """Apply the ``selected`` events among events 10 000-19 999 to decoded copies of the
    states they met in the stream, once, untimed, and return how many. The applies are the
    only calls made through ``itertools.starmap`` (the C function ``starmap_next``), so
    ``valgrind --tool=callgrind --collect-atstart=no --toggle-collect=starmap_next`` counts
    their instructions alone: a noise-free cost per event of that class (with
    PYTHONHASHSEED=0). The collector is off during the applies, so a collection that lands in
    one variant and not in another does not count.

    (Sessions 2 and 3 subtracted a whole ``--setup-only`` run instead; the setup's own count
    varies between runs by up to ~20M instructions, several thousand per event for a class
    of a few thousand events, which is as large as the changes measured.)"""
    engine, pairs = replay_pairs(evs, selected, 10_000, 20_000)
    copies = [decode_state(before) for before, *_ in pairs]
    args = [(state, key, ev, ref, 0.0) for state, (_, key, ev, ref) in zip(copies, pairs,
                                                                           strict=True)]
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        collections.deque(itertools.starmap(engine.apply, args), maxlen=0)
    finally:
        gc.enable()
    return len(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--digest", action="store_true",
                        help="print the output digest (see digest()) instead of timing")
    parser.add_argument("--replay", metavar="TYPE[:move|:nomove]",
                        help="apply one class of events once, untimed (see replay())")
    args = parser.parse_args()
    models, source = events(args.customers, args.events)
    evs = as_worker_reads(models)
    if args.replay:
        count = replay(evs, args.replay)
        print(json.dumps({"replay": args.replay, "events": count}))
        return
    if args.digest:
        value = digest(evs)
        print(f"digest of {len(evs)} events from {source}: {value}")
        print(json.dumps({"digest": value, "events": len(evs)}))
        return
    print(f"events: {len(evs)} from {source}, {args.customers} customers, "
          f"repeat {args.repeat}")
    runs = []
    for i in range(args.repeat):
        result = once(evs, models)
        runs.append(result)
        print(f"run {i + 1}: apply p50 {result['apply_us_p50']:.2f} us, p99 "
              f"{result['apply_us_p99']:.1f} us, baseline p50 {result['baseline_us_p50']:.2f} us,"
              f" due p50 {result['due_us_p50']:.2f} us, state p50 "
              f"{result['state_bytes_p50']:.0f} B")
    summary: dict[str, Any] = {
        key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
    summary["apply_us_p50_runs"] = [round(r["apply_us_p50"], 2) for r in runs]
    summary["events"] = len(evs)
    summary["repeat"] = args.repeat
    summary["native"] = processors.NATIVE  # compiled (make native) or interpreted, and why
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
