"""The Confluent Schema Registry client against a real local HTTP server.

Confluent Schema Registry (a JVM service) cannot run here, so ``FakeRegistry`` stands in for
it: a small aiohttp server implementing the two endpoints the client uses, with Confluent's
semantics (``POST /subjects/{subject}/versions`` returns the global id of the schema, the same id
for the same schema; ``GET /schemas/ids/{id}`` returns the schema text or 404 with error code
40403). Switches make it answer 500 or 409 to test failure handling.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import to_parsing_canonical_form

from schemas import avrogen
from schemas.codec import Codec
from schemas.errors import RegistryRejected, RegistryUnavailable, UnknownSchemaId
from schemas.registry import ConfluentRegistry, FileRegistry, registry_from_env
from schemas.samples import sample_events


@dataclass
class FakeRegistry:
    """In-memory Schema Registry state plus failure switches."""

    schemas: dict[int, str] = field(default_factory=dict)
    subjects: dict[str, list[int]] = field(default_factory=dict)
    schema_types: dict[int, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    fail_with: int | None = None
    next_id: int = 100

    def register(self, subject: str, text: str) -> int:
        canonical = to_parsing_canonical_form(parse_schema(json.loads(text)))
        same = [
            known_id
            for known_id, known in self.schemas.items()
            if to_parsing_canonical_form(parse_schema(json.loads(known))) == canonical
        ]
        if same:
            sid = same[0]
        else:
            sid = self.next_id
            self.next_id += 1
            self.schemas[sid] = text
        if sid not in self.subjects.setdefault(subject, []):
            self.subjects[subject].append(sid)
        return sid

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/subjects/{subject}/versions", self._post)
        app.router.add_get("/schemas/ids/{sid}", self._get)
        return app

    def _failure(self) -> web.Response | None:
        if self.fail_with is None:
            return None
        return web.json_response({"error_code": self.fail_with, "message": "switched"},
                                 status=self.fail_with)

    async def _post(self, request: web.Request) -> web.Response:
        self.requests.append(f"POST {request.path}")
        body = await request.json()
        sid = self.register(request.match_info["subject"], body["schema"])
        return self._failure() or web.json_response({"id": sid})

    async def _get(self, request: web.Request) -> web.Response:
        self.requests.append(f"GET {request.path}")
        text = self.schemas.get(int(request.match_info["sid"]))
        if failure := self._failure():
            return failure
        if text is None:
            return web.json_response({"error_code": 40403, "message": "Schema not found"},
                                     status=404)
        sid = int(request.match_info["sid"])
        if sid in self.schema_types:
            return web.json_response({"schema": text, "schemaType": self.schema_types[sid]})
        return web.json_response({"schema": text})


@pytest.fixture
def fake_registry() -> Iterator[tuple[str, FakeRegistry]]:
    """A FakeRegistry served on a free loopback port from its own thread and event loop."""
    state = FakeRegistry()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    async def start() -> web.AppRunner:
        runner = web.AppRunner(state.app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(runner.addresses[0][1])
        return runner

    def serve() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{port[0]}", state
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_every_event_round_trips_through_registered_schemas(
    fake_registry: tuple[str, FakeRegistry],
) -> None:
    url, state = fake_registry
    producer = Codec(ConfluentRegistry(url))
    consumer = Codec(ConfluentRegistry(url))
    file_ids = set(FileRegistry().ids())
    for event in sample_events().values():
        data = producer.encode(event)
        schema_id = int.from_bytes(data[1:5], "big")
        assert schema_id >= 100 and schema_id not in file_ids  # the server's ids, not the file's
        assert consumer.decode(data) == event
        assert producer.encode(event) == data  # id cached: no second registration
    posts = [r for r in state.requests if r.startswith("POST")]
    gets = [r for r in state.requests if r.startswith("GET")]
    assert len(posts) == len(sample_events()) == len(gets)
    assert "POST /subjects/io.personaflow.v1.ProductViewed/versions" in posts


def test_old_writer_version_from_the_registry_resolves_to_current_reader(
    fake_registry: tuple[str, FakeRegistry],
) -> None:
    url, state = fake_registry
    old = copy.deepcopy(avrogen.schema_for("Products Searched"))
    old["fields"] = [f for f in old["fields"] if f["name"] != "source"]  # v0 had no source
    sid = state.register("io.personaflow.v1.ProductsSearched", json.dumps(old))
    record = sample_events()["Products Searched"].model_dump()
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(old), record)
    event = Codec(ConfluentRegistry(url)).decode(b"\x00" + sid.to_bytes(4, "big") +
                                                 body.getvalue())
    assert event.source == "unknown"  # type: ignore[attr-defined]  # the reader default
    assert event.query == "trail shoes"  # type: ignore[attr-defined]


def test_unknown_id_is_a_permanent_error(fake_registry: tuple[str, FakeRegistry]) -> None:
    url, _ = fake_registry
    data = b"\x00\x00\x00\x30\x39rest"
    with pytest.raises(UnknownSchemaId) as info:
        Codec(ConfluentRegistry(url)).decode(data)
    assert info.value.retriable is False
    assert info.value.raw == data
    assert "12345" in info.value.reason


def test_ids_of_foreign_schemas_are_unknown(fake_registry: tuple[str, FakeRegistry]) -> None:
    url, state = fake_registry
    state.schemas[7] = 'syntax = "proto3"; message A {}'
    state.schema_types[7] = "PROTOBUF"
    state.schemas[8] = json.dumps({"type": "record", "name": "com.other.Thing", "fields": []})
    codec = Codec(ConfluentRegistry(url))
    with pytest.raises(UnknownSchemaId, match="PROTOBUF"):
        codec.decode(b"\x00\x00\x00\x00\x07rest")
    with pytest.raises(UnknownSchemaId, match=r"com\.other\.Thing"):
        codec.decode(b"\x00\x00\x00\x00\x08rest")


def test_server_errors_are_retriable(fake_registry: tuple[str, FakeRegistry]) -> None:
    url, state = fake_registry
    good = Codec(ConfluentRegistry(url)).encode(sample_events()["Alias"])
    state.fail_with = 503
    with pytest.raises(RegistryUnavailable) as info:
        Codec(ConfluentRegistry(url)).decode(good)
    assert info.value.retriable is True
    assert info.value.raw == good
    with pytest.raises(RegistryUnavailable):
        Codec(ConfluentRegistry(url)).encode(sample_events()["Alias"])
    state.fail_with = None
    assert Codec(ConfluentRegistry(url)).decode(good) == sample_events()["Alias"]


def test_refused_registration_is_not_retriable(fake_registry: tuple[str, FakeRegistry]) -> None:
    url, state = fake_registry
    state.fail_with = 409
    with pytest.raises(RegistryRejected) as info:
        Codec(ConfluentRegistry(url)).encode(sample_events()["Identify"])
    assert info.value.retriable is False
    assert "409" in info.value.reason


def test_unreachable_registry_is_retriable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    codec = Codec(ConfluentRegistry(f"http://127.0.0.1:{port}", timeout_s=2))
    with pytest.raises(RegistryUnavailable) as info:
        codec.decode(b"\x00\x00\x00\x00\x01xyz")
    assert info.value.retriable


def test_registry_is_chosen_from_the_environment() -> None:
    assert isinstance(registry_from_env({}), FileRegistry)
    chosen = registry_from_env({"SCHEMA_REGISTRY_URL": "http://sr.example:8081/"})
    assert isinstance(chosen, ConfluentRegistry)
    assert chosen.url == "http://sr.example:8081"
    preferred = registry_from_env({"PERSONAFLOW_SCHEMA_REGISTRY_URL": "http://a:1",
                                   "SCHEMA_REGISTRY_URL": "http://b:2"})
    assert isinstance(preferred, ConfluentRegistry) and preferred.url == "http://a:1"
