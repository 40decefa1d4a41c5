"""Demo generation speed and workspace-stats speed on a generated log.

    python benchmarks/bench_demo_stats.py                 # 5M events
    python benchmarks/bench_demo_stats.py --events 20000000 --skip-stats

Prints: events generated per second and peak memory (the generator streams in chunks of
users, so memory must not grow with the log), then the time ``workspace_stats`` takes on
the imported log (goal: under 2 s for 5M events) next to a plain ``SELECT COUNT(*) ...
GROUP BY event_type`` on the same file, the single query SQLite needs to sort for.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sqlite3
import tempfile
import time
from pathlib import Path

from core.demo import DemoConfig, write_demo_csv
from core.importing import import_files
from core.store import Workspace
from core.store.stats import workspace_stats


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--skip-stats", action="store_true", help="only time the generator")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"sqlite {sqlite3.sqlite_version}")
    with tempfile.TemporaryDirectory(prefix="nextpick-bench-") as tmp:
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
