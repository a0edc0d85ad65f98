"""CustomerState: everything personaflow remembers about one customer, kept small and fast.

Plain ``__slots__`` dataclasses and tuples (no pydantic): the stream worker applies every event
to one of these, so attribute access and construction must be cheap. Every stored time is
whole epoch seconds (``int``); every collection is bounded (see :class:`Limits`) so a state
stays small serialised (see :mod:`processors.statecodec`).

The state is mutable: :meth:`processors.engine.Engine.apply` updates the state it is given and
returns it. Callers that need the previous value keep a copy (:func:`copy_state`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class View(NamedTuple):
    """One product view (most recent last)."""

    product_id: str
    name: str
    category: str
    price: float
    at: int


class Item(NamedTuple):
    """One product line of a cart or a summary of an order line."""

    product_id: str
    name: str
    category: str
    price: float
    quantity: int


class Order(NamedTuple):
    """A recent order, kept so refunds and cancellations can be matched."""

    order_id: str
    revenue: float
    at: int
    cancelled: bool


class Deadline(NamedTuple):
    """A pending time-based firing of ``source`` (cart, browse, inactivity, post_purchase,
    welcome, or "transition") for ``episode`` (a cart id, order id, ...) at ``step`` (from 0).

    ``rule`` is empty for a deadline; it names a trigger rule when the entry is a trigger held
    back by the budget or quiet hours, which re-enters arbitration at ``due`` and is cancelled
    with its episode like any deadline. Entries sort by due time.
    """

    due: int
    source: str
    episode: str
    step: int
    rule: str = ""
    origin: int = 0  # deferred triggers: when the trigger was first due (expiry base)


class Sent(NamedTuple):
    """A trigger emitted for sending (or held out) at ``at``; feeds the send budget."""

    at: int
    trigger_type: str
    priority: int
    marketing: bool


class Change(NamedTuple):
    """One persona change, for the last-K history."""

    at: int
    dimension: str
    from_persona: str | None
    to_persona: str
    rule_id: str


@dataclass(slots=True, init=False)
class Cart:
    """An open cart: items by product id, its last activity and how far its reminders got."""

    cart_id: str
    items: dict[str, Item] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0
    checkout_at: int | None = None
    fired: int = 0  # reminder steps already fired (or skipped)
    currency: str = "USD"

    def __init__(self, cart_id: str, items: dict[str, Item] | None = None, created_at: int = 0,
                 updated_at: int = 0, checkout_at: int | None = None, fired: int = 0,
                 currency: str = "USD") -> None:
        # the dataclass __init__, written out (as CustomerState's): native when compiled
        self.cart_id = cart_id
        self.items = {} if items is None else items
        self.created_at = created_at
        self.updated_at = updated_at
        self.checkout_at = checkout_at
        self.fired = fired
        self.currency = currency

    @property
    def value(self) -> float:
        """Sum of price x quantity over the items."""
        return round(sum(i.price * i.quantity for i in self.items.values()), 2)


@dataclass(slots=True, init=False)
class CustomerState:
    """One customer's state; see the module docstring. Field groups follow issue 3."""

    customer_id: str
    # identity and traits (PII: wiped by Erasure Requested)
    email: str | None = None
    first_name: str | None = None
    locale: str | None = None
    time_zone: str | None = None
    identified_at: int | None = None
    erased_at: int | None = None
    # consent and suppression
    consent_marketing: bool | None = None  # None: never stated
    consent_transactional: bool = True
    suppressed: str | None = None  # unsubscribed | bounced | complained
    soft_bounces: int = 0
    # activity
    first_seen: int = 0
    last_seen: int = 0
    sessions: int = 0
    searches: int = 0
    # purchases
    orders: int = 0
    revenue: float = 0.0
    first_order_at: int | None = None
    last_order_at: int | None = None
    refunds: int = 0
    refunded: float = 0.0
    # email engagement
    delivered: int = 0
    opens: int = 0
    clicks: int = 0
    last_open: int | None = None
    last_click: int | None = None
    engagement: float = 0.0
    engagement_at: int = 0
    # personas: lifecycle persona, interest facet, journey stage, with entry times
    persona: str = ""
    persona_at: int = 0
    interest: str | None = None
    interest_at: int = 0
    journey: str = ""
    journey_at: int = 0
    # bounded collections
    anonymous_ids: list[str] = field(default_factory=list)
    views: list[View] = field(default_factory=list)
    affinity: dict[str, tuple[float, int]] = field(default_factory=dict)  # category: score, at
    carts: dict[str, Cart] = field(default_factory=dict)
    recent_orders: list[Order] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)  # purchased, most recent last
    changes: list[Change] = field(default_factory=list)
    deadlines: list[Deadline] = field(default_factory=list)  # sorted by due
    sent: list[Sent] = field(default_factory=list)
    watermarks: dict[str, int] = field(default_factory=dict)  # "topic:partition": offset

    def __init__(
        self, customer_id: str, email: str | None = None, first_name: str | None = None,
        locale: str | None = None, time_zone: str | None = None,
        identified_at: int | None = None, erased_at: int | None = None,
        consent_marketing: bool | None = None, consent_transactional: bool = True,
        suppressed: str | None = None, soft_bounces: int = 0, first_seen: int = 0,
        last_seen: int = 0, sessions: int = 0, searches: int = 0, orders: int = 0,
        revenue: float = 0.0, first_order_at: int | None = None,
        last_order_at: int | None = None, refunds: int = 0, refunded: float = 0.0,
        delivered: int = 0, opens: int = 0, clicks: int = 0, last_open: int | None = None,
        last_click: int | None = None, engagement: float = 0.0, engagement_at: int = 0,
        persona: str = "", persona_at: int = 0, interest: str | None = None,
        interest_at: int = 0, journey: str = "", journey_at: int = 0,
        anonymous_ids: list[str] | None = None, views: list[View] | None = None,
        affinity: dict[str, tuple[float, int]] | None = None,
        carts: dict[str, Cart] | None = None, recent_orders: list[Order] | None = None,
        categories: list[str] | None = None, changes: list[Change] | None = None,
        deadlines: list[Deadline] | None = None, sent: list[Sent] | None = None,
        watermarks: dict[str, int] | None = None,
    ) -> None:
        # the dataclass __init__, written out (init=False): compiled, it is native code;
        # the generated one is interpreted (~22 k instructions per new state).
        # tests/unit/test_processors_state_init.py ties it to the fields
        self.customer_id = customer_id
        self.email = email
        self.first_name = first_name
        self.locale = locale
        self.time_zone = time_zone
        self.identified_at = identified_at
        self.erased_at = erased_at
        self.consent_marketing = consent_marketing
        self.consent_transactional = consent_transactional
        self.suppressed = suppressed
        self.soft_bounces = soft_bounces
        self.first_seen = first_seen
        self.last_seen = last_seen
        self.sessions = sessions
        self.searches = searches
        self.orders = orders
        self.revenue = revenue
        self.first_order_at = first_order_at
        self.last_order_at = last_order_at
        self.refunds = refunds
        self.refunded = refunded
        self.delivered = delivered
        self.opens = opens
        self.clicks = clicks
        self.last_open = last_open
        self.last_click = last_click
        self.engagement = engagement
        self.engagement_at = engagement_at
        self.persona = persona
        self.persona_at = persona_at
        self.interest = interest
        self.interest_at = interest_at
        self.journey = journey
        self.journey_at = journey_at
        self.anonymous_ids = [] if anonymous_ids is None else anonymous_ids
        self.views = [] if views is None else views
        self.affinity = {} if affinity is None else affinity
        self.carts = {} if carts is None else carts
        self.recent_orders = [] if recent_orders is None else recent_orders
        self.categories = [] if categories is None else categories
        self.changes = [] if changes is None else changes
        self.deadlines = [] if deadlines is None else deadlines
        self.sent = [] if sent is None else sent
        self.watermarks = {} if watermarks is None else watermarks

    @property
    def next_due(self) -> float | None:
        """The earliest pending deadline, or None."""
        return self.deadlines[0].due if self.deadlines else None

    @property
    def aov(self) -> float:
        """Average order value (0 without orders)."""
        return round(self.revenue / self.orders, 2) if self.orders else 0.0


class Limits(NamedTuple):
    """Bounds of the state's collections (from the rule file's ``settings.limits``)."""

    views: int = 5
    carts: int = 2
    cart_items: int = 6
    orders: int = 3
    categories: int = 4
    affinity: int = 5
    changes: int = 3
    sent: int = 6
    anonymous_ids: int = 2


def copy_state(state: CustomerState) -> CustomerState:
    """A deep copy of ``state`` (tuples are immutable and shared; containers are copied)."""
    from processors.statecodec import decode_state, encode_state

    return decode_state(encode_state(state))
