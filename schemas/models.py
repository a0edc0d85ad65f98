"""Pydantic v2 models for every personaflow event, mirroring the Avro contracts in ``schemas/avro``.

Naming follows Segment's Ecommerce V2 spec: the ``type`` field holds the event name
("Product Viewed", "Order Completed", ...) and doubles as the discriminator of :data:`Event`.

Every input event shares one envelope (:class:`Envelope`): a unique ``event_id``, when it
happened (``occurred_at``) and when we received it (``received_at``), at least one of
``customer_id`` / ``anonymous_id``, the producing ``source`` and the contract's
``schema_version``. Timestamps are timezone-aware UTC datetimes (Avro ``timestamp-millis``).

These models are the producer-side validation: constructing one with a bad field raises
:class:`pydantic.ValidationError` naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

SCHEMA_VERSION = 1

Money = Annotated[float, Field(ge=0)]
Currency = Annotated[str, Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")]
NonEmpty = Annotated[str, Field(min_length=1, max_length=512)]


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a time zone (use UTC)")
    # Avro timestamp-millis keeps milliseconds only; truncate so round trips are exact.
    value = value.astimezone(UTC)
    return value.replace(microsecond=(value.microsecond // 1000) * 1000)


class Product(_Model):
    """One product line: in a cart, an order, a view or a trigger's product block."""

    product_id: NonEmpty
    sku: str | None = None
    name: str = ""
    category: str = ""
    brand: str | None = None
    price: Money = 0.0
    quantity: Annotated[int, Field(ge=0)] = 1
    url: str | None = None
    image_url: str | None = None


class Envelope(_Model):
    """Fields every input event carries."""

    event_id: NonEmpty
    occurred_at: datetime
    received_at: datetime = Field(default_factory=utc_now)
    customer_id: str | None = None
    anonymous_id: str | None = None
    source: str = "unknown"
    schema_version: int = SCHEMA_VERSION

    _ts = field_validator("occurred_at", "received_at")(_as_utc)

    @model_validator(mode="after")
    def _one_id_at_least(self) -> Envelope:
        if not self.customer_id and not self.anonymous_id:
            raise ValueError("customer_id or anonymous_id is required (both are missing)")
        return self

    @property
    def occurred_ts(self) -> float:
        """``occurred_at`` in epoch seconds (what the plain records carry precomputed)."""
        return self.occurred_at.timestamp()

    @property
    def key(self) -> str:
        """Partition key: the customer id when known, else the anonymous id."""
        return self.customer_id or self.anonymous_id or ""


# ---------------------------------------------------------------- site (events.site)


class PageViewed(Envelope):
    type: Literal["Page Viewed"] = "Page Viewed"
    url: str = ""
    path: str = ""
    title: str | None = None
    referrer: str | None = None


class ProductListViewed(Envelope):
    type: Literal["Product List Viewed"] = "Product List Viewed"
    list_id: str | None = None
    category: str = ""
    products: list[Product] = Field(default_factory=list)


class ProductViewed(Envelope):
    type: Literal["Product Viewed"] = "Product Viewed"
    product: Product
    currency: Currency = "USD"


class ProductsSearched(Envelope):
    type: Literal["Products Searched"] = "Products Searched"
    query: str


# ---------------------------------------------------------------- cart (events.cart)


class ProductAdded(Envelope):
    type: Literal["Product Added"] = "Product Added"
    cart_id: NonEmpty
    product: Product
    currency: Currency = "USD"


class ProductRemoved(Envelope):
    type: Literal["Product Removed"] = "Product Removed"
    cart_id: NonEmpty
    product: Product
    currency: Currency = "USD"


class CartViewed(Envelope):
    type: Literal["Cart Viewed"] = "Cart Viewed"
    cart_id: NonEmpty
    products: list[Product] = Field(default_factory=list)
    value: Money = 0.0
    currency: Currency = "USD"


class CheckoutStarted(Envelope):
    type: Literal["Checkout Started"] = "Checkout Started"
    cart_id: NonEmpty
    order_id: str | None = None
    products: list[Product] = Field(default_factory=list)
    value: Money = 0.0
    currency: Currency = "USD"


# ---------------------------------------------------------------- purchase (events.purchase)


class OrderCompleted(Envelope):
    type: Literal["Order Completed"] = "Order Completed"
    order_id: NonEmpty
    cart_id: str | None = None
    revenue: Money
    currency: Currency = "USD"
    products: list[Product] = Field(default_factory=list)


class OrderRefunded(Envelope):
    type: Literal["Order Refunded"] = "Order Refunded"
    order_id: NonEmpty
    revenue: Money = 0.0
    currency: Currency = "USD"
    products: list[Product] = Field(default_factory=list)


class OrderCancelled(Envelope):
    type: Literal["Order Cancelled"] = "Order Cancelled"
    order_id: NonEmpty
    revenue: Money = 0.0
    currency: Currency = "USD"


# ---------------------------------------------------------------- engagement (events.engagement)


class _EmailEvent(Envelope):
    message_id: str | None = None
    trigger_id: str | None = None
    trigger_type: str | None = None
    variant: str | None = None


class EmailDelivered(_EmailEvent):
    type: Literal["Email Delivered"] = "Email Delivered"


class EmailOpened(_EmailEvent):
    type: Literal["Email Opened"] = "Email Opened"


class EmailClicked(_EmailEvent):
    type: Literal["Email Clicked"] = "Email Clicked"
    url: str | None = None


class BounceKind(StrEnum):
    HARD = "hard"
    SOFT = "soft"


class EmailBounced(_EmailEvent):
    type: Literal["Email Bounced"] = "Email Bounced"
    bounce_type: BounceKind = BounceKind.HARD
    reason: str | None = None


class EmailUnsubscribed(_EmailEvent):
    type: Literal["Email Unsubscribed"] = "Email Unsubscribed"


class EmailSpamReported(_EmailEvent):
    type: Literal["Email Spam Reported"] = "Email Spam Reported"


# ---------------------------------------------------------------- identity (events.identity)


class Traits(_Model):
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    first_name: str | None = None
    locale: str | None = None
    time_zone: str | None = None
    consent_email: bool | None = None


class Identify(Envelope):
    """Binds the (optional) anonymous id to ``customer_id`` and updates traits."""

    type: Literal["Identify"] = "Identify"
    traits: Traits = Field(default_factory=Traits)

    @model_validator(mode="after")
    def _needs_customer(self) -> Identify:
        if not self.customer_id:
            raise ValueError("customer_id: Identify needs a customer id")
        return self


class Alias(Envelope):
    """Declares that ``previous_id`` (an anonymous id) is the same person as ``customer_id``."""

    type: Literal["Alias"] = "Alias"
    previous_id: NonEmpty

    @model_validator(mode="after")
    def _needs_customer(self) -> Alias:
        if not self.customer_id:
            raise ValueError("customer_id: Alias needs a customer id")
        return self


class ConsentChanged(Envelope):
    type: Literal["Consent Changed"] = "Consent Changed"
    channel: Literal["email"] = "email"
    purpose: Literal["marketing", "transactional"] = "marketing"
    granted: bool


class ErasureRequested(Envelope):
    type: Literal["Erasure Requested"] = "Erasure Requested"
    reason: str | None = None


InputEvent = Annotated[
    PageViewed
    | ProductListViewed
    | ProductViewed
    | ProductsSearched
    | ProductAdded
    | ProductRemoved
    | CartViewed
    | CheckoutStarted
    | OrderCompleted
    | OrderRefunded
    | OrderCancelled
    | EmailDelivered
    | EmailOpened
    | EmailClicked
    | EmailBounced
    | EmailUnsubscribed
    | EmailSpamReported
    | Identify
    | Alias
    | ConsentChanged
    | ErasureRequested,
    Field(discriminator="type"),
]

INPUT_EVENT_ADAPTER: TypeAdapter[InputEvent] = TypeAdapter(InputEvent)

# ---------------------------------------------------------------- outputs


class PersonaTransition(_Model):
    """One explainable persona change: which rule moved the customer, and the facts behind it."""

    type: Literal["Persona Transition"] = "Persona Transition"
    transition_id: NonEmpty
    customer_id: NonEmpty
    dimension: Literal["lifecycle", "interest", "journey"] = "lifecycle"
    from_persona: str | None
    to_persona: NonEmpty
    rule_id: NonEmpty
    rule_version: int = 1
    facts: dict[str, str] = Field(default_factory=dict)
    cause_event_id: str | None = None
    at: datetime
    schema_version: int = SCHEMA_VERSION

    _ts = field_validator("at")(_as_utc)


class TriggerPriority(IntEnum):
    """Higher wins when the send budget arbitrates."""

    PROMOTIONAL = 10
    RE_ENGAGEMENT = 20
    BROWSE = 30
    CART = 40
    TRANSACTIONAL = 50


class Trigger(_Model):
    """A decision to (maybe) email a customer; the sink turns it into a send or a reason why not.

    ``trigger_id`` is deterministic: (customer, rule, episode, step), so a re-emitted trigger
    is the same trigger and the sink's ledger sends it at most once.
    """

    type: Literal["Trigger"] = "Trigger"
    trigger_id: NonEmpty
    customer_id: NonEmpty
    trigger_type: NonEmpty  # e.g. cart_abandonment, browse_abandonment, post_purchase, ...
    rule_id: NonEmpty
    episode: str = ""
    step: int = 0
    priority: int = TriggerPriority.PROMOTIONAL.value
    marketing: bool = True
    created_at: datetime
    not_before: datetime | None = None
    expires_at: datetime | None = None
    recipient: str | None = None  # email address; never logged
    locale: str | None = None
    time_zone: str | None = None
    persona: str | None = None
    interest: str | None = None
    journey_stage: str | None = None
    segment: str | None = None
    tokens: dict[str, str] = Field(default_factory=dict)
    products: list[Product] = Field(default_factory=list)
    experiment: str | None = None
    variant: str | None = None
    holdout: bool = False
    cause_event_id: str | None = None
    schema_version: int = SCHEMA_VERSION

    _ts = field_validator("created_at", "not_before", "expires_at")(
        lambda v: None if v is None else _as_utc(v)
    )


class SendOutcome(StrEnum):
    SENT = "sent"
    SUPPRESSED = "suppressed"
    CAPPED = "capped"
    DEFERRED = "deferred"
    HELD_OUT = "held_out"
    EXPIRED = "expired"
    DUPLICATE = "duplicate"
    FAILED = "failed"


class SendResult(_Model):
    type: Literal["Send Result"] = "Send Result"
    trigger_id: NonEmpty
    customer_id: NonEmpty
    trigger_type: str
    outcome: SendOutcome
    reason: str | None = None
    esp: str | None = None
    esp_message_id: str | None = None
    persona: str | None = None
    variant: str | None = None
    attempts: int = 0
    at: datetime
    schema_version: int = SCHEMA_VERSION

    _ts = field_validator("at")(_as_utc)


class DeadLetter(_Model):
    """A record we could not process, kept whole with the reason (also in Kafka headers)."""

    # payloads are arbitrary bytes: JSON carries them base64-encoded
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_default=True,
        ser_json_bytes="base64",
        val_json_bytes="base64",
    )

    type: Literal["Dead Letter"] = "Dead Letter"
    reason: NonEmpty
    error_type: NonEmpty
    original_topic: str | None = None
    original_partition: int | None = None
    original_offset: int | None = None
    original_key: bytes | None = None
    payload: bytes
    at: datetime
    schema_version: int = SCHEMA_VERSION

    _ts = field_validator("at")(_as_utc)


EVENT_TYPES: dict[str, type[_Model]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        PageViewed,
        ProductListViewed,
        ProductViewed,
        ProductsSearched,
        ProductAdded,
        ProductRemoved,
        CartViewed,
        CheckoutStarted,
        OrderCompleted,
        OrderRefunded,
        OrderCancelled,
        EmailDelivered,
        EmailOpened,
        EmailClicked,
        EmailBounced,
        EmailUnsubscribed,
        EmailSpamReported,
        Identify,
        Alias,
        ConsentChanged,
        ErasureRequested,
        PersonaTransition,
        Trigger,
        SendResult,
        DeadLetter,
    )
}
"""Event name -> model class, for every contract (inputs and outputs)."""
