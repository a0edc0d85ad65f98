"""A small, fixed shop catalogue: categories, products with prices, search terms, and the
people-like details (first names, locales, time zones) synthetic shoppers are made of.

Fixed data, not seeded: the same product id always means the same product, so generated
streams from different seeds describe the same shop.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.models import Product

SHOP_URL = "https://shop.example.test"


@dataclass(frozen=True)
class Category:
    """One shop category: its slug, brands, product nouns, price range and search terms."""

    slug: str
    brands: tuple[str, ...]
    nouns: tuple[str, ...]
    price_range: tuple[float, float]
    searches: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category("shoes", ("Stride", "Kettle"), ("Runner", "Loafer", "Boot", "Sneaker", "Sandal"),
             (39.0, 180.0), ("running shoes", "leather boots", "white sneakers")),
    Category("outerwear", ("Northline", "Fjell"), ("Parka", "Rain Jacket", "Gilet", "Trench"),
             (59.0, 320.0), ("waterproof jacket", "winter coat", "down vest")),
    Category("dresses", ("Mira", "Solenne"), ("Wrap Dress", "Midi Dress", "Shirt Dress"),
             (29.0, 149.0), ("summer dress", "linen dress", "party dress")),
    Category("accessories", ("Kettle", "Arlo"), ("Scarf", "Belt", "Beanie", "Tote", "Wallet"),
             (9.0, 89.0), ("wool scarf", "leather belt", "tote bag")),
    Category("home", ("Hearth", "Lumen"), ("Throw", "Lamp", "Mug Set", "Cushion", "Vase"),
             (12.0, 140.0), ("table lamp", "ceramic mugs", "cosy throw")),
    Category("beauty", ("Dew", "Petal"), ("Serum", "Lip Balm", "Cleanser", "Face Mask"),
             (6.0, 64.0), ("vitamin c serum", "gentle cleanser", "spf moisturiser")),
    Category("electronics", ("Voltis", "Quanta"), ("Earbuds", "Speaker", "Charger", "Watch"),
             (19.0, 399.0), ("wireless earbuds", "bluetooth speaker", "fast charger")),
    Category("outdoor", ("Fjell", "Trailcraft"), ("Backpack", "Tent", "Bottle", "Headlamp"),
             (14.0, 260.0), ("hiking backpack", "2 person tent", "steel bottle")),
)  # fmt: skip

PRODUCTS_PER_CATEGORY = 6


def _price(category: Category, index: int) -> float:
    low, high = category.price_range
    step = (high - low) / (PRODUCTS_PER_CATEGORY - 1)
    return round(low + step * index, 0) - 0.01


def _product(category: Category, index: int) -> Product:
    noun = category.nouns[index % len(category.nouns)]
    brand = category.brands[index % len(category.brands)]
    product_id = f"p-{category.slug}-{index + 1:02d}"
    return Product(
        product_id=product_id,
        sku=f"SKU-{category.slug[:3].upper()}-{index + 1:03d}",
        name=f"{brand} {noun}",
        category=category.slug,
        brand=brand,
        price=_price(category, index),
        quantity=1,
        url=f"{SHOP_URL}/{category.slug}/{product_id}",
        image_url=f"{SHOP_URL}/img/{product_id}.jpg",
    )


PRODUCTS: dict[str, tuple[Product, ...]] = {
    category.slug: tuple(_product(category, i) for i in range(PRODUCTS_PER_CATEGORY))
    for category in CATEGORIES
}
"""Category slug -> its products (fixed ids, names, prices)."""

FIRST_NAMES: tuple[str, ...] = (
    "Ada", "Ben", "Chloé", "Dev", "Elif", "Femi", "Greta", "Hiro", "Inès", "Jonas", "Kemi",
    "Lars", "Maya", "Noor", "Oskar", "Priya", "Quinn", "Rosa", "Sven", "Tomás", "Uma", "Yusuf",
)  # fmt: skip

LOCALES: tuple[tuple[str, str, str], ...] = (
    ("en-US", "America/New_York", "USD"),
    ("en-US", "America/Los_Angeles", "USD"),
    ("en-US", "America/Chicago", "USD"),
    ("en-GB", "Europe/London", "GBP"),
    ("de-DE", "Europe/Berlin", "EUR"),
    ("fr-FR", "Europe/Paris", "EUR"),
    ("es-ES", "Europe/Madrid", "EUR"),
    ("nl-NL", "Europe/Amsterdam", "EUR"),
    ("en-AU", "Australia/Sydney", "AUD"),
    ("ja-JP", "Asia/Tokyo", "JPY"),
)
"""(locale, IANA time zone, currency) triples shoppers are drawn from."""

TRIGGER_TYPES: tuple[str, ...] = (
    "cart_abandonment", "browse_abandonment", "post_purchase", "win_back", "welcome",
)  # fmt: skip
"""Trigger types the simulated ESP feedback refers to."""
