"""Import speed against the sqlite3 command-line tool's own `.import` of the same file.

    .venv/bin/python benchmarks/bench_import.py            # 5,000,000 rows
    .venv/bin/python benchmarks/bench_import.py --rows 500000
    .venv/bin/python benchmarks/bench_import.py --overlap  # then day 2's export: day 1's last half + as many new rows

Both sides build the same indexes (one user's time order, item lookup). Goal: our import,
which also maps ids, parses times, checks every row and records provenance, within 1.5x of
the tool (issue 14). Our import runs in a child process so its peak memory is measured alone;
its time is split by stage (load, index rebuild, repeat check) to show where it goes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv


def write_events_csv(path: Path, rows: int, seed: int = 0) -> None:
    """user,item,timestamp,event: long-tail items, heavy and light users, months of unix times."""
    rng = np.random.default_rng(seed)
    users = rng.zipf(1.3, rows) % max(rows // 50, 1) + 1
    items = rng.zipf(1.2, rows) % max(rows // 100, 1) + 1
    ts = 1_600_000_000 + np.sort(rng.integers(0, 180 * 86400, rows))
    events = np.array(["view", "cart", "purchase"])[rng.choice(3, rows, p=[0.8, 0.15, 0.05])]
    table = pa.table({"user": pa.array(users.astype(str)), "item": pa.array(items.astype(str)),
                      "timestamp": ts, "event": events})
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="none"))


def time_sqlite_cli(csv_path: Path, db: Path, columns: tuple[str, ...] = ("user", "item", "timestamp", "event")) -> float:
    """Seconds for the sqlite3 tool to ``.import`` the file (header row: ``columns``, the first
    three user, item, time) and build the same indexes as ours: one user's time order, item lookup."""
    user, item, when = columns[:3]
    declared = ", ".join(f"{name} {'INTEGER' if name == when else 'TEXT'}" for name in columns)
    script = (
        f"CREATE TABLE events({declared});\n"
        f".import --csv --skip 1 {csv_path} events\n"
        f"CREATE INDEX ix_user_ts ON events({user}, {when});\n"
        f"CREATE INDEX ix_item ON events({item});\n"
    )
    started = time.perf_counter()
    subprocess.run(["sqlite3", str(db)], input=script, text=True, check=True)
    return time.perf_counter() - started


def write_overlapping_csv(first: Path, path: Path, rows: int) -> None:
    """The second half of ``first`` again, then as many new rows (later times, another seed)."""
    old = pacsv.read_csv(first).slice(rows - rows // 2)
    new = path.with_suffix(".new.csv")
    write_events_csv(new, rows // 2, seed=1)
    later = pacsv.read_csv(new)
    later = later.set_column(2, "timestamp", pa.compute.add(later.column("timestamp"), 200 * 86400))
    pacsv.write_csv(pa.concat_tables([old, later.cast(old.schema)]), path,
                    write_options=pacsv.WriteOptions(quoting_style="none"))


def _our_import(csv_path: str, db: str, queue, overlap: str | None = None) -> None:
    from core.importing import import_files
    from core.store import Workspace

    workspace = Workspace.open(db)
    spent: dict[str, float] = {}  # stage -> seconds: where the time goes
    started = last = time.perf_counter()
    stage = "import events"  # blocks report when loaded, other stages when they begin: the time since
                             # the previous report belongs to the stage that report named

    def listen(report) -> None:
        nonlocal stage, last
        now = time.perf_counter()
        spent[stage] = spent.get(stage, 0.0) + now - last
        stage, last = report.stage, now

    report = import_files(workspace, events=csv_path, progress=listen)
    seconds = time.perf_counter() - started
    spent[stage] = spent.get(stage, 0.0) + started + seconds - last
    counts, second = workspace.counts(), None
    if overlap:
        started = time.perf_counter()
        events = import_files(workspace, events=overlap).file("events")
        second = (time.perf_counter() - started, events.rows_read, events.rows_accepted, events.duplicates)
    accepted = report.rows_accepted + report.file("events").duplicates  # the generated log repeats a few events
    queue.put((seconds, accepted, counts, _peak_rss_kib(), second, spent))
    workspace.close()


def _peak_rss_kib() -> int:
    """This process's own peak RSS. VmHWM, because ru_maxrss of a spawned child still counts
    the parent's memory it was forked with."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def time_ours(csv_path: Path, db: Path, overlap: Path | None = None) -> tuple:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_our_import, args=(str(csv_path), str(db), queue, overlap and str(overlap)))
    child.start()
    result = queue.get()
    child.join()
    return result


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0] if names else model
    sqlite_cli = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout.split()[0]
    return f"{os.cpu_count()} CPUs ({model}), sqlite3 CLI {sqlite_cli}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--overlap", action="store_true",
                        help="then import a file holding the last half of the rows again plus as many new ones")
    args = parser.parse_args()
    if shutil.which("sqlite3") is None:
        raise SystemExit("needs the sqlite3 command-line tool (apt-get install -y sqlite3)")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        csv_path = folder / "events.csv"
        write_events_csv(csv_path, args.rows)
        overlap = folder / "day2.csv" if args.overlap else None
        if overlap:
            write_overlapping_csv(csv_path, overlap, args.rows)
        ours_s, accepted, counts, peak_kib, second, spent = time_ours(csv_path, folder / "ours.sqlite", overlap)
        cli_s = time_sqlite_cli(csv_path, folder / "cli.sqlite")
        size_mb = csv_path.stat().st_size / 1e6
    assert accepted == args.rows, (accepted, args.rows)
    print(f"machine: {machine()}")
    print(f"file: {args.rows:,} rows, {size_mb:.0f} MB; workspace after import: {counts}")
    print(f"sqlite3 .import + indexes: {cli_s:6.2f} s  {args.rows / cli_s / 1e6:5.2f} M rows/s")
    print(f"nextpick import_files:     {ours_s:6.2f} s  {args.rows / ours_s / 1e6:5.2f} M rows/s")
    print("  of which " + ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in spent.items()))
    print(f"ratio ours/sqlite3: {ours_s / cli_s:.2f}x (goal: within 1.5x, issue 14)")
    print(f"peak RSS of our import process: {peak_kib / 1024:.0f} MiB")
    if second:
        seconds, read, added, repeats = second
        print(f"overlapping export: {read:,} rows in {seconds:.2f} s, {added:,} added, {repeats:,} duplicates skipped")


if __name__ == "__main__":
    main()
