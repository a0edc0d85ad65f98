"""Event contracts shared by every personaflow service (see docs/contracts.md).

- :mod:`schemas.models`: pydantic models of every event (producer-side validation)
- ``schemas/avro/*.avsc``: the Avro contracts; :mod:`schemas.avrogen` keeps them in step
- :mod:`schemas.codec`: Confluent wire-format Avro and JSON encode/decode, fast path
- :mod:`schemas.registry`: file-based registry (default) and Confluent Schema Registry client
- :mod:`schemas.errors`: typed, retriable-or-not errors; :mod:`schemas.deadletter`: DLQ records
- :mod:`schemas.compat` and :mod:`schemas.release`: backward-compatibility rule and releases
- :mod:`schemas.topics`: the topic catalogue; :mod:`schemas.samples`: one sample per event
"""
