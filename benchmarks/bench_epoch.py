"""One epoch of the default sequence model on a workspace: the loss and batch the defaults choose, the
CPU time of a random sample of its steps (batches are drawn in random order, so their mean is the
epoch's), the epoch's time from it, and the peak RSS. CPU time is the figure on a shared machine.

    python benchmarks/bench_scale.py --events 2_500_000 --users 100_000 --items 200_000 --keep /tmp/scale
    OMP_NUM_THREADS=1 python benchmarks/bench_epoch.py /tmp/scale/scale.sqlite --steps 60
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from core.data import leave_one_out
from core.data.batches import training_windows
from core.engine import Engine
from core.training import TrainConfig
from core.training.network import model_for_data
from core.training.steps import autocast_for, optimizer_step, make_optimizer, sampled_objective
from core.training.loop import peak_rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--steps", type=int, default=60, help="random steps timed (after two warm-up steps)")
    args = parser.parse_args()
    data = Engine.open(args.workspace).sequence_data()
    config = TrainConfig.for_data(data, device="cpu")
    split = leave_one_out(data)
    windows = training_windows(split.train, config.max_len)
    batches = windows.batch_rows(config.batch_size, np.random.default_rng(config.seed))
    print(f"{data.n_items:,} items, {len(data.items):,} events, {data.n_users:,} users; "
          f"torch {torch.__version__} on {torch.get_num_threads()} thread(s); load average {os.getloadavg()[0]:.1f}")
    print(f"defaults: loss {config.loss}, batch {config.batch_size} windows, max_len {config.max_len}, "
          f"hidden {config.hidden}; {len(windows):,} windows, {windows.n_examples:,} examples, "
          f"{len(batches):,} steps per epoch")
    torch.manual_seed(config.seed)
    model = model_for_data(data, config, None, split.train).train()
    optimizer = make_optimizer(model, config)
    autocast = autocast_for(torch.device("cpu"), config)
    sampled = sampled_objective(windows, config, data.n_items, torch.device("cpu"))
    cpu = wall = 0.0
    for number in range(args.steps + 2):
        inputs, targets = windows.batch(batches[number])
        cpu_began, wall_began = time.process_time(), time.perf_counter()
        optimizer_step(model, optimizer, inputs, targets, config, autocast, sampled)
        if number >= 2:
            cpu, wall = cpu + time.process_time() - cpu_began, wall + time.perf_counter() - wall_began
    per_step = cpu / args.steps
    print(f"{args.steps} random steps: {1000 * per_step:.0f} ms CPU per step ({1000 * wall / args.steps:.0f} ms wall); "
          f"one epoch's steps: {per_step * len(batches):.0f} s CPU")
    print(f"peak RSS {peak_rss_mb():.0f} MiB "
          f"(steps only: no validation pass); load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
