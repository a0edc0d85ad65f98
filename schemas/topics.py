"""The topic catalogue: every topic personaflow reads or writes, in one place.

All customer-keyed topics are co-partitioned (same partition count, same key, same
partitioner: murmur2, as the Java client and aiokafka/Faust use). confluent-kafka producers of
these topics must set ``partitioner=murmur2_random`` (see :data:`PRODUCER_PARTITIONER`).
Topic names can be prefixed (``PERSONAFLOW_TOPIC_PREFIX``) so several deployments or test runs
share one cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

DEFAULT_PARTITIONS = 12
PRODUCER_PARTITIONER = "murmur2_random"


class Key(StrEnum):
    CUSTOMER = "customer id (or anonymous id until identified)"
    TRIGGER = "customer id"
    NONE = "none"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    purpose: str
    key: Key = Key.CUSTOMER
    co_partitioned: bool = True
    configs: dict[str, str] = field(default_factory=dict)

    def full_name(self, prefix: str = "") -> str:
        return f"{prefix}{self.name}"


_WEEK_MS = str(7 * 24 * 3600 * 1000)
_MONTH_MS = str(30 * 24 * 3600 * 1000)

SITE = TopicSpec("events.site", "Page/Product List/Product Viewed, Products Searched")
CART = TopicSpec("events.cart", "Product Added/Removed, Cart Viewed, Checkout Started")
PURCHASE = TopicSpec("events.purchase", "Order Completed/Refunded/Cancelled")
ENGAGEMENT = TopicSpec("events.engagement", "ESP feedback: delivered, opened, clicked, bounced ...")
IDENTITY = TopicSpec("events.identity", "Identify, Alias, Consent Changed, Erasure Requested")
TICKS = TopicSpec(
    "internal.ticks",
    "deadline ticks fed back to the customer agent",
    configs={"retention.ms": _WEEK_MS},
)
REKEYED = TopicSpec(
    "internal.rekeyed", "events re-keyed from anonymous id to canonical customer id"
)
TRANSITIONS = TopicSpec("personas.transitions", "explainable persona transitions (audit trail)")
TRIGGERS = TopicSpec("triggers.email", "email triggers for the sink", key=Key.TRIGGER)
SEND_RESULTS = TopicSpec("sends.results", "one Send Result per trigger", key=Key.TRIGGER)
DLQ_EVENTS = TopicSpec(
    "dlq.events",
    "input records that failed decoding or processing, with reason headers",
    co_partitioned=False,
    configs={"retention.ms": _MONTH_MS},
)
DLQ_SENDS = TopicSpec(
    "dlq.sends",
    "triggers that could not be sent after retries, with reason headers",
    co_partitioned=False,
    configs={"retention.ms": _MONTH_MS},
)

INPUT_TOPICS: tuple[TopicSpec, ...] = (SITE, CART, PURCHASE, ENGAGEMENT, IDENTITY)
ALL_TOPICS: tuple[TopicSpec, ...] = (
    *INPUT_TOPICS,
    TICKS,
    REKEYED,
    TRANSITIONS,
    TRIGGERS,
    SEND_RESULTS,
    DLQ_EVENTS,
    DLQ_SENDS,
)

EVENT_TOPIC: dict[str, TopicSpec] = {
    **dict.fromkeys(
        ("Page Viewed", "Product List Viewed", "Product Viewed", "Products Searched"), SITE
    ),
    **dict.fromkeys(("Product Added", "Product Removed", "Cart Viewed", "Checkout Started"), CART),
    **dict.fromkeys(("Order Completed", "Order Refunded", "Order Cancelled"), PURCHASE),
    **dict.fromkeys(
        (
            "Email Delivered",
            "Email Opened",
            "Email Clicked",
            "Email Bounced",
            "Email Unsubscribed",
            "Email Spam Reported",
        ),
        ENGAGEMENT,
    ),
    **dict.fromkeys(("Identify", "Alias", "Consent Changed", "Erasure Requested"), IDENTITY),
    "Persona Transition": TRANSITIONS,
    "Trigger": TRIGGERS,
    "Send Result": SEND_RESULTS,
}
"""Event name -> the topic it is published to."""
