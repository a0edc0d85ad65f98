"""Full topic names of one deployment (catalogue names plus the prefix) and their roles."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.topics import DLQ_EVENTS, INPUT_TOPICS, REKEYED, TICKS, TRANSITIONS, TRIGGERS


@dataclass(frozen=True)
class TopicNames:
    """The topics a worker reads and writes, with ``prefix`` applied."""

    prefix: str = ""

    def full(self, catalogue_name: str) -> str:
        """Prefixed name of a catalogue topic."""
        return f"{self.prefix}{catalogue_name}"

    @property
    def inputs(self) -> list[str]:
        return [self.full(spec.name) for spec in INPUT_TOPICS]

    @property
    def rekeyed(self) -> str:
        return self.full(REKEYED.name)

    @property
    def ticks(self) -> str:
        return self.full(TICKS.name)

    @property
    def transitions(self) -> str:
        return self.full(TRANSITIONS.name)

    @property
    def triggers(self) -> str:
        return self.full(TRIGGERS.name)

    @property
    def dlq(self) -> str:
        return self.full(DLQ_EVENTS.name)

    def catalogue_name(self, topic: str) -> str:
        """The catalogue name of a full topic name (the prefix removed)."""
        return topic[len(self.prefix) :] if self.prefix and topic.startswith(self.prefix) else topic

    def role(self, topic: str) -> str:
        """``ticks``, ``rekeyed`` or ``input``."""
        if topic == self.ticks:
            return "ticks"
        if topic == self.rekeyed:
            return "rekeyed"
        return "input"
