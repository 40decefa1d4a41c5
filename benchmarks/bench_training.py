"""Training cost: what the Train button does with its defaults on each log, and the loop's raw speed.

``defaults`` (the default mode) imports each log into a fresh workspace through the importer,
then trains exactly what the Train button trains (``TrainConfig.for_data``, the default time
budget, the re-ranker, the test evaluation) next to the popularity and item-kNN baselines,
and prints the estimate made before training, the time taken, whether the budget cut the run
short, the served test NDCG@10 / HR@10 and the popularity check. ``throughput`` times batch
building and a fixed number of optimiser steps per encoder on amazon-toys (ms per step,
sequences/s) on CPU and, when present, CUDA. ``head`` times full softmax's head alone on one CPU
thread, forward and backward, with every logit held (``F.cross_entropy``) and in row chunks
(``core.chunked_softmax``, what training uses): the multiply-adds per second it prints are
``CPU_MACS_PER_S``, which decides the default loss.

    .venv/bin/python benchmarks/bench_training.py                                  # all four logs
    .venv/bin/python benchmarks/bench_training.py --data ml-latest-small --models sasrec gru
    .venv/bin/python benchmarks/bench_training.py --data ml-latest-small --time-budget 3   # shorter, like for like
    .venv/bin/python benchmarks/bench_training.py throughput --steps 20 --models sasrec
    .venv/bin/python benchmarks/bench_training.py head

Goals (issue 9): with defaults on 2 CPU cores ml-latest-small trains in at most 10 minutes and
beats popularity and item-kNN on test NDCG@10 by a clear margin; amazon-toys keeps test
NDCG@10 >= 0.060 within 10 minutes; ml-100k and the demo shop keep their quality.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench_quality import SHARED, amazon_toys, machine
from core.data import leave_one_out
from core.data.batches import training_windows
from core.demo import DemoConfig, create_demo_workspace
from core.engine import Engine
from core.importing import import_files
from core.store import Workspace
from core.chunked_softmax import linear_cross_entropy
from core.training import CPU_MACS_PER_S, TrainConfig, resolve_device
from core.training.network import model_for_data
from core.training.steps import batch_loss, make_optimizer, sampled_objective

# Each shared log as the files a person would import (events, items, users).
LOGS = {
    "ml-latest-small": ("ml-latest-small/ratings.csv", "ml-latest-small/movies.csv", None),
    "amazon-toys": ("amazon-toys/toys_events.csv", None, None),
    "ml-100k": ("ml-100k/u.data", "ml-100k/u.item", "ml-100k/u.user"),
}
BASELINES = ("pop", "itemknn")


def open_log(name: str, folder: Path) -> Engine:
    """A fresh workspace holding the log ``name`` ("demo" is generated with the default DemoConfig)."""
    path = folder / f"{name}.sqlite"
    if name == "demo":
        return Engine(create_demo_workspace(path, DemoConfig()))
    events, items, users = (SHARED / part if part else None for part in LOGS[name])
    workspace = Workspace.open(path)
    import_files(workspace, events=events, items=items, users=users)
    return Engine(workspace)


def train_line(engine: Engine, model: str, time_budget=None) -> str:
    """Train ``model`` with the defaults (``time_budget`` minutes instead of the default when given)
    and describe the run in a few lines."""
    overrides = {} if time_budget is None else {"time_budget": time_budget}
    config = TrainConfig.for_data(engine.sequence_data(), model=model, **overrides)
    estimate = engine.estimate_training(config) if model not in BASELINES else None
    run = engine.train(config)
    metrics, training = run.metrics, run.metrics.get("training", {})
    ranker = metrics["ranker"]
    line = (f"  {model:<8} test NDCG@10 {run.metric('ndcg@10'):.4f}  HR@10 {run.metric('hr@10'):.4f}  "
            f"(generator alone {metrics['generator_test']['ndcg@10']:.4f}, valid {metrics['valid']['ndcg@10']:.4f})  "
            f"{run.duration_s:6.0f} s\n  {'':<8} re-ranker {'served' if ranker['kept'] else 'left out'}: "
            f"cross-fitted validation NDCG@10 {ranker['holdout_ndcg10_generator']:.4f} -> "
            f"{ranker['holdout_ndcg10_ranker']:.4f} (p = {ranker['holdout_p_value']:.2g})")
    knn = next((other for other in engine.runs() if other.model == "itemknn" and other.id != run.id), None)
    if estimate is None or knn is None:
        return line
    against_knn = engine.compare(run.id, knn.id)
    line += f"; against item-kNN on the test: {against_knn['difference']:+.4f}, p = {against_knn['p_value']:.2g}"
    epochs = len(training["epochs"])
    gate = metrics["gate"]
    outside = run.duration_s - training["seconds"]
    return (f"{line}\n  {'':<8} estimate before training: {estimate.describe()}\n"
            f"  {'':<8} max_len {config.max_len}, batch {config.batch_size}; {epochs} epochs run of "
            f"{training['planned_epochs']} planned, best {training['best_epoch']}, stopped by "
            f"{training['stopped_by']}{' (the budget cut it short)' if training['budget_cut'] else ''}; "
            f"{outside:.0f} s outside the epochs (reading, popularity check, re-ranker, evaluation)\n"
            f"  {'':<8} beats popularity on validation: {gate['beats_popularity']} "
            f"({gate['mean_a']:.4f} vs {gate['mean_b']:.4f}, p = {gate['p_value']:.2g}, {gate.get('compares')}); "
            f"popularity test NDCG@10 {metrics['popularity']['test']['ndcg@10']:.4f} generator alone"
            + (f", {metrics['popularity']['served_test']['ndcg@10']:.4f} served"
               if "served_test" in metrics["popularity"] else ""))


def defaults(args) -> None:
    print(f"machine: {machine()}")
    print("each run: TrainConfig.for_data defaults (time budget: 10 min on a CPU), the default split and "
          "evaluation (printed per log), served pipeline (generator + re-ranker when kept)")
    with tempfile.TemporaryDirectory(prefix="nextpick-bench-") as folder:
        for name in args.data:
            started = time.perf_counter()
            engine = open_log(name, Path(folder))
            data = engine.sequence_data()
            print(f"\n{name}: {data.n_users:,} users, {data.n_items:,} items, {len(data.items):,} events "
                  f"(imported in {time.perf_counter() - started:.0f} s); load average {os.getloadavg()[0]:.2f}",
                  flush=True)
            for model in (*BASELINES, *args.models):
                print(train_line(engine, model, args.time_budget), flush=True)
            print(f"  protocol: {engine.runs()[-1].metrics.get('protocol')}")
            engine.workspace.close()
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def time_steps(data, windows, config: TrainConfig, steps: int) -> tuple[float, float]:
    """(ms per step, sequences per second) over ``steps`` steps after two warm-up steps."""
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = model_for_data(data, config).to(device).train()
    optimizer = make_optimizer(model, config)
    batches = list(windows.batches(config.batch_size, np.random.default_rng(config.seed)))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and config.bf16)
    sampled = sampled_objective(windows, config, data.n_items, device)
    sequences, started = 0, 0.0
    for number in range(steps + 2):
        if number == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            sequences, started = 0, time.perf_counter()
        inputs, targets = batches[number % len(batches)]
        inputs, targets = inputs.to(device), targets.to(device)
        with autocast:
            loss = batch_loss(model, inputs, targets, config, sampled=sampled)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sequences += len(inputs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    return 1000 * elapsed / steps, sequences / elapsed


def throughput(args) -> None:
    data = amazon_toys()
    split = leave_one_out(data)
    base = TrainConfig.for_data(data)
    started = time.perf_counter()
    windows = training_windows(split.train, base.max_len)
    print(f"amazon-toys: {len(windows):,} training windows ({windows.n_examples:,} next-item examples) "
          f"built in {1000 * (time.perf_counter() - started):.0f} ms; load average {os.getloadavg()[0]:.2f}")
    devices = [("cpu", False)] + ([("cuda", True), ("cuda", False)] if torch.cuda.is_available() else [])
    for device, bf16 in devices:
        for model in args.models:
            config = dataclasses.replace(base, model=model, device=device, bf16=bf16)
            ms, rate = time_steps(data, windows, config, args.steps)
            label = f"{device}{' bf16' if bf16 else ''}"
            print(f"  {model:<7} {label:<9} {ms:8.1f} ms/step  {rate:9.0f} seqs/s  "
                  f"(batch {config.batch_size}, hidden {config.hidden}, max_len {config.max_len}, "
                  f"{config.loss} loss over {data.n_items:,} items)")
    print(f"CPU threads: {torch.get_num_threads()}; load average at end {os.getloadavg()[0]:.2f}")


def head(args) -> None:
    """The head's CPU time per step at 1,024 positions, hidden 64, one thread: whole logits vs row chunks."""
    torch.set_num_threads(1)
    print(f"{machine()}; one thread; CPU_MACS_PER_S = {CPU_MACS_PER_S:.2g}")
    generator = torch.Generator().manual_seed(0)
    for n_items in (1_000, 10_000, 50_000):
        hidden = torch.randn(1024, 64, generator=generator).requires_grad_()
        weight = (0.1 * torch.randn(n_items, 64, generator=generator)).requires_grad_()
        bias, targets = torch.zeros(n_items), torch.randint(0, n_items, (1024,), generator=generator)
        for name, loss in (("whole logits", lambda: F.cross_entropy(torch.addmm(bias, hidden, weight.T), targets)),
                           ("row chunks", lambda: linear_cross_entropy(hidden, weight, bias, targets))):
            seconds = _best_cpu_seconds(lambda: loss().backward(), args.steps)
            print(f"  {n_items:>6,} items, {name:<12} {1000 * seconds:7.1f} ms CPU per step  "
                  f"{1024 * n_items * 64 * 3 / seconds:.2e} multiply-adds/s")


def _best_cpu_seconds(work, repeats: int) -> float:
    work()
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=("defaults", "throughput", "head"), default="defaults")
    parser.add_argument("--data", nargs="+", default=[*LOGS, "demo"], choices=[*LOGS, "demo"],
                        help="logs for the defaults mode")
    parser.add_argument("--models", nargs="+", default=None, choices=["sasrec", "gru", "lstm"],
                        help="neural models (defaults mode: sasrec; throughput: all three)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per model (throughput mode; head: the best of these)")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="minutes per neural run instead of the default (a shorter like-for-like comparison "
                             "on a busy machine)")
    args = parser.parse_args()
    if args.mode == "head":
        head(args)
    elif args.mode == "throughput":
        args.models = args.models or ["sasrec", "gru", "lstm"]
        throughput(args)
    else:
        args.models = args.models or ["sasrec"]
        defaults(args)


if __name__ == "__main__":
    main()
