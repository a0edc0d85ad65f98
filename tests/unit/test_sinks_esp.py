"""ESP adapter logic without a network: payload shape, Retry-After, backoff, SMTP error
mapping, the file outbox, message headers and unsubscribe tokens."""

from __future__ import annotations

import email
import smtplib
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.compose import compose
from sinks.errors import EspPermanentError, EspTemporaryError
from sinks.esp.factory import make_adapter
from sinks.esp.http import HttpAdapter, batchable, build_payload, parse_retry_after
from sinks.esp.outbox import OutboxAdapter, eml_name
from sinks.esp.smtp import SmtpAdapter, _classify
from sinks.harness import make_trigger
from sinks.render import Renderer
from sinks.retry import RetryPolicy
from sinks.settings import TEMPLATES_DIR, SinkSettings
from sinks.unsubscribe import make_token, unsubscribe_url, verify_token

SETTINGS = SinkSettings(unsubscribe_secret="k")
RENDERER = Renderer(TEMPLATES_DIR)


def mail(n=1, **fields):
    return compose(SETTINGS, RENDERER, make_trigger(n, **fields))


def test_headers_message_id_is_stable_and_one_click_unsubscribe_present():
    a, b = mail(1), mail(1)
    assert a.message_id == b.message_id and a.message_id != mail(2).message_id
    msg = a.to_mime()
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith("<http://127.0.0.1:8090/unsubscribe?t=")
    assert "mailto:" in msg["List-Unsubscribe"]
    assert msg["X-Personaflow-Trigger"] == "trg-1"
    assert msg.get_content_type() == "multipart/alternative"


def test_unsubscribe_token_roundtrip_and_forgery():
    token = make_token("s", "cust-1", "trg-1")
    assert verify_token("s", token) == ("cust-1", "trg-1")
    assert verify_token("other", token) is None
    assert verify_token("s", token[:-2] + "xx") is None
    assert verify_token("s", "%%%") is None
    assert unsubscribe_url("https://x/u?a=1", "s", "c", "t").startswith("https://x/u?a=1&t=")


def test_sendgrid_payload_single_and_batched():
    one = build_payload([mail(1)])
    assert one["personalizations"][0]["to"] == [{"email": "person1@example.com"}]
    assert one["content"][1]["type"] == "text/html" and "Hi Ada" in one["content"][1]["value"]
    batch = build_payload([mail(1), mail(2, tokens={"first_name": "Bo"})])
    assert [c["value"] for c in batch["content"]] == ["-text-", "-html-"]
    people = batch["personalizations"]
    assert [p["custom_args"]["trigger_id"] for p in people] == ["trg-1", "trg-2"]
    assert "Hi Bo" in people[1]["substitutions"]["-html-"]
    assert people[0]["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert people[0]["headers"]["Message-ID"] == mail(1).message_id
    assert batchable(mail(1))


def test_retry_after_parsing():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    date = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(date, now) == 30.0
    assert parse_retry_after("-5") == 0.0


@given(st.integers(min_value=1, max_value=30), st.floats(min_value=0, max_value=1))
def test_backoff_is_exponential_with_equal_jitter_and_capped(attempt, r):
    policy = RetryPolicy(max_attempts=5, base_s=0.5, max_s=30.0)
    delay = policy.delay(attempt, None, lambda: r)
    ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
    assert ceiling / 2 <= delay <= ceiling
    assert policy.delay(attempt, 7.0, lambda: r) == 7.0  # Retry-After wins


def test_smtp_error_mapping():
    temp = _classify(smtplib.SMTPResponseException(451, b"try later"))
    perm = _classify(smtplib.SMTPResponseException(554, b"no"))
    refused = _classify(smtplib.SMTPRecipientsRefused({"a@b.c": (550, b"unknown")}))
    deferred = _classify(smtplib.SMTPRecipientsRefused({"a@b.c": (452, b"full")}))
    assert isinstance(temp, EspTemporaryError) and temp.retriable
    assert isinstance(perm, EspPermanentError) and not perm.retriable
    assert isinstance(refused, EspPermanentError)
    assert isinstance(deferred, EspTemporaryError)


async def test_smtp_connection_refused_is_temporary():
    adapter = SmtpAdapter("127.0.0.1", 1, timeout=1)
    with pytest.raises(EspTemporaryError):
        await adapter.send(mail(1))


async def test_http_connection_refused_is_temporary():
    adapter = HttpAdapter("http://127.0.0.1:1/v3/mail/send", batch_size=1, timeout=1)
    try:
        with pytest.raises(EspTemporaryError):
            await adapter.send(mail(1))
    finally:
        await adapter.close()


async def test_outbox_writes_one_eml_per_trigger_idempotently(tmp_path):
    adapter = OutboxAdapter(tmp_path / "out")
    await adapter.start()
    first = await adapter.send(mail(1))
    again = await adapter.send(mail(1))
    await adapter.send(mail(2))
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == sorted([eml_name("trg-1"), eml_name("trg-2")]) and first == again
    parsed = email.message_from_bytes((tmp_path / "out" / eml_name("trg-1")).read_bytes(),
                                      policy=default_policy)
    assert parsed["To"] == "person1@example.com" and parsed["Message-ID"] == first


def test_factory_and_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PERSONAFLOW_SINK_ESP", "smtp")
    monkeypatch.setenv("PERSONAFLOW_SINK_SMTP_PORT", "2526")
    monkeypatch.setenv("PERSONAFLOW_SINK_HTTP_API_KEY", "secret-key")
    s = SinkSettings()
    assert s.smtp_port == 2526 and "secret-key" not in repr(s)
    assert isinstance(make_adapter(s), SmtpAdapter)
    assert isinstance(make_adapter(s.model_copy(update={"esp": "outbox"})), OutboxAdapter)
    with pytest.raises(ValueError, match="backoff"):
        SinkSettings(backoff_base_s=5, backoff_max_s=1)


def test_wire_bytes_parse_back_to_the_rendered_parts_and_headers():
    m = mail(3, tokens={"first_name": "Zoë"}, persona="loyal")
    parsed = email.message_from_bytes(m.to_bytes(), policy=default_policy)
    assert parsed["Subject"] == m.rendered.subject
    assert m.rendered.subject == "Zoë, your favourites are waiting in your cart"
    assert parsed["Message-ID"] == m.message_id and parsed["To"] == "person3@example.com"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["List-Unsubscribe"] == m.list_headers()["List-Unsubscribe"]
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == m.rendered.text
    assert parsed.get_body(("html",)).get_content().replace("\r\n", "\n") == m.rendered.html
    assert max(len(line) for line in m.to_bytes().split(b"\r\n")) <= 998
    assert b"\n" not in m.to_bytes().replace(b"\r\n", b"")  # CRLF only (SMTP DATA)
