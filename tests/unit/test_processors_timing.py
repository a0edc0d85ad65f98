"""Tick timing decides only WHEN outputs appear, never WHAT they are (hypothesis).

The stream worker delivers deadline ticks through a Kafka topic, so a tick can come on time,
late, twice, or not at all before the customer's next event, and ``now`` is the worker's
clock. For any event sequence (in event-time order), the emitted transitions and triggers
(ids and contents, in order) and the final state must be the same whichever way ticks arrive.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.engine import Engine, InputRef, encode_state
from processors.policy import DAY
from processors.ruleset import rules_from_text
from tests.unit.test_processors_properties import build, cart_journeys, journeys

ENGINE = Engine()  # the shipped default rules: budget, quiet hours, welcome all on
TIGHT = Engine(rules_from_text(  # budget pressure: many deferred triggers and expiries
    "settings: {budget: {per_day: 1, per_week: 1}, quiet_hours: {start: 18, end: 10}}",
    "tight.yaml"))
MODES = ("exact", "late", "none", "twice")
SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


class Feed:
    """Drives one engine for customer c1 and records everything emitted."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.state: Any = None
        self.triggers: list[dict[str, Any]] = []
        self.transitions: list[dict[str, Any]] = []

    def _take(self, out: Any) -> None:
        self.state = out.state
        self.triggers.extend(t.model_dump() for t in out.triggers)
        self.transitions.extend(t.model_dump() for t in out.transitions)

    def apply(self, ev: Any, offset: int, now: float) -> None:
        self._take(self.engine.apply(self.state, "c1", ev, InputRef("events.site", 0, offset),
                                     now))

    def tick(self, now: float) -> None:
        if self.state is not None:
            self._take(self.engine.tick(self.state, "c1", now))

    def tick_on_time(self, until: float, times: int = 1) -> None:
        """A perfect ticker: one tick at each due time up to ``until`` (``times`` copies)."""
        for _ in range(10_000):
            due = None if self.state is None else self.engine.next_due(self.state)
            if due is None or due > until:
                return
            for _ in range(times):
                self.tick(due)

    def result(self) -> tuple[Any, ...]:
        return self.triggers, self.transitions, encode_state(self.state)


def feed(engine: Engine, events: list[tuple[float, Any]], mode: str, data: Any) -> Feed:
    """Apply ``events`` with ticks delivered per ``mode``, then a final tick at the end."""
    out = Feed(engine)
    last = events[0][0]
    for offset, (at, ev) in enumerate(events):
        if mode in ("exact", "twice"):
            out.tick_on_time(at, 2 if mode == "twice" else 1)
        elif mode == "late":  # any number of ticks at any clock up to the next event, stale too
            for _ in range(data.draw(st.integers(0, 3), label="ticks")):
                out.tick(data.draw(st.floats(events[0][0], at), label="tick now"))
        now = at + data.draw(st.sampled_from([0.0, 1.5, 3600.0, 40 * DAY]), label="apply now") \
            if mode == "late" else at
        out.apply(ev, offset, now)
        last = at
    end = last + 120 * DAY
    if mode in ("exact", "twice"):
        out.tick_on_time(end, 2 if mode == "twice" else 1)
    out.tick(end)
    if mode == "twice":
        out.tick(end)
    return out


def _check(engine: Engine, plan: list[Any], data: Any) -> None:
    events = [(at, ev) for at, ev in build(plan) if ev is not None]
    reference = feed(engine, events, "exact", data).result()
    for mode in MODES[1:]:
        got = feed(engine, events, mode, data).result()
        assert got[0] == reference[0], f"triggers differ when ticks are {mode}"
        assert got[1] == reference[1], f"transitions differ when ticks are {mode}"
        assert got[2] == reference[2], f"final state differs when ticks are {mode}"


@SETTINGS
@given(plan=st.one_of(journeys, cart_journeys), data=st.data())
def test_tick_timing_never_changes_outputs_or_state(plan: list[Any], data: Any) -> None:
    _check(ENGINE, plan, data)


@SETTINGS
@given(plan=st.one_of(journeys, cart_journeys), data=st.data())
def test_tick_timing_under_budget_and_quiet_hours_pressure(plan: list[Any], data: Any) -> None:
    _check(TIGHT, plan, data)


def test_times_in_outputs_come_from_event_or_due_time_never_the_clock() -> None:
    """A purchase after a cart deadline, every event processed ten days late: the reminder
    is decided at its due time and every transition is stamped with its event's time."""
    engine = Engine(rules_from_text(
        "settings: {budget: {per_day: 10, per_week: 50}, quiet_hours: {start: 0, end: 0},"
        " limits: {sent: 50}}", "open.yaml"))
    plan = [(60.0, ("add", "k1", "p1")), (3 * 3600.0, ("order", "k1", 80))]
    events = [(at, ev) for at, ev in build(plan) if ev is not None]
    out = Feed(engine)
    for offset, (at, ev) in enumerate(events):
        out.apply(ev, offset, at + 10 * DAY)
    cart = [t for t in out.triggers if t["trigger_type"] == "cart_abandonment"]
    assert [t["created_at"].timestamp() for t in cart] == [events[1][0] + 3600]
    assert [t["cause_event_id"] for t in cart] == [None]
    times: dict[str | None, float] = {ev.event_id: at for at, ev in events}
    times[None] = events[1][0] + 3600  # moved by the deadline itself: at its due time
    assert {r["cause_event_id"] for r in out.transitions} >= {None, events[-1][1].event_id}
    for record in out.transitions:
        assert record["at"].timestamp() == times[record["cause_event_id"]]


def test_merge_fires_what_was_due_on_each_side_first() -> None:
    """An anonymous cart's 1 h reminder was due before the visitor identified: it is decided
    on the anonymous side (no address yet) whether or not its tick came before the merge."""
    from processors.engine import copy_state
    from processors.samples import T0, Events

    engine = Engine(rules_from_text(  # a budget that lets the reminder through if decided late
        "settings: {budget: {per_day: 10, per_week: 50}, limits: {sent: 50}}", "open.yaml"))
    anon_ev, own = Events(None, "anon-1", prefix="a"), Events("c1")
    anon = engine.apply(None, "anon-1", anon_ev.add("k1", "p1", T0), None, T0).state
    customer = engine.apply(None, "c1", own.identify(T0 + 3 * 3600), None, T0 + 3 * 3600).state
    results = []
    for ticked in (True, False):
        side, mine = copy_state(anon), copy_state(customer)
        records: list[Any] = []
        if ticked:
            tick = engine.tick(side, "anon-1", T0 + 3600)
            records += [*tick.transitions, *tick.triggers]
        out = engine.merge(mine, side, "c1", T0 + 3 * 3600, "e1")
        records += [*out.transitions, *out.triggers]
        results.append(([r.model_dump() for r in records], encode_state(out.state)))
    assert results[0] == results[1]
    assert not any(r.get("trigger_type") == "cart_abandonment" and r.get("step") == 1
                   for r in results[0][0])  # no address when it was due
