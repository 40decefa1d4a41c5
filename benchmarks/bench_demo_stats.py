"""The default demo shop's shape, demo generation speed and workspace-stats speed on a generated log.

    python benchmarks/bench_demo_stats.py                 # 5M events
    python benchmarks/bench_demo_stats.py --events 20000000 --skip-stats

Prints: what the default demo shop (``nextpick demo``) holds — events, item kinds, items
released during the log, and how many test events a time split (latest 10% of events) has on
items with no events before its cut-off (the item-text model's case); then events generated
per second and peak memory (the generator streams in chunks of users, so memory must not grow
with the log), then the time ``workspace_stats`` takes on the imported log (goal: under 2 s
for 5M events) next to a plain ``SELECT COUNT(*) ... GROUP BY event_type`` on the same file,
the single query SQLite needs to sort for.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core.data import SplitChoice, SplitKind, sequences_from_arrays
from core.demo import N_SEGMENTS, DemoConfig, build_catalogue, write_demo_csv
from core.demo.catalogue import ACCESSORY, EDITION, LINE_PIECE, PRODUCT
from core.importing import import_files
from core.store import Workspace
from core.runs.new_items import known_items
from core.store.stats import workspace_stats


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def default_demo_shape(folder: Path) -> None:
    """The default demo's composition and its time split's new-item test events."""
    config = DemoConfig()
    files = write_demo_csv(folder, config)
    cat = build_catalogue(config.n_items, config.n_categories, N_SEGMENTS, config.seed, config.start_unix,
                          config.span_s)
    kinds = {name: int((cat.kind == k).sum()) for name, k in
             (("products", PRODUCT), ("line pieces", LINE_PIECE), ("accessories", ACCESSORY), ("editions", EDITION))}
    released = int((cat.released > config.start_unix).sum())
    events = pd.read_csv(files.events, dtype={"user_id": str, "item_id": str})
    items = pd.read_csv(files.items, dtype={"item_id": str})
    item_frame = pd.DataFrame({"id": np.arange(1, len(items) + 1), "external_id": items.item_id,
                               "title": items.title, "categories": items.categories})
    data = sequences_from_arrays(events.user_id.str[1:].astype(int).to_numpy(),
                                 events.item_id.str[3:].astype(int).to_numpy(),
                                 events.timestamp.to_numpy(np.float64), item_frame)
    split = SplitChoice(kind=SplitKind.TIME).resolve(data, "unix").split(data)
    new = ~known_items(split, data.n_items)[split.test.targets]
    print(f"default demo: {files.n_events:,} events ({events.event_type.value_counts().to_dict()}), "
          f"{files.n_users:,} users, {files.n_items:,} items: "
          + ", ".join(f"{n} {name}" for name, n in kinds.items())
          + f"; {released} items released during the {config.months} months")
    print(f"time split (latest 10% of events): {len(split.test.targets):,} test events, {int(new.sum()):,} on "
          f"{len(np.unique(split.test.targets[new]))} items with no events before the cut-off")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--skip-stats", action="store_true", help="only time the generator")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"sqlite {sqlite3.sqlite_version}")
    with tempfile.TemporaryDirectory(prefix="nextpick-bench-") as tmp:
        default_demo_shape(Path(tmp) / "default")
        config = DemoConfig.for_events(args.events)
        started = time.perf_counter()
        files = write_demo_csv(Path(tmp) / "csv", config)
        seconds = time.perf_counter() - started
        size_mb = files.events.stat().st_size / 1e6
        print(f"demo: {files.n_events:,} events, {config.n_users:,} users in {seconds:.1f} s "
              f"= {files.n_events / seconds / 1e6:.2f}M events/s; events.csv {size_mb:.0f} MB; "
              f"peak RSS {peak_rss_mb():.0f} MB")
        if args.skip_stats:
            return
        db = Path(tmp) / "bench.sqlite"
        with Workspace.open(db) as workspace:
            started = time.perf_counter()
            import_files(workspace, events=files.events, items=files.items, users=files.users)
            print(f"import (core.importing, for the stats below): {time.perf_counter() - started:.1f} s")
            for attempt in (1, 2):  # the second run reads a warm page cache, as the studio usually does
                started = time.perf_counter()
                stats = workspace_stats(workspace)
                print(f"workspace_stats run {attempt}: {time.perf_counter() - started:.2f} s "
                      f"({stats.events:,} events, {stats.users:,} users, {len(stats.activity.counts)} days)")
        with sqlite3.connect(db) as raw:
            started = time.perf_counter()
            raw.execute("SELECT event_type, COUNT(*) FROM events GROUP BY event_type").fetchall()
            print(f"for comparison, SELECT event_type, COUNT(*) ... GROUP BY event_type alone: "
                  f"{time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
