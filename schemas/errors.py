"""Typed errors of the event contracts: what went wrong, with which bytes, and whether to retry.

Every decoding failure is a :class:`DecodeError` carrying ``reason`` (human text naming the
field or the problem, never a field's value, so it is safe to log and to put in a dead-letter
header), ``raw`` (the bytes as received, for the dead-letter topic) and ``retriable``: ``False``
for bad data (retrying cannot help: dead-letter it), ``True`` when the data may be fine but a
dependency failed (the schema registry was unreachable: retry, do not dead-letter).
"""

from __future__ import annotations

MAX_REASON_CHARS = 500
"""Reasons are cut to this length so a header or log line stays small."""


class ContractError(Exception):
    """Base of every error raised by :mod:`schemas`."""

    retriable: bool = False

    def __init__(self, reason: str) -> None:
        self.reason = reason[:MAX_REASON_CHARS]
        super().__init__(self.reason)

    @property
    def error_type(self) -> str:
        """Short stable name of the error class (``x-dlq-error-type`` header)."""
        return type(self).__name__


class EncodeError(ContractError):
    """An event could not be serialised (e.g. a value outside Avro's range). Not retriable."""


class DecodeError(ContractError):
    """A record could not be turned into an event. ``raw`` holds the bytes as received."""

    def __init__(self, reason: str, raw: bytes = b"") -> None:
        super().__init__(reason)
        self.raw = raw

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.reason, self.raw))


class TruncatedPayload(DecodeError):
    """The payload ended before the wire header or the Avro body was complete."""


class BadMagicByte(DecodeError):
    """The first byte is not the Confluent wire-format magic byte 0."""


class UnknownSchemaId(DecodeError):
    """The 4-byte schema id is not known to the registry."""


class CorruptPayload(DecodeError):
    """The Avro body does not decode with its writer schema (bad union/enum index, extra bytes)."""


class InvalidJson(DecodeError):
    """The payload is not a JSON object."""


class InvalidUtf8(DecodeError):
    """Text in the payload is not valid UTF-8."""


class PayloadTooLarge(DecodeError):
    """The payload exceeds the configured size limit (default 1 MiB)."""


class ValidationFailed(DecodeError):
    """The payload decoded, but the event breaks the contract (field paths in ``reason``)."""


class MissingIdentity(ValidationFailed):
    """An input event carries neither ``customer_id`` nor ``anonymous_id``."""


class RegistryUnavailable(DecodeError):
    """The schema registry could not be reached or answered with a server error. Retriable."""

    retriable = True


class RegistryRejected(ContractError):
    """The schema registry refused a schema (e.g. incompatible with the subject). Not retriable."""
