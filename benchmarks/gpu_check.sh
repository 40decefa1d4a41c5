#!/usr/bin/env bash
# GPU check for the sequence models (run on a machine with one CUDA GPU; never part of the tests).
#
#   bash benchmarks/gpu_check.sh            # ~5-8 minutes on an H100-class GPU
#
# 1. trains the Transformer for 3 epochs on amazon-toys on CUDA with bf16 autocast, on CUDA in
#    fp32 and on the CPU, same seed, and checks validation NDCG@10 agrees within tolerance
#    (fp32 CUDA vs CPU: 0.003; bf16 vs fp32: 0.006) — the same code path gives the same model;
# 2. prints training throughput per encoder and precision (bench_training.py);
# 3. runs the default-settings quality benchmark on CUDA: time to validation NDCG@10 >= 0.050
#    (goal: within 1 minute on one H100-class GPU) and the test figures.
# Without a GPU it says so and stops before training anything.
#
# On a lent device machine (torch, pandas, joblib and safetensors are in its image; the Qt and
# SQLAlchemy parts of the project are not needed here), only the working tree travels: copy the
# one dataset into an ignored folder and carry it, e.g.
#   here:   echo /.gpu-data/ >> .git/info/exclude; mkdir -p .gpu-data/amazon-toys
#           cp ../shared/data/amazon-toys/toys_events.csv .gpu-data/amazon-toys/
#   run:    carry [".gpu-data"], command "NEXTPICK_SHARED_DATA=.gpu-data PYTHON=python3 bash benchmarks/gpu_check.sh"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

"$PY" - <<'PYEOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA GPU visible to torch " + torch.__version__ + "; nothing to check")
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PYEOF

echo "== 1. CUDA bf16 / CUDA fp32 / CPU agree after 3 epochs =="
PYTHONPATH=benchmarks "$PY" - <<'PYEOF'
import dataclasses, sys, time
from bench_quality import amazon_toys
from core.data import SplitChoice
from core.training import TrainConfig, train_sequence_model

data = amazon_toys()
split = SplitChoice().split(data)  # the Train button's split
base = TrainConfig.for_data(data, epochs=3, patience=10)
results = {}
for label, device, bf16 in (("cuda bf16", "cuda", True), ("cuda fp32", "cuda", False), ("cpu fp32", "cpu", False)):
    started = time.perf_counter()
    result = train_sequence_model(data, split, dataclasses.replace(base, device=device, bf16=bf16))
    last = result.history[-1]
    results[label] = last.valid_ndcg10
    print(f"  {label:<9} valid NDCG@10 {last.valid_ndcg10:.4f} after 3 epochs, loss {last.loss:.4f}, "
          f"{sum(r.seqs_per_s for r in result.history) / len(result.history):,.0f} seqs/s, "
          f"{time.perf_counter() - started:.1f} s on {result.device_name}", flush=True)
failures = []
if abs(results["cuda fp32"] - results["cpu fp32"]) > 0.003:
    failures.append("CUDA fp32 and CPU differ by more than 0.003")
if abs(results["cuda bf16"] - results["cuda fp32"]) > 0.006:
    failures.append("bf16 and fp32 differ by more than 0.006")
print("  agreement:", "FAILED: " + "; ".join(failures) if failures else "ok")
sys.exit(1 if failures else 0)
PYEOF

echo "== 2. throughput =="
PYTHONPATH=benchmarks "$PY" benchmarks/bench_training.py --steps 50

echo "== 3. default settings on CUDA: time to quality and test figures =="
"$PY" benchmarks/bench_quality.py --data amazon-toys --models sasrec
