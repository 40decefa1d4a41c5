"""Same code path, same model: the Transformer trained on a GPU in bf16, on a GPU in fp32 and on the CPU.

Trains ``TrainConfig.for_data`` on amazon-toys for a few epochs with the same seed on each, prints
validation NDCG@10, loss and speed, and checks that fp32 on the GPU is within 0.003 of the CPU and
bf16 within 0.006 of fp32 (exit status 1 otherwise). Part of ``gpu_check.sh``.

    python benchmarks/bench_precision.py                          # cuda bf16, cuda fp32, cpu: 3 epochs
    python benchmarks/bench_precision.py --device cpu --epochs 1  # a dry run on the CPU (no comparison meant)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from bench_quality import amazon_toys
from core.data import SplitChoice
from core.training import TrainConfig
from core.training.loop import train_sequence_model

FP32_TOLERANCE = 0.003  # CUDA fp32 vs CPU
BF16_TOLERANCE = 0.006  # CUDA bf16 vs CUDA fp32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the GPU device (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    data = amazon_toys()
    split = SplitChoice().split(data)  # the Train button's split
    base = TrainConfig.for_data(data, epochs=args.epochs, patience=10)
    results = {}
    for label, device, bf16 in (("gpu bf16", args.device, True), ("gpu fp32", args.device, False),
                                ("cpu fp32", "cpu", False)):
        started = time.perf_counter()
        result = train_sequence_model(data, split, dataclasses.replace(base, device=device, bf16=bf16))
        last = result.history[-1]
        results[label] = last.valid_ndcg10
        print(f"  {label:<9} valid NDCG@10 {last.valid_ndcg10:.4f} after {args.epochs} epochs, loss {last.loss:.4f}, "
              f"{sum(r.seqs_per_s for r in result.history) / len(result.history):,.0f} seqs/s, "
              f"{time.perf_counter() - started:.1f} s on {result.device_name}", flush=True)
    failures = []
    if abs(results["gpu fp32"] - results["cpu fp32"]) > FP32_TOLERANCE:
        failures.append(f"GPU fp32 and CPU differ by more than {FP32_TOLERANCE}")
    if abs(results["gpu bf16"] - results["gpu fp32"]) > BF16_TOLERANCE:
        failures.append(f"bf16 and fp32 differ by more than {BF16_TOLERANCE}")
    print("  agreement:", "FAILED: " + "; ".join(failures) if failures else "ok")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
