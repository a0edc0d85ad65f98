"""Shopper archetypes: how often each kind of shopper adds, checks out, buys and comes back.

The mix is what makes every trigger reachable: abandoners leave carts (cart 1h/24h/48h),
browsers re-view products (browse 48h), buyers buy (post-purchase 3d) and lapsers stay away
for weeks (inactivity 30/90 days).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Profile:
    """Per-session probabilities and the return-gap behaviour of one archetype."""

    name: str
    weight: float
    add: float
    """chance a viewed product is added to the cart"""
    remove: float
    checkout: float
    purchase: float
    """chance a started checkout completes"""
    sessions_per_week: float
    lapse: float
    """chance the next gap is a long absence (30-120 days)"""


PROFILES: tuple[Profile, ...] = (
    Profile("browser", 0.30, add=0.08, remove=0.10, checkout=0.15, purchase=0.30,
            sessions_per_week=2.5, lapse=0.04),
    Profile("abandoner", 0.25, add=0.40, remove=0.25, checkout=0.25, purchase=0.15,
            sessions_per_week=2.0, lapse=0.05),
    Profile("buyer", 0.25, add=0.30, remove=0.10, checkout=0.45, purchase=0.70,
            sessions_per_week=1.5, lapse=0.05),
    Profile("loyal", 0.10, add=0.30, remove=0.05, checkout=0.60, purchase=0.85,
            sessions_per_week=4.0, lapse=0.01),
    Profile("lapser", 0.10, add=0.20, remove=0.10, checkout=0.30, purchase=0.40,
            sessions_per_week=1.0, lapse=0.35),
)  # fmt: skip


def pick_profile(rng: random.Random) -> Profile:
    """Draw an archetype by weight."""
    return rng.choices(PROFILES, weights=[p.weight for p in PROFILES])[0]


def next_gap(rng: random.Random, profile: Profile) -> timedelta:
    """Time from the end of one session to the start of the next.

    Mostly exponential around the archetype's visit rate (hours to days), sometimes a short
    return within the hour, sometimes a long lapse of 30-120 days.
    """
    roll = rng.random()
    if roll < profile.lapse:
        return timedelta(days=rng.uniform(30, 120))
    if roll < profile.lapse + 0.15:
        return timedelta(minutes=rng.uniform(10, 60))
    mean_hours = 24 * 7 / profile.sessions_per_week
    hours = min(rng.expovariate(1 / mean_hours), 24 * 25)
    return timedelta(hours=max(hours, 1.0))
