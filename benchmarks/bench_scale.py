"""Time and peak memory of every step on a big shop's log, each step run as its own process.

    python benchmarks/bench_scale.py --events 25_000_000 --users 1_000_000 --items 200_000
    python benchmarks/bench_scale.py --events 2_500_000 --users 100_000 --items 200_000 --keep /tmp/scale

Writes a synthetic log (CSV ``user_id,item_id,timestamp``; Zipf-like item popularity and user
activity, half of each user's steps near their previous item so sequences carry signal),
streamed a million rows at a time, the same file for the same arguments. Then runs the real
``nextpick`` CLI on it: import, stats, building sequences (an engine call: the CLI has no command
of its own for it), training each baseline, evaluate, recommend, export (every user's list);
and the sqlite3 tool's ``.import`` of the same file with the same indexes
(``bench_import.time_sqlite_cli``).

Peak RSS and CPU time (user + system) are the child's own, from ``os.wait4``; CPU time is the
figure to compare on a shared machine, where wall time is mostly waiting for a core. Goals (issue 14, 25M events on
2 cores): every step under 4 GB; import within 1.5x of the sqlite3 tool; sequences under 60 s and
2 GB; each baseline under 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_import import machine, time_sqlite_cli  # noqa: E402

CHUNK_ROWS = 1_000_000
FIRST_TS = 1_600_000_000
SPAN_S = 365 * 86400
BASELINE_MODELS = ("pop", "recentpop", "markov", "itemknn")
BUILD_SEQUENCES = (
    "import sys; from core.store import Workspace; from core.data import build_sequences; "
    "d = build_sequences(Workspace.open(sys.argv[1])); print(d.n_users, d.n_items, len(d.items))"
)


@dataclass(frozen=True)
class LogShape:
    events: int
    users: int
    items: int
    seed: int = 0


def zipf_cdf(n: int, exponent: float, offset: float) -> np.ndarray:
    """Cumulative shares of ranks 0..n-1 with weight 1 / (rank + offset) ** exponent."""
    weights = 1.0 / (np.arange(n) + offset) ** exponent
    return np.cumsum(weights) / weights.sum()


def write_log(path: Path, shape: LogShape) -> None:
    """Stream the synthetic log to ``path``; memory stays at a few chunks whatever the size."""
    rng = np.random.default_rng(shape.seed)
    item_cdf = zipf_cdf(shape.items, 1.0, 10.0)
    user_cdf = zipf_cdf(shape.users, 0.8, 50.0)
    item_id = rng.permutation(shape.items) + 1  # popularity rank -> item id, so ids say nothing
    last_rank = rng.integers(0, shape.items, shape.users)  # each user's previous item (as a rank)
    schema = pa.schema([("user_id", pa.int64()), ("item_id", pa.int64()), ("timestamp", pa.int64())])
    options = pacsv.WriteOptions(quoting_style="none")
    with pacsv.CSVWriter(path, schema, write_options=options) as writer:
        for start in range(0, shape.events, CHUNK_ROWS):
            rows = min(CHUNK_ROWS, shape.events - start)
            users = np.minimum(np.searchsorted(user_cdf, rng.random(rows)), shape.users - 1)
            popular = np.minimum(np.searchsorted(item_cdf, rng.random(rows)), shape.items - 1)
            nearby = (last_rank[users] + 1 + rng.geometric(0.3, rows)) % shape.items
            ranks = np.where(rng.random(rows) < 0.5, nearby, popular)
            last_rank[users] = ranks
            ts = FIRST_TS + (np.arange(start, start + rows) * (SPAN_S / shape.events)).astype(np.int64)
            writer.write_table(pa.table({"user_id": users + 1, "item_id": item_id[ranks], "timestamp": ts},
                                        schema=schema))


@dataclass(frozen=True)
class StepResult:
    name: str
    seconds: float
    cpu_seconds: float
    peak_mib: float
    returncode: int
    stdout: str


def run_step(name: str, argv: list[str], log_folder: Path, timeout_s: Optional[float]) -> StepResult:
    """Run one child; its own peak RSS comes from ``wait4`` (only this child, not earlier ones)."""
    stdout_path, stderr_path = log_folder / f"{name}.stdout", log_folder / f"{name}.stderr"
    started = time.perf_counter()
    with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
        child = subprocess.Popen(argv, stdout=stdout, stderr=stderr)
        killer = threading.Timer(timeout_s, child.kill) if timeout_s else None
        killer and killer.start()
        _, status, usage = os.wait4(child.pid, 0)
        killer and killer.cancel()
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    return StepResult(name, time.perf_counter() - started, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                      child.returncode, stdout_path.read_text())


def nextpick(*args) -> list[str]:
    return [sys.executable, "-c", "import sys; from core.cli import main; sys.exit(main())", *map(str, args)]


THE_RUN = ("--run", "{run}")  # the run recommend and export ask; left out when none was trained or named


def cli_steps(db: Path, csv_path: Path, top_user: str, models=BASELINE_MODELS,
              export_users: Optional[Path] = None) -> list[tuple[str, list[str]]]:
    """Every step, in order; train steps return a run id that evaluate/recommend use (the last one).
    ``export_users``: a file of the users to export (default: every user)."""
    steps = [("import", nextpick("import", csv_path, "--db", db, "--json")),
             ("stats", nextpick("stats", "--db", db, "--json")),
             ("build sequences", [sys.executable, "-c", BUILD_SEQUENCES, str(db)])]
    steps += [(f"train {model}", nextpick("train", "--model", model, "--db", db, "--json")) for model in models]
    steps += [("evaluate", nextpick("evaluate", "{run}", "--db", db, "--json")),
              ("recommend", nextpick("recommend", "--user", top_user, "--explain", "--db", db, "--json", *THE_RUN)),
              ("export", nextpick("export", "--out", db.with_name("recommendations.csv"), "--db", db, "--json",
                                  *THE_RUN,
                                  *(["--users", export_users] if export_users else [])))]
    return steps


def print_row(result: StepResult, note: str = "") -> None:
    flag = "" if result.returncode == 0 else f"  FAILED (exit {result.returncode})"
    print(f"{result.name:<18} {result.seconds:8.1f} s {result.cpu_seconds:8.1f} s  {result.peak_mib:8.0f} MiB{flag}{note}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=lambda s: int(s.replace("_", "")), default=25_000_000)
    parser.add_argument("--users", type=lambda s: int(s.replace("_", "")), default=1_000_000)
    parser.add_argument("--items", type=lambda s: int(s.replace("_", "")), default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--step-timeout", type=float, default=1800, help="seconds before a step is killed")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the sqlite3 tool's .import comparison")
    parser.add_argument("--reuse", action="store_true",
                        help="with --keep: use the log and workspace already there (no writing, no import, no "
                             "sqlite3 comparison): the later steps again after a change, without minutes of import")
    parser.add_argument("--steps", help="only the steps whose names start with these, comma-separated "
                                        "(e.g. 'train,evaluate')")
    parser.add_argument("--models", default=",".join(BASELINE_MODELS),
                        help="baselines to train, comma-separated; evaluate and recommend use the last "
                             "(default: %(default)s)")
    parser.add_argument("--run", type=int, help="with --steps evaluate/recommend/export alone: the run they use")
    parser.add_argument("--export-users", type=lambda s: int(s.replace("_", "")),
                        help="export the lists of this many users (the first ids) instead of every user's: "
                             "a million users' lists take most of an hour; the rate tells the whole")
    args = parser.parse_args()
    shape = LogShape(args.events, args.users, args.items, args.seed)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="nextpick-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, db = folder / "events.csv", folder / "scale.sqlite"
    reuse = args.reuse and args.keep and db.exists()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}; "
          f"memory available {_available_gib():.1f} GiB")
    if reuse:
        print(f"log and workspace reused from {folder} ({csv_path.stat().st_size / 1e6:.0f} MB log)")
    else:
        for stale in folder.glob("scale.sqlite*"):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        started = time.perf_counter()
        write_log(csv_path, shape)
        print(f"log: {shape.events:,} events, {shape.users:,} users, {shape.items:,} items, seed {shape.seed}, "
              f"{csv_path.stat().st_size / 1e6:.0f} MB, written in {time.perf_counter() - started:.1f} s "
              f"(bench process peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)", flush=True)
    print(f"{'step':<18} {'wall':>10} {'CPU':>10}  {'peak RSS':>12}  (CPU: user + system; on a loaded machine "
          f"wall time is mostly waiting)")
    run_id, results = args.run, []
    wanted = tuple(args.steps.split(",")) if args.steps else ("",)
    export_users = None
    if args.export_users:
        export_users = folder / "export-users.txt"
        export_users.write_text("".join(f"{user}\n" for user in range(1, args.export_users + 1)))
    for name, argv in cli_steps(db, csv_path, "1", args.models.split(","), export_users):
        if (reuse and name == "import") or not name.startswith(wanted):
            continue
        if run_id is None and "--run" in argv:
            at = argv.index("--run")
            argv = argv[:at] + argv[at + 2:]
        argv = [a.replace("{run}", str(run_id)) for a in argv]
        result = run_step(name, argv, folder, args.step_timeout)
        results.append(result)
        if name.startswith("train") and result.returncode == 0:
            run_id = json.loads(result.stdout)["run"]
        print_row(result, _metric_note(result))
        if result.returncode != 0 and name in ("import", "build sequences"):
            raise SystemExit(f"stopped: see {folder / (name + '.stderr')}")
    if not (args.no_sqlite or reuse) and results and results[0].name == "import" and shutil.which("sqlite3"):
        cli_s = time_sqlite_cli(csv_path, folder / "cli.sqlite", ("user_id", "item_id", "timestamp"))
        (folder / "cli.sqlite").unlink()
        ours = results[0].seconds
        print(f"sqlite3 .import + indexes: {cli_s:.1f} s; nextpick import / sqlite3 = {ours / cli_s:.2f}x (goal 1.5x)")
    worst = max(results, key=lambda r: r.peak_mib)
    print(f"largest peak: {worst.name} {worst.peak_mib:.0f} MiB (goal 4096); "
          f"load average now {os.getloadavg()[0]:.1f}")
    if not args.keep:
        shutil.rmtree(folder)


def _metric_note(result: StepResult) -> str:
    """``ndcg@10`` of a train/evaluate step, with the number of users it was measured on when given."""
    if result.returncode == 0 and result.name == "export":
        users = json.loads(result.stdout)["users"]
        return f"  {users:,} users' lists, {users / result.cpu_seconds:.0f} users per CPU second"
    if result.returncode != 0 or not result.name.startswith(("train", "evaluate")):
        return ""
    report = json.loads(result.stdout)
    ndcg = (report.get("test") or report.get("metrics") or {}).get("ndcg@10")
    low, high = (report.get("test_intervals") or report.get("intervals") or {}).get("ndcg@10", (None, None))
    users = report.get("test_users", report.get("n_users"))
    if ndcg is None:
        return ""
    interval = f" ± {(high - low) / 2:.4f}" if low is not None else ""
    return f"  ndcg@10 {ndcg:.4f}{interval} on {users:,} test users"


def _available_gib() -> float:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    available = next(line for line in meminfo if line.startswith("MemAvailable:"))
    return int(available.split()[1]) / 2**20


if __name__ == "__main__":
    main()
