"""The demo shop's catalogue: readable toy-shop items and the links shoppers follow between them.

Four kinds of item, as in a real toy shop:

- products ("Wooden Train Set 3"), with long-tail (Zipf) popularity inside their category;
- product lines bought piece by piece, in order ("Galaxy Brick Set Part 1", "Part 2", ...);
  an ongoing line releases its later pieces during the simulated months;
- accessories of a product ("Wooden Train Set 3 Tunnel"), wanted after the product is bought;
- new editions of an existing product ("Wooden Train Set 3 Blue Edition"), released during
  the months, sharing the product's brand, category and title words.

Every item has a release time: the catalogue grows while the log runs, so a time split has
test events on items nobody could take before its cut-off. And the shop changes over time, as
real shops do: a newly released item draws a launch spike of attention that fades over the
following weeks, some older products have a trend of their own (featured, or suddenly the
thing to have) for a few weeks at some point of the period, and each category's share of
attention follows a season. What happened last week carries what a model trained a month
earlier cannot know.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# name, product nouns, accessory nouns, related category (second label), word numbering a line's pieces
CATEGORIES = (
    ("Board games", ("Board Game", "Dice Game", "Quest Game", "Strategy Game"), ("Card Sleeves", "Dice Set", "Storage Box"), "Card games", "Chapter"),
    ("Puzzles", ("Jigsaw Puzzle", "3D Puzzle", "Floor Puzzle", "Puzzle Cube"), ("Puzzle Mat", "Puzzle Frame"), "Board games", "Series"),
    ("Building sets", ("Brick Set", "Construction Kit", "Castle Set", "Spaceship Kit"), ("Minifigure Pack", "Baseplate", "Light Kit"), "Vehicles", "Part"),
    ("Model trains", ("Train Set", "Locomotive", "Freight Car", "Tram"), ("Extension Track", "Tunnel", "Station"), "Vehicles", "Part"),
    ("Dolls", ("Doll", "Fashion Doll", "Baby Doll", "Dollhouse"), ("Outfit Set", "Stroller", "Furniture Set"), "Pretend play", "Collection"),
    ("Action figures", ("Hero Figure", "Robot", "Dinosaur Figure", "Knight"), ("Display Stand", "Gear Pack", "Vehicle"), "Vehicles", "Wave"),
    ("Outdoor play", ("Kite", "Water Blaster", "Scooter", "Sandbox Set"), ("Spare Parts", "Helmet", "Carry Bag"), "Vehicles", "Level"),
    ("Arts & crafts", ("Paint Set", "Bead Kit", "Clay Kit", "Sketchbook"), ("Refill Pack", "Brush Set", "Apron"), "Books", "Level"),
    ("Science kits", ("Chemistry Set", "Telescope", "Microscope", "Robot Kit"), ("Refill Kit", "Slide Set", "Battery Pack"), "Building sets", "Level"),
    ("Plush toys", ("Teddy Bear", "Plush Bunny", "Plush Unicorn", "Plush Fox"), ("Gift Box", "Outfit"), "Baby toys", "Series"),
    ("Baby toys", ("Rattle", "Stacking Rings", "Activity Cube", "Teether"), ("Clip", "Storage Bag"), "Plush toys", "Stage"),
    ("Card games", ("Card Game", "Trading Card Starter", "Memory Game", "Quiz Game"), ("Booster Pack", "Card Box"), "Board games", "Season"),
    ("Vehicles", ("Race Car", "Fire Truck", "RC Car", "Tractor"), ("Battery Pack", "Garage", "Track Set"), "Model trains", "Series"),
    ("Musical toys", ("Xylophone", "Toy Piano", "Drum Set", "Ukulele"), ("Songbook", "Spare Sticks"), "Baby toys", "Lesson"),
    ("Pretend play", ("Play Kitchen", "Tool Bench", "Doctor Kit", "Cash Register"), ("Food Set", "Accessory Pack"), "Dolls", "Collection"),
    ("Books", ("Picture Book", "Story Book", "Activity Book", "Comic"), ("Sticker Pack", "Bookmark Set"), "Arts & crafts", "Vol."),
)
CATEGORY_NAMES = tuple(c[0] for c in CATEGORIES)
ADJECTIVES = ("Wooden", "Deluxe", "Mini", "Classic", "Magic", "Rainbow", "Pirate", "Space", "Jungle",
              "Ocean", "Dragon", "Castle", "Super", "Little", "Happy", "Galaxy")
BRANDS = ("Oakleaf", "BrightBlocks", "Tinker & Co", "Starling", "Pebble Toys", "Nordic Play", "Kiddo Lab",
          "Marble Hill", "Little Lantern", "Rocket Works", "Sunny Days", "Maple Tree")
EDITIONS = ("Red", "Blue", "Green", "Gold", "Pastel", "Neon", "Travel", "Anniversary", "Glow", "Winter", "Deluxe",
            "Collector", "Starter", "Pocket", "Sequel")
PRODUCT, LINE_PIECE, ACCESSORY, EDITION = 0, 1, 2, 3
_DAY = 86_400.0
TREND_SHARE = 0.08  # older products (not the best sellers) that have a trend of their own during the period
SEASON_AMPLITUDE = 0.6  # a category's attention swings between exp(-0.6) and exp(0.6) times its mean over a year
_YEAR = 365 * _DAY


@dataclass(frozen=True)
class Catalogue:
    """Items as arrays indexed 0..n_items-1 plus the links shoppers follow between them."""

    category: np.ndarray  # primary category per item
    kind: np.ndarray  # PRODUCT, LINE_PIECE, ACCESSORY or EDITION
    zipf_cdf: np.ndarray  # per-category browsing CDF shifted by the category index (see sample_items)
    brand: np.ndarray  # index into BRANDS per item
    by_brand: np.ndarray  # items sorted by (category, brand)
    brand_cdf: np.ndarray  # browsing CDF per (category, brand) group, shifted by the group index, aligned with by_brand
    accessory: np.ndarray  # accessory wanted after buying the item, -1 if none
    line_next: np.ndarray  # next piece of the item's line, -1 if none (or the last piece)
    line_starters: np.ndarray  # first piece of every line, sorted by category and brand
    starter_keys: np.ndarray  # category * len(BRANDS) + brand of each starter, for searchsorted
    starters_from: np.ndarray  # (n_categories + 1,) offsets of each category's starters in line_starters
    released: np.ndarray  # unix seconds from which the item is on sale
    buzz_by_category: np.ndarray  # items with a launch or a trend during the period, sorted by (category, its start)
    buzz_keys: np.ndarray  # category * KEY_SPAN + start, aligned with buzz_by_category, for searchsorted
    season_by_day: np.ndarray  # (days of the period + 1, n_categories) each category's attention relative to its mean
    start_unix: float  # the period's start (day 0 of season_by_day)
    price: np.ndarray
    titles: list[str]
    labels: list[str]  # "Primary|Secondary" category text
    brands: list[str]
    segment_cdf: np.ndarray  # (n_segments, n_categories) cumulative interest prior per profile segment

    KEY_SPAN = 1e11  # larger than any unix time: keys of different categories never interleave


def build_catalogue(n_items: int, n_categories: int, n_segments: int, seed: int, start_unix: float,
                    span_s: float) -> Catalogue:
    rng = np.random.default_rng([seed, 1])
    names = CATEGORY_NAMES[:n_categories]
    shares = rng.dirichlet(np.full(n_categories, 4.0))
    sizes = np.maximum(4, np.floor(shares * n_items).astype(int))
    sizes[np.argmax(sizes)] += n_items - sizes.sum()
    category = np.repeat(np.arange(n_categories), sizes)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    kind = np.zeros(n_items, dtype=int)
    accessory = np.full(n_items, -1)
    line_next = np.full(n_items, -1)
    released = np.full(n_items, float(start_unix) - 365 * _DAY)
    weight = np.empty(n_items)
    titles: list[str] = []
    labels: list[str] = []
    brands: list[str] = []
    for c in range(n_categories):
        items = np.arange(start[c], start[c] + sizes[c])
        weight[items] = 1.0 / np.arange(1, len(items) + 1)  # Zipf: the category's first items sell most
        links = _CategoryLinks(rng, c, items, _assign_kinds(rng, len(items)), accessory, line_next, released, weight)
        titles.extend(links.titles(start_unix, span_s))
        kind[items] = links.kinds
        brands.extend(links.brands)
        related = CATEGORIES[c][3]
        second = related if related in names else None
        labels.extend(f"{names[c]}|{second}" if second and rng.random() < 0.15 else names[c] for _ in items)
    cdf = _shifted_cdf(category, weight)
    brand = np.array([BRANDS.index(b) for b in brands])
    by_brand = np.lexsort((np.arange(n_items), brand, category))
    brand_cdf = _shifted_cdf(category[by_brand] * len(BRANDS) + brand[by_brand], weight[by_brand])
    price = np.round(rng.lognormal(np.log(18.0), 0.5, n_categories)[category] * rng.lognormal(0, 0.35, n_items), 2)
    has_accessory = accessory >= 0
    price[accessory[has_accessory]] = np.round(price[has_accessory] * 0.35, 2)
    starters = np.flatnonzero((kind == LINE_PIECE) & (line_next >= 0) & ~np.isin(np.arange(n_items), line_next))
    starters = starters[np.lexsort((starters, brand[starters], category[starters]))]
    starters_from = np.searchsorted(category[starters], np.arange(n_categories + 1))
    buzzing, buzz_start = _launches_and_trends(rng, category, kind, released, start_unix, span_s)
    keys = category[buzzing] * Catalogue.KEY_SPAN + buzz_start
    by_key = np.argsort(keys, kind="stable")
    segment_pref = rng.dirichlet(np.full(n_categories, 0.35), size=n_segments)
    return Catalogue(category, kind, cdf, brand, by_brand, brand_cdf, accessory, line_next, starters,
                     category[starters] * len(BRANDS) + brand[starters], starters_from, released,
                     buzzing[by_key], keys[by_key], _seasons(rng, n_categories, span_s), float(start_unix), price,
                     titles, labels, brands, np.cumsum(segment_pref, axis=1))


def _launches_and_trends(rng, category: np.ndarray, kind: np.ndarray, released: np.ndarray, start_unix: float,
                         span_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(items, start of their buzz): every item released during the period from its release, and a
    share of the older products (never a category's two best sellers) from a moment of the period."""
    new = np.flatnonzero(released > start_unix)
    first = np.flatnonzero(np.r_[True, category[1:] != category[:-1]])  # a category's best seller
    ordinary = ~np.isin(np.arange(len(kind)), np.r_[first, first + 1])
    products = np.flatnonzero((kind == PRODUCT) & (released <= start_unix) & ordinary)
    trending = np.sort(rng.choice(products, int(TREND_SHARE * len(products)), replace=False))
    trend_start = start_unix + rng.uniform(0.0, 0.97, len(trending)) * span_s
    return np.r_[new, trending], np.r_[released[new], trend_start]


def _seasons(rng, n_categories: int, span_s: float) -> np.ndarray:
    """Each category's attention on each day of the period relative to its yearly mean (outdoor play
    in summer, indoor games in winter): one slow swing per year from a phase of its own."""
    days = np.arange(int(span_s // _DAY) + 1)[:, None]
    return np.exp(SEASON_AMPLITUDE * np.sin(rng.uniform(0, 2 * np.pi, n_categories) + 2 * np.pi * days * _DAY / _YEAR))


def season(cat: Catalogue, categories: np.ndarray, now: np.ndarray) -> np.ndarray:
    """The attention ``categories`` get on the day of ``now`` (broadcast together) relative to their mean."""
    day = np.clip(((now - cat.start_unix) // _DAY).astype(np.int64), 0, len(cat.season_by_day) - 1)
    return cat.season_by_day[day, categories]


def _shifted_cdf(group: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Each group's cumulative shares plus the group's number, for items sorted by group: one
    sorted array, so ``searchsorted(cdf, g + u)`` draws from group ``g`` (see ``sample_items``)."""
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    totals = np.add.reduceat(weight, starts)
    before = np.cumsum(weight) - np.repeat(np.cumsum(weight)[starts] - weight[starts], np.diff(np.r_[starts, len(group)]))
    share = before / np.repeat(totals, np.diff(np.r_[starts, len(group)]))
    share[np.r_[starts[1:], len(group)] - 1] = 1.0  # exactly: a rounding above 1 would put the next group's
    return group + share  # first draw (``searchsorted(cdf, g, "right")``, its best seller) in this group


def _assign_kinds(rng: np.random.Generator, n: int) -> np.ndarray:
    """A category's kinds by popularity rank; the two most popular slots stay products."""
    kinds = np.full(n, PRODUCT)
    tail = rng.permutation(np.arange(2, n))
    n_line, n_acc, n_edition = int(0.3 * n), int(0.15 * n), int(0.14 * n)
    kinds[tail[:n_line]] = LINE_PIECE
    kinds[tail[n_line:n_line + n_acc]] = ACCESSORY
    kinds[tail[n_line + n_acc:n_line + n_acc + n_edition]] = EDITION
    return kinds


class _CategoryLinks:
    """Links one category's items (lines, accessories, editions) and names them accordingly.

    Writes into the catalogue-wide arrays it is given (``accessory``, ``line_next``,
    ``released``, ``weight``) at this category's item indices.
    """

    def __init__(self, rng, c: int, items: np.ndarray, kinds: np.ndarray, accessory, line_next, released, weight):
        self.rng, self.c, self.items, self.kinds = rng, c, items, kinds
        self.accessory, self.line_next, self.released, self.weight = accessory, line_next, released, weight
        _, nouns, _, _, _ = CATEGORIES[c]
        self.names = [f"{rng.choice(ADJECTIVES)} {rng.choice(nouns)} {k + 1}" for k in range(len(items))]
        self.brands = [str(rng.choice(BRANDS)) for _ in items]

    def titles(self, start_unix: float, span_s: float) -> list[str]:
        self._lines(start_unix, span_s)
        self._accessories(list(np.flatnonzero(self.kinds == PRODUCT)))
        self._editions(list(np.flatnonzero(self.kinds == PRODUCT)), start_unix, span_s)
        return self.names

    def _lines(self, start_unix: float, span_s: float) -> None:
        """Pieces of 2-6 per line, in popularity order (Part 1 sells most); most lines (7 in 10) are
        ongoing: their later pieces come out every few weeks during the period."""
        _, nouns, _, _, word = CATEGORIES[self.c]
        slots = np.sort(np.flatnonzero(self.kinds == LINE_PIECE))
        self.rng.shuffle(slots[1:])  # the most popular line slot starts a line; the rest mix
        while len(slots):
            size = min(len(slots), int(self.rng.integers(3, 9)))
            piece_slots, slots = np.sort(slots[:size]), slots[size:]
            name = f"{self.rng.choice(ADJECTIVES)} {self.rng.choice(nouns)}"
            brand = str(self.rng.choice(BRANDS))
            pieces = self.items[piece_slots]
            for k, slot in enumerate(piece_slots):
                self.names[slot], self.brands[slot] = f"{name} {word} {k + 1}", brand
            self.line_next[pieces[:-1]] = pieces[1:]
            self.weight[pieces[1:]] *= 0.15  # later pieces are bought by those who follow the line
            if size > 2 and self.rng.random() < 0.7:
                self._release_during(pieces[int(self.rng.integers(1, size - 1)):], start_unix, span_s)

    def _release_during(self, pieces: np.ndarray, start_unix: float, span_s: float) -> None:
        """One piece every 3-6 weeks from a random point of the period; none after its end."""
        first = start_unix + self.rng.uniform(0.05, 0.6) * span_s
        dates = first + np.cumsum(np.r_[0.0, self.rng.uniform(21, 42, len(pieces) - 1)]) * _DAY
        late = dates > start_unix + span_s - 2 * _DAY
        dates[late] = start_unix + self.rng.uniform(0.3, 0.98, late.sum()) * span_s
        self.released[pieces] = np.maximum.accumulate(dates)  # a line's pieces never come out of order

    def _accessories(self, products: list[int]) -> None:
        _, _, acc_nouns, _, _ = CATEGORIES[self.c]
        for slot in np.flatnonzero(self.kinds == ACCESSORY):
            if not products:
                self.kinds[slot] = PRODUCT
                continue
            base = products.pop(int(self.rng.integers(min(len(products), 8))))  # popular products first
            self.accessory[self.items[base]] = self.items[slot]
            self.names[slot] = f"{self.names[base]} {self.rng.choice(acc_nouns)}"
            self.brands[slot] = self.brands[base]
            self.weight[self.items[slot]] *= 0.3  # accessories are rarely found by browsing

    def _editions(self, products: list[int], start_unix: float, span_s: float) -> None:
        """A new colour or edition of a product: its brand and words, released during the period,
        browsed nearly as much as the product itself."""
        for slot in np.flatnonzero(self.kinds == EDITION):
            if not products:
                self.kinds[slot] = PRODUCT
                continue
            base = products[int(self.rng.integers(min(len(products), 12)))]  # popular products first
            self.names[slot] = f"{self.names[base]} {self.rng.choice(EDITIONS)} Edition"
            self.brands[slot] = self.brands[base]
            self.weight[self.items[slot]] = 0.4 * self.weight[self.items[base]]
            self.released[self.items[slot]] = start_unix + self.rng.uniform(0.03, 0.98) * span_s
