"""Training throughput of the three sequence models: sequences/s and ms per step.

Times batch building and a fixed number of optimiser steps per encoder on amazon-toys with
the default configuration (``TrainConfig.for_data``), on CPU and, when present, CUDA (bf16
autocast and fp32). Quality lives in bench_quality.py; this script answers "is the loop fast".

    .venv/bin/python benchmarks/bench_training.py
    .venv/bin/python benchmarks/bench_training.py --steps 20 --models sasrec
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np
import torch

from core.data import leave_one_out, training_windows
from core.training import TrainConfig, batch_loss, make_optimizer, model_for_data, resolve_device

from bench_quality import amazon_toys


def time_steps(data, windows, config: TrainConfig, steps: int) -> tuple[float, float]:
    """(ms per step, sequences per second) over ``steps`` steps after two warm-up steps."""
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = model_for_data(data, config).to(device).train()
    optimizer = make_optimizer(model, config)
    batches = list(windows.batches(config.batch_size, np.random.default_rng(config.seed)))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and config.bf16)
    sequences, started = 0, 0.0
    for number in range(steps + 2):
        if number == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            sequences, started = 0, time.perf_counter()
        inputs, targets = batches[number % len(batches)]
        inputs, targets = inputs.to(device), targets.to(device)
        with autocast:
            loss = batch_loss(model, inputs, targets, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sequences += len(inputs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    return 1000 * elapsed / steps, sequences / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--models", nargs="+", default=["sasrec", "gru", "lstm"])
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
