"""Training under torchrun on this machine: one run stopped and resumed, next to the same run in one process.

On the demo shop, made through the CLI (``nextpick demo``), it launches ``nextpick train`` three times:

1. ``torchrun --standalone --nproc_per_node N`` asking for many epochs, stopped by a signal to torchrun
   once the first epoch's checkpoint is written: the run must show ``interrupted``;
2. the same torchrun ``--resume``d to ``--epochs``: it must end ``done``, one JSON object (the leader's),
   continuing the kept epochs, with an ordinary bundle that recommends;
3. the same settings in one process.

and prints each launch's time, epochs and validation and test figures side by side, then checks the
torchrun run's test NDCG@10 is within the two runs' 95% half-intervals of the one-process run's (as
``tests/core/test_distributed.py`` does for two CPU processes). ``--device cuda`` trains with ``nccl``
(one process per GPU: NCCL refuses two ranks on one GPU), ``--device cpu`` with ``gloo``.

    python benchmarks/bench_distributed.py --device cuda --nproc 1            # the GPU check (nccl)
    python benchmarks/bench_distributed.py --device cpu --nproc 2 --epochs 4  # gloo, two CPU processes
    python benchmarks/bench_distributed.py --device cpu --nproc 2 --small --users 400 --epochs 3  # smoke run

Exit status 1 when a check fails. Never part of the tests (the test covers gloo on CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.engine import Engine  # noqa: E402  (after the path: run as a script from anywhere)

# The test's tiny network (seconds per epoch on one CPU thread); without --small the data's defaults.
SMALL = ["--hidden", "16", "--layers", "1", "--max-len", "20", "--batch-size", "32"]
STOPPED_RUN_EPOCHS = 40  # what the stopped launch asks for: it must still be training when the signal comes
LAUNCH_TIMEOUT_S = 600


def child_env() -> dict:
    """This checkout first on the path, then whatever the caller had (carried wheels on a device machine)."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


def cli(*argv) -> list[str]:
    return [sys.executable, "-m", "core.cli", *map(str, argv)]


def torchrun(nproc: int, *argv) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "core.cli", *map(str, argv)]


def launch(command: list[str]) -> subprocess.Popen:
    """In this process group, so that a ``timeout`` around this script ends the launches too."""
    return subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(process: subprocess.Popen, what: str, allowed=(0,)) -> str:
    """The launch's stdout once it ends; its stderr's tail and an exit when it failed."""
    try:
        out, err = process.communicate(timeout=LAUNCH_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
    if process.returncode not in allowed:
        sys.exit(f"{what} ended with exit status {process.returncode}:\n{err[-4000:]}")
    return out


def wait_for(path: Path, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while not path.exists():
        if process.poll() is not None:
            sys.exit(f"{what} ended (status {process.returncode}) before {path} was written:\n"
                     f"{process.communicate()[1][-4000:]}")
        if time.monotonic() > deadline:
            process.kill()
            sys.exit(f"{what}: no {path} after {LAUNCH_TIMEOUT_S} s")
        time.sleep(0.02)


def timed_json(command: list[str], what: str) -> tuple[dict, float]:
    started = time.perf_counter()
    out = finish(launch(command), what)
    return json.loads(out), time.perf_counter() - started


def half_interval(result: dict, metric: str = "ndcg@10") -> float:
    low, high = result["test_intervals"][metric]
    return (high - low) / 2


def row(label: str, result: dict, seconds: float) -> str:
    epochs = result["training"]["epochs"]
    epoch_s = np.mean([e["seconds"] for e in epochs])
    return (f"  {label:<24} {seconds:6.1f} s  {len(epochs):2d} epochs  {epoch_s:6.2f} s/epoch  "
            f"valid NDCG@10 {result['valid']['ndcg@10']:.4f}  test NDCG@10 {result['test']['ndcg@10']:.4f} "
            f"+-{half_interval(result):.4f}  HR@10 {result['test']['hr@10']:.4f}  on {result['device']}")


def check(args, db: Path, settings: list[str]) -> list[str]:
    """Runs the three launches and returns what failed (nothing when all is well)."""
    what = f"torchrun --nproc_per_node {args.nproc} ({args.device})"
    failures = []

    started = time.perf_counter()
    stopped = launch(torchrun(args.nproc, "train", "--db", db, *settings, "--epochs", STOPPED_RUN_EPOCHS, "--json"))
    state = Path(f"{db}.runs/1/checkpoint/state.json")
    wait_for(state, stopped, what)
    stopped.send_signal(signal.SIGTERM)  # torchrun passes it on to its workers
    finish(stopped, f"{what}, stopped", allowed=range(-64, 256))
    stop_s = time.perf_counter() - started
    engine = Engine.open(db)
    status = [(run.id, run.status) for run in engine.runs()]
    kept = json.loads(state.read_text())["state"]["history"]
    print(f"  stopped by SIGTERM after {stop_s:.1f} s: runs {status}, {len(kept)} epoch(s) in the checkpoint",
          flush=True)
    if status != [(1, "interrupted")]:
        failures.append(f"the stopped launch left {status}, not [(1, 'interrupted')]")
    if len(kept) >= args.epochs:
        failures.append(f"{len(kept)} epochs ran before the signal took effect: raise --epochs above that")

    together, together_s = timed_json(
        torchrun(args.nproc, "train", "--db", db, *settings, "--resume", 1, "--epochs", args.epochs, "--json"),
        f"{what}, resumed")
    epochs = together["training"]["epochs"]
    if (together["run"], together["status"]) != (1, "done"):
        failures.append(f"the resumed run ended as #{together['run']} {together['status']}")
    if len(epochs) != args.epochs or epochs[:len(kept)] != kept:
        failures.append(f"the resumed run did not continue the checkpoint: {len(epochs)} epochs, "
                        f"the first {len(kept)} {'equal' if epochs[:len(kept)] == kept else 'different'}")

    alone, alone_s = timed_json(cli("train", "--db", db, *settings, "--epochs", args.epochs, "--json"),
                                "one process")
    engine.refresh()
    user = engine.users_page(0, 1)[0].user
    bundle = engine.bundle(1)
    served = engine.recommend(1, user, k=5) if bundle.scorer is not None else []
    print(f"  the torchrun run's bundle: {bundle.path}, {'a scorer' if bundle.scorer else 'NO scorer'}, "
          f"{len(served)} items recommended to {user}")
    if bundle.scorer is None or not served:
        failures.append("the torchrun run's bundle does not recommend")

    print(row(f"torchrun x{args.nproc} (resumed)", together, together_s))
    print(row("one process", alone, alone_s))
    print(f"  {'popularity':<24} test NDCG@10 {alone['popularity']['test']['ndcg@10']:.4f}")
    difference = together["test"]["ndcg@10"] - alone["test"]["ndcg@10"]
    tolerance = half_interval(together) + half_interval(alone)
    print(f"  test NDCG@10 difference {difference:+.4f} (tolerance: the two 95% half-intervals, {tolerance:.4f})")
    if abs(difference) > tolerance:
        failures.append(f"test NDCG@10 differs by {difference:+.4f}, more than {tolerance:.4f}")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--nproc", type=int, default=1, help="processes torchrun starts (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of each finished run (default: %(default)s)")
    parser.add_argument("--users", type=int, default=3000, help="demo shop users (default: %(default)s)")
    parser.add_argument("--small", action="store_true", help="the test's tiny network instead of the data's defaults")
    parser.add_argument("--keep", type=Path, help="make the workspace in this folder and keep it")
    args = parser.parse_args()
    settings = ["--model", "sasrec", "--no-text", "--time-budget", "0", "--patience", "50",
                "--device", args.device, *(SMALL if args.small else [])]
    with tempfile.TemporaryDirectory(prefix="nextpick-dist-") as folder:
        db = (args.keep or Path(folder)) / "shop.sqlite"
        db.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        finish(launch(cli("demo", "--db", db, "--users", args.users)), "nextpick demo")
        print(f"demo shop ({args.users:,} users) made through the CLI in {time.perf_counter() - started:.1f} s; "
              f"settings: {' '.join(settings)} --epochs {args.epochs}", flush=True)
        failures = check(args, db, settings)
    print(f"  torchrun check ({args.device}, {args.nproc} process(es)):",
          "FAILED: " + "; ".join(failures) if failures else "ok", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
