"""A deterministic demo toy shop, so the studio and CLI have something real to show offline.

The log is generated, but it has the habits of a real shop that make reading the whole
sequence worth it (``core.demo.shoppers``): missions that span sessions (the next piece of a
product line, bought weeks after the previous one; the accessory of an earlier purchase),
interests that drift from session to session, brand loyalty, view → cart → purchase funnels
with comparisons, abandoned carts and repeat views. The catalogue (``core.demo.catalogue``)
grows while the log runs: new editions and new line pieces come out during the period, titled
after the products they belong to. Same config and seed → byte-identical files.

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

from core.demo.catalogue import CATEGORIES, CATEGORY_NAMES, Catalogue, build_catalogue  # noqa: F401 (re-exported)
from core.demo.shoppers import (AGE_GROUPS, GENDERS, MAX_EVENTS_PER_USER, N_SEGMENTS, PURCHASE, REGIONS, DAY,
                                simulate_users)
from core.errors import UsageError
from core.importing import import_files
from core.progress import CancelToken, ProgressCallback, RateMeter, emit
from core.store import Workspace, WorkspaceError

EVENT_TYPES = ("view", "cart", "purchase")
_USERS_PER_CHUNK = 20_000
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

    @property
    def span_s(self) -> float:
        """Length of the simulated period in seconds (a month counts 30 days)."""
        return self.months * 30 * DAY

    @classmethod
    def for_events(cls, n_events: int, **overrides) -> "DemoConfig":
        """A config sized to produce about ``n_events`` events (for import/training benchmarks)."""
        base = cls(**overrides)
        active = (1.0 - base.cold_user_fraction) * base.mean_events_per_user
        return cls(**{**overrides, "n_users": max(1, round(n_events / active))})

    def validate(self) -> None:
        if not 2 <= self.n_categories <= len(CATEGORIES):
            raise UsageError(f"n_categories must be between 2 and {len(CATEGORIES)}, got {self.n_categories}")
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


def _simulate_chunk(config: DemoConfig, cat: Catalogue, first_user: int, n_users: int) -> dict[str, np.ndarray]:
    """Profiles and events of users ``first_user .. first_user + n_users - 1`` (local user indices)."""
    rng = np.random.default_rng([config.seed, 2, first_user])
    age = rng.integers(len(AGE_GROUPS), size=n_users)
    gender = rng.integers(len(GENDERS), size=n_users)
    region = rng.integers(len(REGIONS), size=n_users)
    mu = np.log(config.mean_events_per_user - 2) - 0.405  # log-normal mean ≈ mean_events - 2 (sigma 0.9)
    length = np.minimum(3 + np.floor(rng.lognormal(mu, 0.9, n_users)).astype(int), MAX_EVENTS_PER_USER)
    length[rng.random(n_users) < config.cold_user_fraction] = 0
    events = simulate_users(rng, cat, length, age * len(GENDERS) + gender, config.start_unix, config.span_s)
    return {**events, "age_group": age, "gender": gender, "region": region}


def _events_table(chunk: dict[str, np.ndarray], user_names: pa.Array, item_names: pa.Array, cat: Catalogue) -> pa.Table:
    purchase = chunk["kind"] == PURCHASE
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
    cat = build_catalogue(config.n_items, config.n_categories, N_SEGMENTS, config.seed, config.start_unix,
                          config.span_s)
    item_width = max(5, len(str(config.n_items)))
    item_names = pa.array([f"SKU{i + 1:0{item_width}d}" for i in range(config.n_items)])
    pacsv.write_csv(pa.table({"item_id": item_names, "title": cat.titles, "categories": cat.labels,
                              "brand": cat.brands}), items_path,
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
