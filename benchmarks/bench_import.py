"""Import speed against the sqlite3 command-line tool's own `.import` of the same file.

    .venv/bin/python benchmarks/bench_import.py            # 5,000,000 rows
    .venv/bin/python benchmarks/bench_import.py --rows 500000
    .venv/bin/python benchmarks/bench_import.py --overlap  # then day 2's export: day 1's last half + as many new rows
    .venv/bin/python benchmarks/bench_import.py --csv /path/events.csv --folder /big/disk   # bench_scale.py's log

Both sides build the same index (one user's time order; schema 3 has no other). Goal: the whole
``nextpick import`` command, which also maps ids, parses times, checks every row, skips repeated
events, records provenance and then caches every user's sequence and the user directory, within
1.5x of the tool (issue 14). The command runs as a child process, timed from start to exit, so its
CPU time and peak memory are its own; its time is split by stage from its progress log.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
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
    three user, item, time) and build the same index as ours: one user's time order."""
    user, when = columns[0], columns[2]
    declared = ", ".join(f"{name} {'INTEGER' if name == when else 'TEXT'}" for name in columns)
    script = (
        f"CREATE TABLE events({declared});\n"
        f".import --csv --skip 1 {csv_path} events\n"
        f"CREATE INDEX ix_user_ts ON events({user}, {when});\n"
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


def time_ours(csv_path: Path, db: Path) -> tuple[float, float, int, dict, dict[str, float]]:
    """The whole ``nextpick import`` command, as a person runs it, in a child process: (wall seconds
    from start to exit, CPU seconds, peak RSS KiB, its --json result, seconds per stage). The command
    also caches every user's sequence and the user directory beside the workspace: that is part of
    its time. Stages come from its progress log (a line stamped with the time since it started
    whenever a stage begins)."""
    argv = [sys.executable, "-c", "import sys; from core.cli import main; sys.exit(main())",
            "import", str(csv_path), "--db", str(db), "--json"]
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output = {}
    readers = [threading.Thread(target=lambda name=name, stream=stream: output.update({name: stream.read()}))
               for name, stream in (("out", child.stdout), ("err", child.stderr))]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(child.pid, 0)  # this child's own CPU and peak memory
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    for reader in readers:
        reader.join()
    if child.returncode:
        raise SystemExit(f"nextpick import failed (exit {child.returncode}):\n{output['err'][-2000:]}")
    return (seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, json.loads(output["out"]),
            _stage_seconds(output["err"], seconds))


def _stage_seconds(log: str, total: float) -> dict[str, float]:
    """Seconds per stage from the progress log's stamps ("[1:05] import events  ..."); the time before
    the first stamp (starting Python, reading the file's digest) is "start"."""
    spent, stage, last = {}, "start", 0.0
    for stamp, name in STAMPED.findall(log):
        at = sum(int(part) * 60 ** power for power, part in enumerate(reversed(stamp.split(":"))))
        if name != stage:
            spent[stage] = spent.get(stage, 0.0) + at - last
            stage, last = name, at
    spent[stage] = spent.get(stage, 0.0) + total - last
    return spent


STAMPED = re.compile(r"^\[(\d+(?::\d\d)+)\] (.+?)(?:  |$)", re.MULTILINE)


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
    parser.add_argument("--csv", type=Path, help="import this file (user_id,item_id,timestamp columns, e.g. "
                                                 "bench_scale.py's log) instead of writing one of --rows rows")
    parser.add_argument("--folder", type=Path, help="work here (default: a temporary folder)")
    parser.add_argument("--overlap", action="store_true",
                        help="then import a file holding the last half of the rows again plus as many new ones")
    args = parser.parse_args()
    if args.overlap and args.csv:
        parser.error("--overlap writes its own log: leave out --csv")
    if shutil.which("sqlite3") is None:
        raise SystemExit("needs the sqlite3 command-line tool (apt-get install -y sqlite3)")
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        folder = Path(folder)
        csv_path, columns = args.csv, ("user_id", "item_id", "timestamp")
        if csv_path is None:
            csv_path, columns = folder / "events.csv", ("user", "item", "timestamp", "event")
            write_events_csv(csv_path, args.rows)
        ours_s, ours_cpu, peak_kib, result, spent = time_ours(csv_path, folder / "ours.sqlite")
        cli_started = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli_s = time_sqlite_cli(csv_path, folder / "cli.sqlite", columns)
        cli_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli_cpu = (cli_usage.ru_utime - cli_started.ru_utime) + (cli_usage.ru_stime - cli_started.ru_stime)
        second = None
        if args.overlap:
            overlap = folder / "day2.csv"
            write_overlapping_csv(csv_path, overlap, args.rows)
            second = time_ours(overlap, folder / "ours.sqlite")
        size_mb = csv_path.stat().st_size / 1e6
    events = result["files"][0]
    rows = events["rows_read"]
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    print(f"file: {rows:,} rows, {size_mb:.0f} MB; workspace after import: {result['counts']}")
    print(f"sqlite3 .import + indexes:  {cli_s:7.1f} s wall {cli_cpu:7.1f} s CPU  {rows / cli_s / 1e6:5.2f} M rows/s"
          "  (text columns as written, the (user, time) index)")
    print(f"nextpick import (command):  {ours_s:7.1f} s wall {ours_cpu:7.1f} s CPU  {rows / ours_s / 1e6:5.2f} M rows/s"
          "  (ids mapped, times parsed, rows checked, repeats skipped, provenance, the same index,")
    print("                             then every user's sequence and the user directory cached)")
    print("  of which " + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in spent.items()))
    print(f"ratio ours/sqlite3: wall {ours_s / cli_s:.2f}x, CPU {ours_cpu / cli_cpu:.2f}x (goal: within 1.5x, issue 14)")
    print(f"peak RSS of the import command: {peak_kib / 1024:.0f} MiB")
    if second:
        seconds, _, _, day2, _ = second
        day2 = day2["files"][0]
        print(f"overlapping export: {day2['rows_read']:,} rows in {seconds:.1f} s, "
              f"{day2['rows_accepted']:,} added, {day2['duplicates_skipped']:,} duplicates skipped")


if __name__ == "__main__":
    main()
