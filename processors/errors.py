"""Typed errors of the domain core. Each says whether retrying could help (``retriable``).

Everything raised here is a programming or configuration problem (a bad rule file, a bad
policy value, a corrupt state blob): retrying the same input gives the same error, so none of
them is retriable.
"""

from __future__ import annotations


class ProcessorsError(Exception):
    """Base class of every error raised by processors/."""

    retriable: bool = False


class PolicyError(ProcessorsError, ValueError):
    """A policy value is out of range (quiet hours, budget, variants, shares)."""


class UnsupportedEventError(ProcessorsError, TypeError):
    """The engine was handed something that is not an input event (dead-letter it)."""


class StateDecodeError(ProcessorsError, ValueError):
    """A serialised customer state could not be decoded (corrupt or from an unknown version)."""


class RuleError(ProcessorsError, ValueError):
    """A rule file is invalid; names the file, the line (1-based) and the field at fault."""

    def __init__(self, message: str, *, file: str = "<rules>", line: int | None = None,
                 field: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        where = file if line is None else f"{file}:{line}"
        what = f" [{field}]" if field else ""
        super().__init__(f"{where}{what}: {message}")


class RuleErrors(RuleError):
    """Several problems in a rule set; ``errors`` lists each (file, line, field, message)."""

    def __init__(self, errors: list[RuleError]) -> None:
        first = errors[0]
        super().__init__(first.message, file=first.file, line=first.line, field=first.field)
        self.errors = errors
        self.args = ("\n".join(str(e) for e in errors),)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class ConditionError(ValueError):
    """A guard that does not parse or names an unknown fact; ``column`` is 1-based.

    Raised by :mod:`processors.conditions` (defined here: exception classes stay in this
    module, which is never compiled; see docs/native.md)."""

    retriable = False

    def __init__(self, message: str, column: int) -> None:
        self.column = column
        super().__init__(f"{message} (column {column})")
