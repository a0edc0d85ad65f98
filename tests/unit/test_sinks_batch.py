"""The batch hot path's pure parts: rounds without repeated trigger ids, all-or-nothing claims
of trigger-id sets, batch ESP hand-over with retries, the HTTP adapter's batch packing (against
the real local HTTP ESP) and the fast trigger decode."""

from __future__ import annotations

import asyncio

import pytest

from schemas.codec import encode_event
from schemas.errors import DecodeError
from sinks.batch import rounds
from sinks.codec import decode_trigger, decode_trigger_fast
from sinks.compose import compose
from sinks.errors import EspPermanentError, EspTemporaryError
from sinks.esp.base import EspAdapter, SendAnswer
from sinks.esp.http import HttpAdapter
from sinks.harness import make_trigger
from sinks.keylock import KeySetClaims
from sinks.message import OutgoingEmail
from sinks.render import Renderer
from sinks.retry import Delivery, RetryPolicy, SendFailed, send_all_with_retries
from sinks.settings import TEMPLATES_DIR, SinkSettings


def test_rounds_put_each_trigger_id_once_per_round_first_copies_first():
    ids = ["a", "b", "a", "c", "a", "b"]
    triggers = [make_trigger(i) for i in ids]
    assert rounds(triggers) == [[0, 1, 3], [2, 5], [4]]
    assert rounds([]) == []


async def test_claims_are_all_or_nothing_and_disjoint_sets_run_in_parallel():
    claims = KeySetClaims()
    log: list[str] = []

    async def batch(keys: list[str], tag: str) -> None:
        async with claims.hold(keys):
            log.append(f"start {tag}")
            await asyncio.sleep(0.01)
            log.append(f"end {tag}")

    await asyncio.gather(batch(["x", "y"], "1"), batch(["y", "z"], "2"), batch(["w"], "3"),
                         batch(["z", "x"], "4"))  # fmt: skip
    assert log.index("end 1") < log.index("start 2")  # shares y
    assert log.index("start 3") < log.index("end 1")  # w is free
    assert log.index("end 2") < log.index("start 4") or log.index("end 4") < log.index("start 2")
    assert len(claims) == 0


class _Scripted(EspAdapter):
    """Answers each email from a per-trigger script of answers (one per attempt)."""

    name = "scripted"

    def __init__(self, script: dict[str, list[SendAnswer]]) -> None:
        self.script = script
        self.calls: list[list[str]] = []

    async def send(self, email: OutgoingEmail) -> str:
        raise AssertionError("the batch path uses send_many")

    async def send_many(self, emails: list[OutgoingEmail]) -> list[SendAnswer]:
        self.calls.append([e.trigger_id for e in emails])
        return [self.script[e.trigger_id].pop(0) for e in emails]


def _emails(*names: str) -> list[OutgoingEmail]:
    settings = SinkSettings()
    renderer = Renderer(TEMPLATES_DIR)
    return [compose(settings, renderer, make_trigger(n)) for n in names]


async def test_batch_retries_only_the_temporary_failures_and_honours_retry_after():
    adapter = _Scripted(
        {
            "trg-ok": ["id-ok"],
            "trg-429": [EspTemporaryError("busy", reason="http_429", retry_after=0.2), "id-429"],
            "trg-400": [EspPermanentError("bad", reason="http_400")],
            "trg-503": [EspTemporaryError("down", reason="http_503")] * 2,
        }
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    out = await send_all_with_retries(
        adapter, _emails("ok", "429", "400", "503"), RetryPolicy(2, 0.01, 0.02)
    )
    assert loop.time() - started >= 0.19  # the longest Retry-After of the batch
    assert adapter.calls == [["trg-ok", "trg-429", "trg-400", "trg-503"], ["trg-429", "trg-503"]]
    ok, late, bad, down = out
    assert ok == Delivery("id-ok", 1) and late == Delivery("id-429", 2)
    assert isinstance(bad, SendFailed) and (bad.reason, bad.attempts) == ("http_400", 1)
    assert isinstance(down, SendFailed) and (down.reason, down.attempts) == ("http_503", 2)


async def test_http_send_many_packs_requests_and_fails_a_rejected_recipient_alone(esp):
    esp.reject_recipients = {"person3@example.com"}
    adapter = HttpAdapter(esp.url, batch_size=4)
    try:
        answers = await adapter.send_many(_emails(*(str(i) for i in range(10))))
    finally:
        await adapter.close()
    assert isinstance(answers[3], EspPermanentError) and answers[3].reason == "http_400"
    assert all(isinstance(a, str) and a for i, a in enumerate(answers) if i != 3)
    assert sorted(esp.deliveries) == sorted(f"trg-{i}" for i in range(10) if i != 3)
    # 3 batched requests (4+4+2); the refused one re-sent one email per request (4)
    assert esp.requests == 3 + 4 and esp.duplicates == 0


def test_fast_decode_equals_the_validating_decode():
    trigger = make_trigger("fast", not_before=None, variant="B", tokens={"a": "1"})
    raw = encode_event(trigger)
    assert decode_trigger_fast(raw) == decode_trigger(raw) == trigger


def test_fast_decode_refuses_what_the_validating_decode_refuses():
    with pytest.raises(DecodeError):
        decode_trigger_fast(b"\x00\x00\x00\x00\x07garbage")
    empty_id = make_trigger("x").model_copy(update={"trigger_id": ""})
    raw = encode_event(empty_id)  # encodes (Avro cannot say "non-empty"), must not decode
    with pytest.raises(DecodeError) as caught:
        decode_trigger_fast(raw)
    assert not caught.value.retriable


async def test_when_one_path_of_a_round_fails_the_others_are_stopped_before_the_retry():
    from sinks.batch import _together

    stopped = asyncio.Event()

    async def sending() -> dict:
        try:
            await asyncio.sleep(10)
        finally:
            stopped.set()
        return {}

    async def failing():
        await asyncio.sleep(0)
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        await _together(sending(), failing())
    assert stopped.is_set()  # nothing of the failed attempt is still sending
