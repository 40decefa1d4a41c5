"""A deterministic demo toy shop, so the studio and CLI have something real to show offline.

The log is generated, but its structure is the kind a sequence model should exploit and a
popularity list cannot: each user follows two or three interests (categories) that drift
over time and correlate with the user's profile segment; items within a category have
long-tail (Zipf) popularity; and short-range habits repeat across users: view → cart →
purchase funnels on one item, an accessory viewed right after its base product is bought,
and series volumes viewed in order. Same config and seed → byte-identical files.

Users are generated in fixed-size chunks, each with its own random stream, so a 20M-event
benchmark log streams to disk with bounded memory.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from core.errors import UsageError
from core.importing import import_files
from core.progress import CancelToken, ProgressCallback, RateMeter, emit
from core.store import Workspace, WorkspaceError

# name, product nouns, accessory nouns, related category (second label for some items)
_CATEGORIES = (
    ("Board games", ("Board Game", "Dice Game", "Quest Game", "Strategy Game"), ("Expansion", "Card Sleeves", "Dice Set"), "Card games"),
    ("Puzzles", ("Jigsaw Puzzle", "3D Puzzle", "Floor Puzzle", "Puzzle Cube"), ("Puzzle Mat", "Puzzle Frame"), "Board games"),
    ("Building sets", ("Brick Set", "Construction Kit", "Castle Set", "Spaceship Kit"), ("Minifigure Pack", "Baseplate", "Light Kit"), "Vehicles"),
    ("Model trains", ("Train Set", "Locomotive", "Freight Car", "Tram"), ("Extension Track", "Tunnel", "Station"), "Vehicles"),
    ("Dolls", ("Doll", "Fashion Doll", "Baby Doll", "Dollhouse"), ("Outfit Set", "Stroller", "Furniture Set"), "Pretend play"),
    ("Action figures", ("Hero Figure", "Robot", "Dinosaur Figure", "Knight"), ("Display Stand", "Gear Pack", "Vehicle"), "Vehicles"),
    ("Outdoor play", ("Kite", "Water Blaster", "Scooter", "Sandbox Set"), ("Spare Parts", "Helmet", "Carry Bag"), "Vehicles"),
    ("Arts & crafts", ("Paint Set", "Bead Kit", "Clay Kit", "Sketchbook"), ("Refill Pack", "Brush Set", "Apron"), "Books"),
    ("Science kits", ("Chemistry Set", "Telescope", "Microscope", "Robot Kit"), ("Refill Kit", "Slide Set", "Battery Pack"), "Building sets"),
    ("Plush toys", ("Teddy Bear", "Plush Bunny", "Plush Unicorn", "Plush Fox"), ("Gift Box", "Outfit"), "Baby toys"),
    ("Baby toys", ("Rattle", "Stacking Rings", "Activity Cube", "Teether"), ("Clip", "Storage Bag"), "Plush toys"),
    ("Card games", ("Card Game", "Trading Card Starter", "Memory Game", "Quiz Game"), ("Booster Pack", "Card Box"), "Board games"),
    ("Vehicles", ("Race Car", "Fire Truck", "RC Car", "Tractor"), ("Battery Pack", "Garage", "Track Set"), "Model trains"),
    ("Musical toys", ("Xylophone", "Toy Piano", "Drum Set", "Ukulele"), ("Songbook", "Spare Sticks"), "Baby toys"),
    ("Pretend play", ("Play Kitchen", "Tool Bench", "Doctor Kit", "Cash Register"), ("Food Set", "Accessory Pack"), "Dolls"),
    ("Books", ("Picture Book", "Story Book", "Activity Book", "Comic"), ("Sticker Pack", "Bookmark Set"), "Arts & crafts"),
)
CATEGORY_NAMES = tuple(c[0] for c in _CATEGORIES)
_ADJECTIVES = ("Wooden", "Deluxe", "Mini", "Classic", "Magic", "Rainbow", "Pirate", "Space", "Jungle",
               "Ocean", "Dragon", "Castle", "Super", "Little", "Happy", "Galaxy")
AGE_GROUPS = ("18-24", "25-34", "35-44", "45-54", "55+")
GENDERS = ("F", "M")
REGIONS = ("North", "South", "East", "West")
EVENT_TYPES = ("view", "cart", "purchase")
_VIEW, _CART, _PURCHASE = 0, 1, 2
_USERS_PER_CHUNK = 20_000
_MAX_EVENTS_PER_USER = 500
_DAY = 86_400.0
DEMO_META_KEY = "demo_config"  # workspace meta: the DemoConfig a demo workspace was made from
_PLAIN_CSV = pacsv.WriteOptions(quoting_style="none", quoting_header="none")  # no value holds a comma or quote


@dataclass(frozen=True)
class DemoConfig:
    """What the demo shop looks like. Defaults give a log that trains in seconds on a laptop."""

    n_users: int = 3000
    """Users in users.csv; raise it (e.g. 800_000 for ~20M events) for benchmark logs."""
    n_items: int = 1500
    """Catalogue size, spread unevenly over the categories."""
    n_categories: int = 12
    """Readable toy-shop categories ("Board games", "Puzzles", ...), 2 to 16."""
    months: int = 6
    """Length of the simulated period; event times are unix seconds inside it."""
    seed: int = 7
    """Same seed and config → byte-identical files."""
    mean_events_per_user: float = 25.0
    """Mean sequence length; lengths are log-normal (long tail), at least 3 per active user."""
    cold_user_fraction: float = 0.02
    """Users with a profile but no events, so cold-start recommendations can be shown."""
    start_unix: int = 1_767_225_600
    """Start of the period (2026-01-01 UTC)."""

    @classmethod
    def for_events(cls, n_events: int, **overrides) -> "DemoConfig":
        """A config sized to produce about ``n_events`` events (for import/training benchmarks)."""
        base = cls(**overrides)
        active = (1.0 - base.cold_user_fraction) * base.mean_events_per_user
        return cls(**{**overrides, "n_users": max(1, round(n_events / active))})

    def validate(self) -> None:
        if not 2 <= self.n_categories <= len(_CATEGORIES):
            raise UsageError(f"n_categories must be between 2 and {len(_CATEGORIES)}, got {self.n_categories}")
        if self.n_items < 4 * self.n_categories:
            raise UsageError(f"n_items must be at least 4 per category ({4 * self.n_categories}), got {self.n_items}")
        if self.n_users < 1 or self.months < 1 or self.mean_events_per_user < 3:
            raise UsageError("n_users and months must be positive and mean_events_per_user at least 3")


@dataclass(frozen=True)
class DemoFiles:
    """Paths of the three written CSV files and how many rows each got."""

    events: Path
    items: Path
    users: Path
    n_events: int
    n_items: int
    n_users: int


@dataclass(frozen=True)
class _Catalogue:
    """Items as arrays indexed 0..n_items-1 plus the habits that link them."""

    category: np.ndarray  # primary category per item
    zipf_cdf: np.ndarray  # per-category CDF shifted by the category index (see _sample_items)
    accessory: np.ndarray  # accessory item viewed after a purchase, -1 if none
    series_next: np.ndarray  # next volume of a series, -1 if none
    price: np.ndarray
    titles: list[str]
    labels: list[str]  # "Primary|Secondary" category text
    segment_cdf: np.ndarray  # (n_segments, n_categories) cumulative interest prior per profile segment


def _build_catalogue(config: DemoConfig) -> _Catalogue:
    rng = np.random.default_rng([config.seed, 1])
    n_cat, names = config.n_categories, CATEGORY_NAMES[: config.n_categories]
    shares = rng.dirichlet(np.full(n_cat, 4.0))
    sizes = np.maximum(4, np.floor(shares * config.n_items).astype(int))
    sizes[np.argmax(sizes)] += config.n_items - sizes.sum()
    category = np.repeat(np.arange(n_cat), sizes)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    accessory = np.full(config.n_items, -1)
    series_next = np.full(config.n_items, -1)
    weight = np.empty(config.n_items)
    titles: list[str] = []
    labels: list[str] = []
    for c in range(n_cat):
        items = np.arange(start[c], start[c] + sizes[c])
        weight[items] = 1.0 / np.arange(1, len(items) + 1)  # Zipf: the category's first items sell most
        kinds = _assign_item_kinds(rng, len(items))
        titles.extend(_category_titles(rng, c, items, kinds, accessory, series_next))
        weight[items[kinds == 2]] *= 0.3  # accessories are rarely found by browsing
        related = _CATEGORIES[c][3]
        second = related if related in names else None
        labels.extend(f"{names[c]}|{second}" if second and rng.random() < 0.15 else names[c] for _ in items)
    cdf = np.empty(config.n_items)
    for c in range(n_cat):
        part = slice(start[c], start[c] + sizes[c])
        cdf[part] = c + np.cumsum(weight[part]) / weight[part].sum()
    price = np.round(rng.lognormal(np.log(18.0), 0.5, n_cat)[category] * rng.lognormal(0, 0.35, config.n_items), 2)
    price[accessory[accessory >= 0]] = np.round(price[accessory[accessory >= 0]] * 0.35, 2)
    segment_pref = rng.dirichlet(np.full(n_cat, 0.35), size=len(AGE_GROUPS) * len(GENDERS))
    return _Catalogue(category, cdf, accessory, series_next, price, titles, labels,
                      np.cumsum(segment_pref, axis=1))


def _assign_item_kinds(rng: np.random.Generator, n: int) -> np.ndarray:
    """0 = plain product, 1 = series volume, 2 = accessory; the most popular slots stay products."""
    kinds = np.zeros(n, dtype=int)
    tail = rng.permutation(np.arange(2, n))
    n_series, n_acc = int(0.2 * n), int(0.2 * n)
    kinds[tail[:n_series]] = 1
    kinds[tail[n_series : n_series + n_acc]] = 2
    return kinds


def _category_titles(rng, c: int, items: np.ndarray, kinds: np.ndarray, accessory: np.ndarray,
                     series_next: np.ndarray) -> list[str]:
    """Readable titles; links accessories to base products and chains series volumes in order."""
    _, nouns, acc_nouns, _ = _CATEGORIES[c]
    titles = [f"{rng.choice(_ADJECTIVES)} {rng.choice(nouns)} {k + 1}" for k in range(len(items))]
    bases = list(np.flatnonzero(kinds == 0))
    for a in np.flatnonzero(kinds == 2):
        if not bases:
            break
        base = bases.pop(int(rng.integers(min(len(bases), 8))))  # popular products get accessories first
        accessory[items[base]] = items[a]
        titles[a] = f"{titles[base]} {rng.choice(acc_nouns)}"
    volumes = np.flatnonzero(kinds == 1)
    for group in np.array_split(volumes, max(1, len(volumes) // 4)):
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(nouns)} Saga"
        for k, v in enumerate(group):
            titles[v] = f"{name} Vol. {k + 1}"
            if k + 1 < len(group):
                series_next[items[v]] = items[group[k + 1]]
    return titles


def _sample_items(rng: np.random.Generator, cat: _Catalogue, categories: np.ndarray) -> np.ndarray:
    """Zipf draw inside each given category, vectorised: the shifted CDFs make one sorted array."""
    return np.searchsorted(cat.zipf_cdf, categories + rng.random(len(categories)), side="right")


def _sample_from_cdf(rng: np.random.Generator, cdf_rows: np.ndarray) -> np.ndarray:
    """One draw per row of a (n, k) cumulative distribution."""
    u = rng.random(len(cdf_rows))[:, None] * cdf_rows[:, -1:]
    return np.minimum((cdf_rows < u).sum(axis=1), cdf_rows.shape[1] - 1)


def _simulate_chunk(config: DemoConfig, cat: _Catalogue, first_user: int, n_users: int) -> dict[str, np.ndarray]:
    """Events of users ``first_user .. first_user + n_users - 1`` (local user indices), sorted by user and time."""
    rng = np.random.default_rng([config.seed, 2, first_user])
    age = rng.integers(len(AGE_GROUPS), size=n_users)
    gender = rng.integers(len(GENDERS), size=n_users)
    region = rng.integers(len(REGIONS), size=n_users)
    segment = age * len(GENDERS) + gender
    mu = np.log(config.mean_events_per_user - 2) - 0.405  # log-normal mean ≈ mean_events - 2 (sigma 0.9)
    length = np.minimum(3 + np.floor(rng.lognormal(mu, 0.9, n_users)).astype(int), _MAX_EVENTS_PER_USER)
    length[rng.random(n_users) < config.cold_user_fraction] = 0
    profiles = {"age_group": age, "gender": gender, "region": region}
    order = np.argsort(-length, kind="stable")  # active users stay a prefix as steps advance
    n_active_at = np.searchsorted(-length[order], -np.arange(length.max(initial=0)), side="left")
    seg = segment[order]
    interests = _initial_interests(rng, cat, seg)  # (n, 3) categories
    interest_cdf = _interest_cdf(rng, n_users)
    item = np.full(n_users, -1)
    kind = np.full(n_users, _VIEW)
    current_cat = interests[:, 0].copy()
    steps = []
    for step, n in enumerate(n_active_at):
        item, kind, current_cat = item[:n], kind[:n], current_cat[:n]
        new_session = (rng.random(n) < 0.2) | (step == 0)
        _drift_interests(rng, cat, interests[:n], seg[:n])
        item, kind, current_cat = _next_events(rng, cat, item, kind, current_cat, new_session,
                                               interests[:n], interest_cdf[:n], seg[:n])
        steps.append((order[:n], item, kind, new_session))
    users, items, kinds, sessions = (np.concatenate(column) for column in zip(*steps)) if steps else (
        np.zeros(0, int), np.zeros(0, int), np.zeros(0, int), np.zeros(0, bool))
    by_user = np.argsort(users, kind="stable")  # steps were appended in order, so time order survives
    users, sessions = users[by_user], sessions[by_user]
    return {"user": users, "item": items[by_user], "kind": kinds[by_user],
            "ts": _timestamps(rng, config, users, sessions, n_users), **profiles}

def _initial_interests(rng: np.random.Generator, cat: _Catalogue, segment: np.ndarray) -> np.ndarray:
    """Three distinct categories per user, mostly the ones the user's profile segment favours."""
    prior = np.diff(cat.segment_cdf, axis=1, prepend=0.0)
    mixed = 0.85 * prior[segment] + 0.15 / prior.shape[1]
    keys = np.log(mixed) + rng.gumbel(size=mixed.shape)  # Gumbel top-k = sampling without replacement
    return np.argsort(-keys, axis=1)[:, :3].copy()


def _interest_cdf(rng: np.random.Generator, n: int) -> np.ndarray:
    """How strongly each user follows each interest slot; half the users have only two interests."""
    weights = rng.dirichlet(np.full(3, 2.0), n)
    weights[rng.random(n) < 0.5, 2] = 0.0
    return np.cumsum(weights, axis=1)


def _drift_interests(rng: np.random.Generator, cat: _Catalogue, interests: np.ndarray, segment: np.ndarray) -> None:
    """Now and then one interest is replaced by a new one: tastes move over the months."""
    drifting = np.flatnonzero(rng.random(len(interests)) < 0.02)
    if len(drifting):
        slots = rng.integers(3, size=len(drifting))
        interests[drifting, slots] = _sample_from_cdf(rng, cat.segment_cdf[segment[drifting]])


def _next_events(rng, cat: _Catalogue, prev_item, prev_kind, current_cat, new_session, interests, interest_cdf, segment):
    """One step for every active user: a habit continues the previous event, else a fresh browse."""
    n = len(prev_item)
    r = rng.random(n)
    has_prev = prev_item >= 0
    prev = np.maximum(prev_item, 0)
    accessory, sequel = cat.accessory[prev], cat.series_next[prev]
    to_cart = has_prev & (prev_kind == _VIEW) & (r < 0.15)
    to_buy = has_prev & (prev_kind == _CART) & (r < 0.6)
    to_accessory = has_prev & (prev_kind == _PURCHASE) & (accessory >= 0) & (r < 0.7)
    to_sequel = has_prev & (prev_kind == _VIEW) & (sequel >= 0) & (r >= 0.15) & (r < 0.65)
    fresh = ~(to_cart | to_buy | to_accessory | to_sequel)
    interest = interests[np.arange(n), _sample_from_cdf(rng, interest_cdf)]
    explore = rng.random(n) < 0.08
    interest[explore] = _sample_from_cdf(rng, cat.segment_cdf[segment[explore]])
    stay = ~new_session & (rng.random(n) < 0.5)  # a session tends to stay in one category
    browse_cat = np.where(stay, current_cat, interest)
    item = np.where(to_cart | to_buy, prev, np.where(to_accessory, accessory, sequel))
    item[fresh] = _sample_items(rng, cat, browse_cat[fresh])
    kind = np.where(to_cart, _CART, np.where(to_buy, _PURCHASE, _VIEW))
    return item, kind, cat.category[item]


def _timestamps(rng, config: DemoConfig, users: np.ndarray, new_session: np.ndarray, n_users: int) -> np.ndarray:
    """Unix seconds: minutes apart inside a session, days between sessions, all inside the period."""
    span = config.months * 30 * _DAY
    session_gap = rng.lognormal(np.log(3 * _DAY), 0.7, n_users)
    gaps = np.where(new_session, rng.exponential(1.0, len(users)) * session_gap[users],
                    rng.exponential(90.0, len(users)))
    first = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.zeros(0, int)
    gaps[first] = 0.0
    elapsed = np.cumsum(gaps)
    counts = np.diff(np.r_[first, len(users)])
    elapsed -= np.repeat(elapsed[first], counts)
    last = np.zeros(n_users)
    last[users[first]] = elapsed[np.r_[first[1:], len(users)] - 1] if len(users) else 0.0
    squeeze = np.minimum(1.0, span / np.maximum(last, 1.0))  # only histories longer than the period shrink
    start = rng.random(n_users) * np.maximum(span - last, 0.0)
    return _one_second_apart((config.start_unix + start[users] + elapsed * squeeze[users]).astype(np.int64), users)


def _one_second_apart(ts: np.ndarray, users: np.ndarray) -> np.ndarray:
    """Each user's events at least a second apart: two same views in one second would be an
    exact repeat, which an import skips as an overlapping export's."""
    if not len(ts):
        return ts
    position = np.arange(len(ts))
    group = np.cumsum(np.r_[True, users[1:] != users[:-1]])
    shifted = ts - position + group * (1 << 40)  # a running maximum that cannot cross users
    return np.maximum.accumulate(shifted) - group * (1 << 40) + position


def _events_table(chunk: dict[str, np.ndarray], user_names: pa.Array, item_names: pa.Array, cat: _Catalogue) -> pa.Table:
    purchase = chunk["kind"] == _PURCHASE
    value = np.where(purchase, cat.price[chunk["item"]], np.nan)
    return pa.table({
        "user_id": user_names.take(pa.array(chunk["user"])),
        "item_id": item_names.take(pa.array(chunk["item"])),
        "timestamp": pa.array(chunk["ts"]),
        "event_type": pa.array(EVENT_TYPES).take(pa.array(chunk["kind"])),
        "value": pa.array(value, from_pandas=True),  # NaN → empty cell: only purchases carry a price
    })


def _users_table(chunk: dict[str, np.ndarray], user_names: pa.Array) -> pa.Table:
    return pa.table({
        "user_id": user_names,
        "age_group": pa.array(AGE_GROUPS).take(pa.array(chunk["age_group"])),
        "gender": pa.array(GENDERS).take(pa.array(chunk["gender"])),
        "region": pa.array(REGIONS).take(pa.array(chunk["region"])),
    })


def write_demo_csv(folder: Path | str, config: DemoConfig = DemoConfig(), progress: Optional[ProgressCallback] = None,
                   cancel: Optional[CancelToken] = None) -> DemoFiles:
    """Write events.csv, items.csv and users.csv into ``folder``; on cancel or error none is left behind."""
    config.validate()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = (folder / "events.csv", folder / "items.csv", folder / "users.csv")
    try:
        n_events = _write_files(config, *files, progress, cancel)
    except BaseException:
        for path in files:
            path.unlink(missing_ok=True)
        raise
    return DemoFiles(*files, n_events=n_events, n_items=config.n_items, n_users=config.n_users)


def _write_files(config: DemoConfig, events_path: Path, items_path: Path, users_path: Path,
                 progress: Optional[ProgressCallback], cancel: Optional[CancelToken]) -> int:
    cat = _build_catalogue(config)
    item_width = max(5, len(str(config.n_items)))
    item_names = pa.array([f"SKU{i + 1:0{item_width}d}" for i in range(config.n_items)])
    pacsv.write_csv(pa.table({"item_id": item_names, "title": cat.titles, "categories": cat.labels}), items_path,
                    _PLAIN_CSV)
    user_width = max(6, len(str(config.n_users)))
    meter = RateMeter(config.n_users)
    n_events = 0
    events_writer = users_writer = None
    try:
        for first in range(0, config.n_users, _USERS_PER_CHUNK):
            if cancel is not None:
                cancel.raise_if_cancelled()
            n = min(_USERS_PER_CHUNK, config.n_users - first)
            chunk = _simulate_chunk(config, cat, first, n)
            user_names = pa.array([f"U{u + 1:0{user_width}d}" for u in range(first, first + n)])
            events, users = _events_table(chunk, user_names, item_names, cat), _users_table(chunk, user_names)
            events_writer = events_writer or pacsv.CSVWriter(events_path, events.schema, write_options=_PLAIN_CSV)
            users_writer = users_writer or pacsv.CSVWriter(users_path, users.schema, write_options=_PLAIN_CSV)
            events_writer.write_table(events)
            users_writer.write_table(users)
            n_events += len(events)
            emit(progress, meter.report("demo", first + n, f"{n_events:,} events generated", events=n_events))
    finally:
        for writer in (events_writer, users_writer):
            if writer is not None:
                writer.close()
    return n_events


def create_demo_workspace(path: Path | str, config: DemoConfig = DemoConfig(),
                          progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None) -> Workspace:
    """Generate the demo shop and import it into a new workspace at ``path`` through the normal importer.

    Going through ``core.importing`` (not direct inserts) keeps the demo honest: what the
    studio shows is exactly what a user's own CSV export would produce. A workspace that
    already holds this very demo (same config) is returned as it is, so a quick-start
    command can be run twice; any other data is never mixed with demo data.
    """
    workspace = Workspace.open(path)
    try:
        held = workspace.counts()["events"]
        if held and workspace.get_meta(DEMO_META_KEY) != _config_text(config):
            raise WorkspaceError(f"{workspace.path} already holds {held:,} events; "
                                 "write the demo shop into a new workspace")
        if not held:
            with tempfile.TemporaryDirectory(prefix="nextpick-demo-") as tmp:
                files = write_demo_csv(tmp, config, progress, cancel)
                import_files(workspace, events=files.events, items=files.items, users=files.users,
                             progress=progress, cancel=cancel)
            workspace.set_meta(DEMO_META_KEY, _config_text(config))
    except BaseException:
        workspace.close()
        raise
    return workspace


def _config_text(config: DemoConfig) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True)
