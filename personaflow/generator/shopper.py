"""One synthetic shopper: identity, traits, cart and orders, and the events they cause.

:meth:`Shopper.timeline` yields the shopper's events forever, in time order: sessions of
browsing and buying separated by realistic gaps, with the ESP's feedback (delivered, opened,
clicked, bounced, unsubscribed) in between. Everything random comes from the shopper's own
``random.Random``, so a timeline is a pure function of its seed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from personaflow.generator import session
from personaflow.generator.catalogue import FIRST_NAMES, LOCALES, PRODUCTS, SHOP_URL
from personaflow.generator.profiles import Profile, next_gap, pick_profile
from personaflow.generator.state import Basket, Order, Person
from schemas import models as m
from schemas.models import Product


class Shopper:
    """Simulates one shopper; see the module docstring."""

    def __init__(self, number: int, rng: random.Random, start: datetime, id_stride: int) -> None:
        self.rng = rng
        self.id_stride = id_stride
        self.profile: Profile = pick_profile(rng)
        self.person = self._new_person(number)
        self.clock = start + timedelta(hours=rng.uniform(0, 72))
        self.favourites = rng.sample(sorted(PRODUCTS), k=2)
        self.basket = Basket(self.new_id("cart"))
        self.orders: list[Order] = []
        self.viewed: list[tuple[Product, datetime]] = []
        self.opted_out = False
        self.bounced = False
        self.pending: list[m.Envelope] = []
        self.trigger_hint = "welcome"
        """what the next simulated email is about (set by a purchase)"""

    # ------------------------------------------------------------ ids, people, emitting

    def new_id(self, kind: str) -> str:
        """A fresh random id like ``cart-1f2e...`` from the shopper's generator."""
        return f"{kind}-{uuid.UUID(int=self.rng.getrandbits(128), version=4).hex[:16]}"

    def _new_person(self, number: int) -> Person:
        locale, zone, currency = self.rng.choice(LOCALES)
        return Person(
            number=number,
            anonymous_id=self.new_id("anon"),
            identified=self.rng.random() < 0.6,
            first_name=self.rng.choice(FIRST_NAMES) if self.rng.random() < 0.9 else None,
            locale=locale,
            time_zone=zone,
            currency=currency,
            consent=self.rng.random() < 0.85,
            bad_address=self.rng.random() < 0.03,
        )

    def _ids(self) -> dict[str, Any]:
        if self.person.identified:
            return {"customer_id": self.person.customer_id,
                    "anonymous_id": self.person.anonymous_id}  # fmt: skip
        return {"anonymous_id": self.person.anonymous_id}

    def emit(self, cls: type[m.Envelope], source: str = "web", **fields: Any) -> None:
        """Queue an event at the current clock, then let a few seconds pass."""
        envelope = {
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "occurred_at": self.clock,
            "received_at": self.clock + timedelta(milliseconds=self.rng.randint(20, 2500)),
            "source": source,
            **self._ids(),
        }
        self.pending.append(cls(**{**envelope, **fields}))
        self.clock += timedelta(seconds=self.rng.randint(4, 90))

    def flush(self) -> Iterator[m.Envelope]:
        """Hand over the queued events."""
        events, self.pending = self.pending, []
        yield from events

    # ------------------------------------------------------------ the timeline

    def timeline(self) -> Iterator[m.Envelope]:
        """This shopper's events, forever, in time order."""
        while True:
            session.run_session(self)
            yield from self.flush()
            next_visit = session.email_feedback(self, self.clock + next_gap(self.rng, self.profile))
            yield from self.flush()
            self.clock = max(self.clock, next_visit)

    # ------------------------------------------------------------ identity helpers

    def traits(self) -> m.Traits:
        """The shopper's traits as an Identify carries them."""
        p = self.person
        return m.Traits(email=p.email, first_name=p.first_name, locale=p.locale,
                        time_zone=p.time_zone, consent_email=p.consent)  # fmt: skip

    def can_email(self) -> bool:
        """Whether the ESP would still send this shopper anything."""
        return (self.person.identified and self.person.consent
                and not self.opted_out and not self.bounced)  # fmt: skip

    def forget(self) -> None:
        """After an erasure the person is gone; a new visitor appears on this device."""
        self.person = self._new_person(self.person.number + self.id_stride)
        self.person.identified = False
        self.basket = Basket(self.new_id("cart"))
        self.orders, self.viewed = [], []
        self.opted_out = self.bounced = False

    def product(self, category: str | None = None) -> Product:
        """A product from a favourite category (mostly) or any category."""
        if category is None:
            favourite = self.rng.random() < 0.7
            category = self.rng.choice(self.favourites if favourite else sorted(PRODUCTS))
        return self.rng.choice(PRODUCTS[category])

    def page_url(self, path: str) -> str:
        """Absolute shop URL of ``path``."""
        return f"{SHOP_URL}{path}"
