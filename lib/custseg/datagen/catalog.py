"""Product catalog, SKU popularity and the planted basket rules."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from custseg.datagen.fmt import Field, Records

# name, price range in pounds, share of SKUs, subcategories, brands, quantity factor
CATEGORIES = (
    (
        "grocery",
        (0.6, 6),
        0.17,
        ("pasta", "sauces", "rice", "canned", "spreads", "dips", "cereals"),
        ("Harvest", "Pantry Co", "Bellini", "Golden Field"),
        1.0,
    ),
    ("bakery", (0.8, 5), 0.06, ("bread", "cakes", "pastries"), ("Oven Fresh", "Baker's Best"), 1.0),
    (
        "dairy",
        (0.6, 7),
        0.08,
        ("milk", "cheese", "butter", "yogurt", "cream"),
        ("Meadow", "Dale Farm", "Cravendale"),
        1.0,
    ),
    (
        "beverages",
        (0.8, 15),
        0.10,
        ("coffee", "tea", "soft_drinks", "juice", "beer", "wine"),
        ("Brewline", "Tetley", "Fizz", "Orchard"),
        0.8,
    ),
    (
        "snacks",
        (0.5, 5),
        0.08,
        ("crisps", "chocolate", "biscuits", "nuts"),
        ("Crunch", "Cocoa Bay", "Nutty"),
        1.0,
    ),
    ("household", (1, 15), 0.07, ("cleaning", "laundry", "paper"), ("Sparkle", "Fresh Home"), 0.6),
    (
        "personal_care",
        (1, 20),
        0.08,
        ("baby", "hair", "skin", "oral"),
        ("Pure", "Little Ones", "Glow"),
        0.5,
    ),
    (
        "electronics",
        (15, 900),
        0.10,
        ("phones", "audio", "computing", "accessories", "tv"),
        ("Voltix", "Sonar", "Pixel Works", "Nexa"),
        0.05,
    ),
    (
        "apparel",
        (8, 120),
        0.09,
        ("women", "men", "kids", "shoes"),
        ("Northwear", "Tailor & Co", "Stride"),
        0.3,
    ),
    (
        "home",
        (5, 400),
        0.08,
        ("kitchen", "furniture", "decor", "garden"),
        ("Nest", "Oakline", "Casa"),
        0.15,
    ),
    ("toys", (5, 80), 0.05, ("games", "puzzles", "outdoor"), ("Playbox", "Brightminds"), 0.2),
    ("books", (4, 30), 0.04, ("fiction", "nonfiction", "children"), ("Penwood", "Inkwell"), 0.1),
)
CATEGORY_NAMES = tuple(c[0] for c in CATEGORIES)
VARIANTS = (
    "Classic",
    "Premium",
    "Value",
    "Organic",
    "Family Pack",
    "Mini",
    "Large",
    "Light",
    "Original",
)
# (category, subcategory, name, price) of the products the rules are planted on.
SPECIALS = {
    "pasta": ("grocery", "pasta", "Fusilli Pasta 500g", 1.10),
    "sauce": ("grocery", "sauces", "Tomato & Basil Pasta Sauce", 1.85),
    "coffee": ("beverages", "coffee", "Ground Coffee 227g", 4.20),
    "creamer": ("dairy", "cream", "Coffee Creamer 250ml", 1.60),
    "bread": ("bakery", "bread", "Sourdough Loaf", 2.40),
    "butter": ("dairy", "butter", "Salted Butter 250g", 2.10),
    "jam": ("grocery", "spreads", "Strawberry Jam 340g", 1.75),
    "nappies": ("personal_care", "baby", "Nappies Size 4", 8.50),
    "wipes": ("personal_care", "baby", "Baby Wipes 64pk", 1.50),
    "chips": ("snacks", "crisps", "Tortilla Chips 200g", 1.30),
    "salsa": ("grocery", "dips", "Salsa Dip 300g", 1.95),
}
# antecedent specials, consequent special, P(consequent added | antecedents in basket),
# P(antecedents put in a basket on top of the normal draw)
RULES = (
    (("pasta",), "sauce", 0.60, 0.05),
    (("coffee",), "creamer", 0.50, 0.04),
    (("bread", "butter"), "jam", 0.50, 0.04),
    (("nappies",), "wipes", 0.65, 0.03),
    (("chips",), "salsa", 0.55, 0.04),
)
# Journeys, planted across orders (not within one basket): a customer who buys the trigger
# category and has not bought the follow-up category yet comes back for it in a new order
# DELAY days later, with this probability per trigger order (once: then they own it).
# (trigger category, follow-up category, probability per trigger order)
JOURNEYS = (
    ("electronics", "home", 0.3),  # a TV or a laptop, then furniture or decor for it
    ("personal_care", "toys", 0.3),  # baby care, then toys
    ("toys", "books", 0.3),  # toys, then children's books
)
JOURNEY_DELAY_DAYS = (3, 21)
MIN_PER_CATEGORY = 8
SPECIAL_RANK = 4  # specials sit after the four best sellers of their category
POPULARITY_EXPONENT = 0.9


@dataclass(frozen=True)
class Rule:
    antecedent: tuple[int, ...]
    consequent: int
    prob: float
    inject: float


@dataclass
class Catalog:
    category: np.ndarray  # per SKU index
    subcategory: list[str]
    brand: list[str]
    name: list[str]
    price: np.ndarray  # cents
    pop_cum: np.ndarray  # category + within-category cumulative popularity
    rules: tuple[Rule, ...]
    sku_table: pa.Array
    category_table: pa.Array
    page_table: pa.Array

    @property
    def size(self) -> int:
        return len(self.category)

    def sample(self, cat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """SKU indices, one per category code, by popularity within the category."""
        idx = np.searchsorted(self.pop_cum, cat + rng.random(len(cat)), side="right")
        return np.minimum(idx, self.size - 1)

    def sku_id(self, idx: np.ndarray | list[int]) -> list[str]:
        return [f"SKU{10001 + int(i):05d}" for i in idx]


def build_catalog(n_products: int, rng: np.random.Generator) -> Catalog:
    if n_products < MIN_PER_CATEGORY * len(CATEGORIES):
        raise ValueError(f"products must be >= {MIN_PER_CATEGORY * len(CATEGORIES)}, got {n_products}")
    shares = np.array([c[2] for c in CATEGORIES])
    counts = np.maximum(MIN_PER_CATEGORY, np.floor(shares / shares.sum() * n_products)).astype(int)
    counts[0] += n_products - counts.sum()
    category, subcat, brand, name, price, pop = [], [], [], [], [], []
    special_idx: dict[str, int] = {}
    for c, (cname, (lo, hi), _, subs, brands, _) in enumerate(CATEGORIES):
        specials = [k for k, v in SPECIALS.items() if v[0] == cname]
        start = len(category)
        for r in range(counts[c]):
            category.append(c)
            pop.append(1.0 / (r + 1) ** POPULARITY_EXPONENT)
            k = r - SPECIAL_RANK
            if 0 <= k < len(specials):
                _, sub, pname, p = SPECIALS[specials[k]]
                special_idx[specials[k]] = start + r
                subcat.append(sub)
                brand.append(str(rng.choice(brands)))
                name.append(pname)
                price.append(round(p * 100))
                continue
            sub = subs[r % len(subs)]
            b = str(rng.choice(brands))
            subcat.append(sub)
            brand.append(b)
            name.append(f"{b} {sub.replace('_', ' ').title()} {VARIANTS[int(rng.integers(len(VARIANTS)))]}")
            price.append(round(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * 100))
    cat = np.array(category)
    pop = np.array(pop)
    cum = np.zeros(len(cat))
    for c in range(len(CATEGORIES)):
        m = cat == c
        cum[m] = c + np.cumsum(pop[m]) / pop[m].sum()
    rules = tuple(
        Rule(tuple(special_idx[a] for a in ante), special_idx[cons], prob, inject) for ante, cons, prob, inject in RULES
    )
    skus = [f"SKU{10001 + i:05d}" for i in range(len(cat))]
    pages = ["/", "/search", "/cart", "/checkout", "/checkout/confirmation", "/login"]
    pages += [f"/c/{c}" for c in CATEGORY_NAMES] + [f"/p/{s}" for s in skus]
    return Catalog(
        cat,
        subcat,
        brand,
        name,
        np.array(price, dtype=np.int64),
        cum,
        rules,
        pa.array(skus),
        pa.array(list(CATEGORY_NAMES)),
        pa.array(pages),
    )


PAGE_HOME, PAGE_SEARCH, PAGE_CART, PAGE_CHECKOUT, PAGE_CONFIRM, PAGE_LOGIN = range(6)
PAGE_CATEGORY = 6
PAGE_PRODUCT = PAGE_CATEGORY + len(CATEGORIES)

PRODUCT_FIELDS = [
    Field("sku", "id", prefix="SKU", width=5),
    Field("name", "str", text=True),
    Field("category", "ref", table="category"),
    Field("subcategory", "str", text=True),
    Field("brand", "str", text=True),
    Field("list_price", "money"),
]


def product_records(cat: Catalog) -> Records:
    cols = {
        "sku": np.arange(cat.size, dtype=np.int64) + 10001,
        "name": pa.array(cat.name),
        "category": cat.category.astype(np.int64),
        "subcategory": pa.array(cat.subcategory),
        "brand": pa.array(cat.brand),
        "list_price": cat.price.copy(),
    }
    return Records(cols, np.zeros(cat.size, dtype=np.int64), {"category": cat.category_table})
