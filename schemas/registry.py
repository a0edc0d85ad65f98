"""Schema registries: which schema id an event is written with, and which schema an id means.

Two implementations of :class:`Registry`:

- :class:`FileRegistry` (default): ids are fixed in the committed ``schemas/avro/registry.json``
  (subject -> versions -> id, fingerprint, history file), so every process and every machine
  agrees on them without a server. Subjects follow Confluent's RecordNameStrategy: the record's
  full name, e.g. ``io.personaflow.v1.ProductViewed`` (one topic carries several event types).
- :class:`ConfluentRegistry`: Confluent Schema Registry REST API, used when
  ``PERSONAFLOW_SCHEMA_REGISTRY_URL`` or ``SCHEMA_REGISTRY_URL`` is set.

Both hand out fastavro-parsed schemas, parsed once and cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from schemas.avrogen import AVRO_DIR, NAMESPACE, full_name
from schemas.errors import RegistryRejected, RegistryUnavailable, UnknownSchemaId
from schemas.models import EVENT_TYPES

REGISTRY_FILE = AVRO_DIR / "registry.json"
HISTORY_DIR = AVRO_DIR / "history"
ENV_URLS = ("PERSONAFLOW_SCHEMA_REGISTRY_URL", "SCHEMA_REGISTRY_URL")

EVENT_BY_FULL_NAME: dict[str, str] = {full_name(name): name for name in EVENT_TYPES}
"""Avro full name (registry subject) -> event name."""


@dataclass(frozen=True)
class WriterSchema:
    """A schema some record was written with: its id, event name and parsed form."""

    schema_id: int
    event_type: str
    parsed: Any


class Registry(Protocol):
    """What the codec needs from a registry."""

    def id_for(self, event_type: str) -> int:
        """Schema id to write ``event_type`` with (its current schema)."""
        ...

    def writer(self, schema_id: int) -> WriterSchema:
        """The schema behind ``schema_id``; raises UnknownSchemaId or RegistryUnavailable."""
        ...


def fingerprint(schema: Any) -> str:
    """SHA-256 of the Avro parsing canonical form (ignores docs, defaults and key order)."""
    canonical = to_parsing_canonical_form(parse_schema(schema, _write_hint=False))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def load_json(path: Path) -> Any:
    """Read a JSON file (schemas and the registry file are plain JSON)."""
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def current_schema(event_type: str) -> Any:
    """The parsed current (reader) schema of an event name, from ``schemas/avro``."""
    from schemas.avrogen import avsc_path

    return parse_schema(load_json(avsc_path(event_type)))


class FileRegistry:
    """Schema ids from the committed registry file; history schemas parsed on first use."""

    def __init__(self, path: Path = REGISTRY_FILE) -> None:
        self.path = path
        data = load_json(path)
        self._latest: dict[str, int] = {}
        self._files: dict[int, tuple[str, Path]] = {}
        for subject, entry in data["subjects"].items():
            event_type = EVENT_BY_FULL_NAME.get(subject)
            if event_type is None:
                continue  # a retired event type: ids stay reserved, nothing decodes to it
            for version in entry["versions"]:
                self._files[version["id"]] = (event_type, path.parent / version["file"])
            self._latest[event_type] = entry["versions"][-1]["id"]
        self._parsed: dict[int, WriterSchema] = {}

    def id_for(self, event_type: str) -> int:
        """Current schema id of ``event_type`` (the registry file's last version)."""
        return self._latest[event_type]

    def writer(self, schema_id: int) -> WriterSchema:
        """The history schema ``schema_id`` was assigned to."""
        found = self._parsed.get(schema_id)
        if found is not None:
            return found
        if schema_id not in self._files:
            raise UnknownSchemaId(f"schema id {schema_id} is not in {self.path.name}")
        event_type, file = self._files[schema_id]
        found = WriterSchema(schema_id, event_type, parse_schema(load_json(file)))
        self._parsed[schema_id] = found
        return found

    def ids(self) -> dict[int, str]:
        """Every known schema id -> its event name (for tools and tests)."""
        return {sid: event_type for sid, (event_type, _) in self._files.items()}


class ConfluentRegistry:
    """Client of the Confluent Schema Registry REST API (register a version, fetch by id).

    Ids are cached for the life of the process (Confluent ids are immutable). Network or 5xx
    failures raise :class:`RegistryUnavailable` (retriable); a 404 on an id raises
    :class:`UnknownSchemaId`; a refused registration raises :class:`RegistryRejected`.
    """

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._ids: dict[str, int] = {}
        self._writers: dict[int, WriterSchema] = {}
        self._lock = threading.Lock()

    def id_for(self, event_type: str) -> int:
        """Register the current schema of ``event_type`` under its subject; returns the id."""
        cached = self._ids.get(event_type)
        if cached is not None:
            return cached
        from schemas.avrogen import avsc_path

        text = json.dumps(load_json(avsc_path(event_type)), separators=(",", ":"))
        subject = urllib.parse.quote(full_name(event_type), safe="")
        body = self._call("POST", f"/subjects/{subject}/versions", {"schema": text})
        with self._lock:
            self._ids[event_type] = int(body["id"])
        return int(body["id"])

    def writer(self, schema_id: int) -> WriterSchema:
        """Fetch (once) the schema registered under ``schema_id``."""
        found = self._writers.get(schema_id)
        if found is not None:
            return found
        body = self._call("GET", f"/schemas/ids/{schema_id}", None, missing_id=schema_id)
        schema = _avro_schema_of(schema_id, body)
        name = _full_name_of(schema)
        event_type = EVENT_BY_FULL_NAME.get(name)
        if event_type is None:
            raise UnknownSchemaId(f"schema id {schema_id} is record {name!r}, not an event")
        try:
            parsed = parse_schema(schema)
        except Exception as exc:  # fastavro raises several types on invalid schemas
            raise UnknownSchemaId(f"schema id {schema_id} is not a valid Avro schema") from exc
        found = WriterSchema(schema_id, event_type, parsed)
        with self._lock:
            self._writers[schema_id] = found
        return found

    def _call(
        self, method: str, path: str, payload: Any, missing_id: int | None = None
    ) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json",
                     "Accept": "application/vnd.schemaregistry.v1+json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                return dict(json.loads(resp.read()))
        except urllib.error.HTTPError as exc:
            raise _http_error(exc, method, path, missing_id) from exc
        except (OSError, ValueError) as exc:
            raise RegistryUnavailable(f"schema registry {method} {path} failed: {exc}") from exc


def _http_error(
    exc: urllib.error.HTTPError, method: str, path: str, missing_id: int | None
) -> Exception:
    if exc.code >= 500 or exc.code == 429:
        return RegistryUnavailable(f"schema registry {method} {path}: HTTP {exc.code}")
    if exc.code == 404 and missing_id is not None:
        return UnknownSchemaId(f"schema id {missing_id} is not in the schema registry")
    return RegistryRejected(f"schema registry {method} {path}: HTTP {exc.code}")


def _avro_schema_of(schema_id: int, body: dict[str, Any]) -> Any:
    """The Avro schema in a ``GET /schemas/ids/{id}`` answer; other schema types are unknown."""
    if body.get("schemaType", "AVRO") != "AVRO":
        raise UnknownSchemaId(f"schema id {schema_id} is a {body['schemaType']} schema, not Avro")
    text = body.get("schema")
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError as exc:
        raise UnknownSchemaId(f"schema id {schema_id} is not valid JSON") from exc


def _full_name_of(schema: Any) -> str:
    if not isinstance(schema, dict):
        return str(schema)
    name = str(schema.get("name", ""))
    if "." in name:
        return name
    return f"{schema.get('namespace', NAMESPACE)}.{name}"


def registry_from_env(environ: dict[str, str] | None = None) -> Registry:
    """The Confluent client when a registry URL is set in the environment, else the file one."""
    env = os.environ if environ is None else environ
    for var in ENV_URLS:
        if env.get(var):
            return ConfluentRegistry(env[var])
    return FileRegistry()
