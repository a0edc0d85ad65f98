"""Full topic names of one deployment (catalogue names plus the prefix) and their roles."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from schemas.topics import DLQ_EVENTS, INPUT_TOPICS, REKEYED, TICKS, TRANSITIONS, TRIGGERS


@dataclass(frozen=True)
class TopicNames:
    """The topics a worker reads and writes, with ``prefix`` applied."""

    prefix: str = ""

    def full(self, catalogue_name: str) -> str:
        """Prefixed name of a catalogue topic."""
        return f"{self.prefix}{catalogue_name}"

    @cached_property
    def inputs(self) -> list[str]:
        return [self.full(spec.name) for spec in INPUT_TOPICS]

    @cached_property
    def rekeyed(self) -> str:
        return self.full(REKEYED.name)

    @cached_property
    def ticks(self) -> str:
        return self.full(TICKS.name)

    @cached_property
    def transitions(self) -> str:
        return self.full(TRANSITIONS.name)

    @cached_property
    def triggers(self) -> str:
        return self.full(TRIGGERS.name)

    @cached_property
    def dlq(self) -> str:
        return self.full(DLQ_EVENTS.name)

    @cached_property
    def roles(self) -> dict[str, str]:
        """The role of every topic that is not an input (per record: ``roles.get(topic,
        "input")`` is :meth:`role` without the call)."""
        return {self.ticks: "ticks", self.rekeyed: "rekeyed"}

    def catalogue_name(self, topic: str) -> str:
        """The catalogue name of a full topic name (the prefix removed)."""
        return topic[len(self.prefix) :] if self.prefix and topic.startswith(self.prefix) else topic

    def role(self, topic: str) -> str:
        """``ticks``, ``rekeyed`` or ``input`` (per record: a dict lookup)."""
        return self.roles.get(topic, "input")
