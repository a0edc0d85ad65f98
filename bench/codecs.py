"""Codec throughput: Avro (full, fast path, raw) versus orjson JSON, on the generator's event mix.

Run: ``python -m bench.codecs [--events N] [--repeats R] [--seed S]``.

Every measure runs once per round, rounds interleave the measures (so drift in machine load
hits all of them alike), and the median rate over the rounds is reported. Time is this
process's CPU time (``time.process_time``), not wall time, so that other processes sharing the
cores (a busy CI box, parallel test runs) do not count against whichever measure they interrupt;
the benchmark is single-threaded, so CPU time is the work done. Ratios compare the
measures from the same run; the last line is one JSON object of named metrics.

Measures (events per second):
  avro_encode     schemas.codec.encode_event (model -> wire bytes)
  avro_decode     decode_event: wire bytes -> validated pydantic model
  avro_fast       decode_fast: wire bytes -> model via model_construct
  avro_plain      decode_plain: wire bytes -> plain record (the stream worker's path; its
                  readers compiled after ``make native`` unless PERSONAFLOW_NATIVE=0,
                  ``native_readers`` in the JSON says which)
  avro_raw        decode_raw: wire bytes -> (name, dict), no pydantic
  fastavro_only   bare fastavro schemaless_reader (the floor under avro_raw)
  json_encode     encode_json (model -> JSON bytes)
  json_decode     decode_json: orjson + the same pydantic validation as avro_decode
  orjson_only     bare orjson.loads (the floor under json_decode)
  build_validate  decoded Avro dict -> model by model_validate (what avro_decode adds)
  build_construct decoded Avro dict -> model by pydantic's model_construct (+ nested models)
  build_direct    decoded Avro dict -> model by schemas.construct.model_from_raw (avro_fast)
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from fastavro import schemaless_reader
from pydantic import BaseModel

from schemas.codec import Codec, encode_json, native_readers_status
from schemas.construct import model_from_raw
from schemas.models import EVENT_TYPES
from schemas.registry import FileRegistry, current_schema


def event_mix(seed: int, events: int) -> tuple[list[BaseModel], str]:
    """The generator's events (or, if it is unavailable, the samples repeated) and the source."""
    try:
        from personaflow.generator import generate_events
    except ImportError:
        from schemas.samples import sample_events

        samples = [e for e in sample_events().values() if hasattr(e, "event_id")]
        return [samples[i % len(samples)] for i in range(events)], "schemas.samples"
    start = datetime(2024, 1, 1, tzinfo=UTC)
    customers = max(1, events // 40)
    return list(generate_events(seed, customers, events, start)), "personaflow.generator"


def _each(fn: Callable[..., Any], items: list[Any], star: bool = False) -> Callable[[], None]:
    """A measure: call ``fn`` on every item, discarding results (same GC load for all)."""
    if star:
        def run_star() -> None:
            for item in items:
                fn(*item)

        return run_star

    def run() -> None:
        for item in items:
            fn(item)

    return run


def _measures(codec: Codec, events: list[BaseModel]) -> dict[str, Callable[[], None]]:
    avro = [codec.encode(e) for e in events]
    js = [encode_json(e) for e in events]
    raws = [codec.decode_raw(d) for d in avro]
    bodies = [(d, current_schema(name)) for d, (name, _) in zip(avro, raws, strict=True)]

    def fastavro_only(data: bytes, schema: Any) -> None:
        body = io.BytesIO(data)
        body.seek(5)
        schemaless_reader(body, schema, None)

    return {
        "avro_encode": _each(codec.encode, events),
        "avro_decode": _each(codec.decode, avro),
        "avro_fast": _each(codec.decode_fast, avro),
        "avro_plain": _each(codec.decode_plain, avro),
        "avro_raw": _each(codec.decode_raw, avro),
        "fastavro_only": _each(fastavro_only, bodies, star=True),
        "json_encode": _each(encode_json, events),
        "json_decode": _each(codec.decode_json, js),
        "orjson_only": _each(orjson.loads, js),
        "build_validate": _each(lambda n, r: EVENT_TYPES[n].model_validate(r), raws, star=True),
        "build_construct": _each(lambda n, r: _construct(EVENT_TYPES[n], r), raws, star=True),
        "build_direct": _each(model_from_raw, raws, star=True),
    }


def _construct(cls: type[BaseModel], record: dict[str, Any]) -> BaseModel:
    """pydantic's model_construct, with nested records built the same way (as a fair baseline)."""
    values = dict(record)
    for name, info in cls.model_fields.items():
        value = values.get(name)
        sub = _nested_model(info.annotation)
        if sub is not None and isinstance(value, dict):
            values[name] = _construct(sub, value)
        elif sub is not None and isinstance(value, list):
            values[name] = [_construct(sub, v) for v in value]
    return cls.model_construct(**values)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def run(events: list[BaseModel], repeats: int) -> dict[str, float]:
    """Median events/s of every measure over ``repeats`` interleaved rounds."""
    codec = Codec(FileRegistry())
    measures = _measures(codec, events)
    for fn in measures.values():  # warm caches (schema plans, builders)
        fn()
    rates: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(repeats):
        for name, fn in measures.items():
            t0 = time.process_time()
            fn()
            rates[name].append(len(events) / (time.process_time() - t0))
    return {name: statistics.median(values) for name, values in rates.items()}


def sizes(events: list[BaseModel]) -> dict[str, float]:
    """Mean encoded size in bytes, Avro wire format versus JSON."""
    codec = Codec(FileRegistry())
    avro = statistics.fmean(len(codec.encode(e)) for e in events)
    js = statistics.fmean(len(encode_json(e)) for e in events)
    return {"avro_bytes_mean": round(avro, 1), "json_bytes_mean": round(js, 1)}


def main(argv: list[str] | None = None) -> None:
    """Print the human summary, then the metrics as one JSON line."""
    parser = argparse.ArgumentParser(description="Avro vs JSON codec throughput")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    events, source = event_mix(args.seed, args.events)
    mix = Counter(str(getattr(e, "type", "?")) for e in events)
    print(f"{len(events)} events from {source}; {args.repeats} rounds, median rates")
    print("mix: " + ", ".join(f"{name} {n}" for name, n in mix.most_common()))
    rates = run(events, args.repeats)
    for name, rate in rates.items():
        print(f"  {name:<14} {rate:>12,.0f} events/s")
    metrics: dict[str, Any] = {f"{name}_per_s": round(rate) for name, rate in rates.items()}
    metrics["avro_decode_per_s"] = metrics.pop("avro_decode_per_s")
    metrics["avro_raw_decode_per_s"] = metrics.pop("avro_raw_per_s")
    metrics["avro_fast_decode_per_s"] = metrics.pop("avro_fast_per_s")
    metrics["avro_plain_decode_per_s"] = metrics.pop("avro_plain_per_s")
    metrics["native_readers"] = native_readers_status()
    ratios = {
        "avro_vs_json_decode": rates["avro_decode"] / rates["json_decode"],
        "avro_raw_vs_json_decode": rates["avro_raw"] / rates["json_decode"],
        "avro_fast_vs_full_decode": rates["avro_fast"] / rates["avro_decode"],
        "avro_vs_json_encode": rates["avro_encode"] / rates["json_encode"],
        "avro_raw_vs_fastavro_only": rates["avro_raw"] / rates["fastavro_only"],
        "build_direct_vs_validate": rates["build_direct"] / rates["build_validate"],
        "build_construct_vs_validate": rates["build_construct"] / rates["build_validate"],
    }
    for name, ratio in ratios.items():
        print(f"  {name:<26} {ratio:6.2f}x")
    metrics.update({name: round(r, 3) for name, r in ratios.items()})
    metrics.update(sizes(events))
    print(f"  sizes: avro {metrics['avro_bytes_mean']} B, json {metrics['json_bytes_mean']} B")
    metrics.update({"events": len(events), "repeats": args.repeats})
    print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
    main()
