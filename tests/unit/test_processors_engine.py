"""The engine contract: watermarks, transition records, identity merge, erasure, codec."""

from __future__ import annotations

import pytest

from processors.engine import Engine, InputRef, copy_state, decode_state, encode_state
from processors.errors import StateDecodeError
from processors.samples import T0, Events, Runner
from schemas.models import PersonaTransition

H = 3600.0
ENGINE = Engine()


def test_watermark_makes_a_replayed_input_a_no_op() -> None:
    ev = Events("c1")
    view = ev.view("p1", T0)
    ref = InputRef("events.site", 2, 10)
    out = ENGINE.apply(None, "c1", view, ref, T0)
    before = encode_state(out.state)
    again = ENGINE.apply(out.state, "c1", view, ref, T0)
    assert again.applied is False and not again.triggers and not again.transitions
    assert encode_state(again.state) == before
    older = ENGINE.apply(out.state, "c1", ev.view("p2", T0 + 1), InputRef("events.site", 2, 9),
                         T0 + 1)
    assert older.applied is False
    other = ENGINE.apply(out.state, "c1", ev.view("p2", T0 + 1), InputRef("events.site", 3, 1),
                         T0 + 1)
    assert other.applied is True
    assert out.state.watermarks == {"events.site:2": 10, "events.site:3": 1}


def test_forwarded_anonymous_records_have_their_own_watermark() -> None:
    """After identification, an anonymous id's records are forwarded to the customer with
    their original offsets, which interleave with the customer's own on the same partition."""
    anon_ev, own_ev = Events(None, "anon-1", prefix="a"), Events("c1")
    anon = ENGINE.apply(None, "anon-1", anon_ev.view("p1", T0), InputRef("events.site", 5, 100),
                        T0).state
    st = ENGINE.apply(None, "c1", own_ev.view("p2", T0 + 1), InputRef("events.site", 5, 120),
                      T0 + 1).state
    st = ENGINE.merge(st, anon, "c1", T0 + 2).state
    assert st.watermarks == {"events.site:5": 120, "events.site:5~anon-1": 100}
    late = anon_ev.view("p3", T0 + 3)  # anon-1's record at offset 110, forwarded late
    out = ENGINE.apply(st, "c1", late, InputRef("events.site", 5, 110), T0 + 3)
    assert out.applied and [v.product_id for v in st.views][-1] == "p3"
    again = ENGINE.apply(st, "c1", late, InputRef("events.site", 5, 110), T0 + 4)
    assert again.applied is False
    assert ENGINE.apply(st, "c1", anon_ev.view("p1", T0 + 5), InputRef("events.site", 5, 100),
                        T0 + 5).applied is False
    assert decode_state(encode_state(st)).watermarks == st.watermarks


def test_transition_record_explains_itself() -> None:
    run, ev = Runner(ENGINE, "c1"), Events("c1")
    run.apply(ev.view("p1", T0))
    run.apply(ev.view("p2", T0 + 60))
    life = [t for t in run.transitions if t.dimension == "lifecycle"]
    assert len(life) == 1
    rec = life[0]
    assert (rec.from_persona, rec.to_persona, rec.rule_id) == ("new_visitor", "browsing",
                                                              "starts_browsing")
    assert rec.facts["views"] == "2" and rec.facts["event.type"] == "Product Viewed"
    assert rec.cause_event_id == "e2" and rec.at.timestamp() == T0 + 60
    assert PersonaTransition.model_validate(rec.model_dump()) == rec


def test_chained_transitions_on_a_big_first_order() -> None:
    run, ev = Runner(ENGINE, "c1"), Events("c1")
    run.apply(ev.order("o1", 1500, T0, products=("p5",)))
    life = [(t.from_persona, t.to_persona) for t in run.transitions
            if t.dimension == "lifecycle"]
    assert life == [("new_visitor", "first_time_buyer"), ("first_time_buyer", "high_value")]
    assert run.state.journey == "retention"
    assert [c.to_persona for c in run.state.changes][-1] in ("high_value", "retention")


def test_interest_facet_follows_repeated_category_browsing() -> None:
    run, ev = Runner(ENGINE, "c1"), Events("c1")
    run.apply(ev.view("p1", T0))
    run.apply(ev.view("p1", T0 + 60))
    assert run.state.interest == "recent_browser:shoes"
    run.apply(ev.view("p2", T0 + 120))  # one outerwear view does not beat two shoes views
    assert run.state.interest == "recent_browser:shoes"
    run.apply(ev.order("o1", 80, T0 + 180))
    assert run.state.interest == "none"


def test_merge_carries_anonymous_history_and_persona() -> None:
    anon_run, anon_ev = Runner(ENGINE, "anon-1"), Events(None, "anon-1")
    anon_run.apply(anon_ev.view("p1", T0))
    anon_run.apply(anon_ev.view("p1", T0 + 60))
    anon_run.apply(anon_ev.add("k1", "p1", T0 + 120))
    anon = anon_run.state
    assert anon.persona == "browsing"
    run, ev = Runner(ENGINE, "c1"), Events("c1")
    run.apply(ev.identify(T0 + 600))
    out = ENGINE.merge(run.state, anon, "c1", T0 + 601, "e-identify")
    st = out.state
    assert st.persona == "browsing" and st.interest == "recent_browser:shoes"
    assert "k1" in st.carts and len(st.views) == 2 and "anon-1" in st.anonymous_ids
    assert any(d.source == "cart" and d.episode == "k1" for d in st.deadlines)
    merged = [t for t in out.transitions if t.rule_id == "identity_merge"]
    assert merged and merged[0].facts["anonymous_persona"] == "browsing"
    assert st.first_seen == int(T0)
    # the anonymous cart now reaches the identified customer (held: the welcome took today's
    # budget slot)
    tick = ENGINE.tick(st, "c1", T0 + 120 + 2 * H)
    assert ("cart_abandonment", "deferred") in tick.skipped
    assert ENGINE.merge(st, None, "c1", T0 + 700).applied is False


def test_merge_keeps_customer_persona_when_already_earned() -> None:
    run, ev = Runner(ENGINE, "c1"), Events("c1")
    run.apply(ev.order("o1", 50, T0))
    anon_run, anon_ev = Runner(ENGINE, "anon-2"), Events(None, "anon-2")
    anon_run.apply(anon_ev.view("p1", T0 + 10))
    anon_run.apply(anon_ev.view("p3", T0 + 20))
    out = ENGINE.merge(run.state, anon_run.state, "c1", T0 + 30)
    assert out.state.persona == "first_time_buyer"
    assert out.state.orders == 1 and len(out.state.views) == 2


def test_erasure_wipes_personal_data_but_keeps_watermarks() -> None:
    run, ev = Runner(ENGINE, "c1"), Events("c1")
    run.apply(ev.identify(T0, time_zone="Europe/Paris"))
    run.apply(ev.add("k1", "p1", T0 + 60))
    run.apply(ev.erase(T0 + 120))
    st = run.state
    assert (st.email, st.first_name, st.time_zone) == (None, None, None)
    assert st.carts == {} and st.views == [] and st.deadlines == []
    assert st.erased_at == int(T0 + 120) and st.watermarks == {"events:0": 3}
    assert b"example.com" not in encode_state(st) and b"Ann" not in encode_state(st)
    run.tick(T0 + 10 * 86_400)
    assert [t for t in run.triggers if t.trigger_type != "welcome"] == []


def test_codec_round_trip_copy_and_corrupt_input() -> None:
    run, ev = Runner(ENGINE, "c1"), Events("c1")
    for i, event in enumerate([ev.identify(T0), ev.view("p1", T0 + 1), ev.add("k1", "p2", T0 + 2),
                               ev.order("o1", 120, T0 + 3, products=("p2",)), ev.opened(T0 + 4)]):
        run.apply(event)
        assert decode_state(encode_state(run.state)) == run.state, i
    copy = copy_state(run.state)
    assert copy == run.state and copy is not run.state and copy.views is not run.state.views
    assert len(encode_state(run.state)) < 1024
    for bad in (b"", b"{}", b"[99]", b"[2, 1, 2]", b"not json"):
        with pytest.raises(StateDecodeError) as info:
            decode_state(bad)
        assert info.value.retriable is False


def test_unsupported_input_is_a_typed_non_retriable_error() -> None:
    from datetime import UTC, datetime

    from processors.errors import UnsupportedEventError
    from schemas.models import SendOutcome, SendResult

    result = SendResult(trigger_id="t", customer_id="c1", trigger_type="x",
                        outcome=SendOutcome.SENT, at=datetime.now(UTC))
    with pytest.raises(UnsupportedEventError) as info:
        ENGINE.apply(None, "c1", result, None, T0)
    assert info.value.retriable is False


def test_new_state_and_next_due() -> None:
    st = ENGINE.new_state("c9", T0)
    assert (st.persona, st.interest, st.journey) == ("new_visitor", "none", "awareness")
    assert ENGINE.next_due(st) is None
    out = ENGINE.apply(st, "c9", Events("c9").add("k1", "p1", T0), None, T0)
    assert out.next_due == ENGINE.next_due(out.state) == T0 + H

