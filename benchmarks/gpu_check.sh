#!/usr/bin/env bash
# GPU check for the sequence models and training under torchrun (run on a machine with one CUDA GPU;
# never part of the tests). Each part runs under its own time limit (a slow part cannot eat the
# others'; all together within GPU_CHECK_BUDGET_S, 470 s by default) and prints its time:
#
#   a. torchrun with nccl: `nextpick train` under `torchrun --standalone --nproc_per_node 1` on CUDA on
#      the demo shop (made with `nextpick demo`), stopped by a signal after its first checkpoint and
#      resumed, an ordinary bundle, and its figures next to the same run in one process
#      (bench_distributed.py; NCCL refuses two ranks on one GPU, so one rank is the check);
#   b. CUDA bf16 / CUDA fp32 / CPU agree on validation NDCG@10 after 3 epochs on amazon-toys, same
#      seed (fp32 CUDA vs CPU: within 0.003; bf16 vs fp32: within 0.006; bench_precision.py);
#   c. training throughput per encoder and precision (bench_training.py throughput);
#   d. the default settings on CUDA: time to validation NDCG@10 >= 0.050 on amazon-toys (goal: within
#      1 minute on one H100-class GPU) and the test figures (bench_quality.py);
#   e. for comparison, torchrun with gloo: two CPU processes, the test's tiny network.
#
# The whole log goes to $GPU_CHECK_LOG (default: $OUT/gpu_check.log, else bench-out/gpu_check.log) and
# the screen; the last lines sum up each part's exit status and time (124: its time limit ended it).
# Without a GPU it says so and stops before training anything, unless GPU_CHECK_ALLOW_CPU=1: then
# every part runs on the CPU with tiny epochs (a dry run of the script itself, minutes; no figures).
#
# On a lent device machine only the working tree travels, and its image lacks SQLAlchemy (Qt is not
# needed here). In the checkout the device copies (both folders are in .gitignore):
#   mkdir -p .gpu-data/amazon-toys && cp ../shared/data/amazon-toys/toys_events.csv .gpu-data/amazon-toys/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl SQLAlchemy==2.1.9           # its one requirement, typing-extensions, is in the image
# and run, carrying [".gpu-data", ".whl"]:
#   NEXTPICK_SHARED_DATA=.gpu-data PYTHON=python3 bash benchmarks/gpu_check.sh
# Wheels found in $GPU_CHECK_WHEELS (default .whl) are installed into a folder of their own when
# SQLAlchemy is missing. About 5 minutes on an H200 (at most GPU_CHECK_BUDGET_S and start-up); run
# with timeout_s 540.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DRY=${GPU_CHECK_ALLOW_CPU:-0}
BUDGET=${GPU_CHECK_BUDGET_S:-470}
LOG=${GPU_CHECK_LOG:-${OUT:-bench-out}/gpu_check.log}
mkdir -p "$(dirname "$LOG")"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
SUMMARY=()

# part NAME LIMIT_S COMMAND...: runs COMMAND under `timeout` (at most what is left of the budget; a
# dry run is not limited) and records its exit status and time.
part() {
    local name=$1 limit=$2 left=$((BUDGET - SECONDS)) started=$SECONDS rc
    shift 2
    [ "$DRY" = 1 ] && limit=3600 left=3600
    if [ "$left" -lt 30 ]; then
        echo "== $name: skipped, ${left} s left of the ${BUDGET} s budget =="
        SUMMARY+=("$name: skipped (budget spent)")
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (limit ${limit} s; ${SECONDS} s since the start) =="
    echo "\$ $*"
    timeout -k 10 "$limit" "$@"
    rc=$?
    SUMMARY+=("$name: exit $rc$([ $rc = 124 ] && echo ' (TIME LIMIT)') in $((SECONDS - started)) s")
    echo "-- $name: exit $rc in $((SECONDS - started)) s"
}

install_wheels() {
    "$PY" -c "import sqlalchemy" 2>/dev/null && return 0
    local wheels=${GPU_CHECK_WHEELS:-.whl} site=/tmp/nextpick-site
    echo "SQLAlchemy missing: installing the wheels in $wheels into $site"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        "$wheels"/*.whl || return 1
    export PYTHONPATH="$PYTHONPATH:$site"
}

main() {
    echo "gpu_check $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -n), $(getconf _NPROCESSORS_ONLN) cores; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    install_wheels || { echo "gpu_check: the wheels did not install"; return 1; }
    "$PY" -c "import sys, torch, sqlalchemy; print('python', sys.version.split()[0], '| torch', torch.__version__,
'| CUDA', torch.version.cuda, '| SQLAlchemy', sqlalchemy.__version__, '| torch threads', torch.get_num_threads())" \
        || return 1
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    if "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
        GPU=cuda
    elif [ "$DRY" = 1 ]; then
        GPU=cpu
        echo "DRY RUN (GPU_CHECK_ALLOW_CPU=1): no CUDA GPU; every part runs on the CPU with tiny epochs. No figures."
    else
        echo "gpu_check: no CUDA GPU visible to torch; nothing to check (GPU_CHECK_ALLOW_CPU=1 for a dry run)"
        return 2
    fi
    local tiny=() epochs=3 steps=50 quality=() users=3000
    [ "$DRY" = 1 ] && tiny=(--small --users 400 --epochs 3) epochs=1 steps=2 quality=(--max-epochs 1) users=400

    part "a. torchrun, 1 process on $GPU (nccl on cuda, gloo on cpu)" 140 \
        "$PY" benchmarks/bench_distributed.py --device "$GPU" --nproc 1 "${tiny[@]}"
    part "b. $GPU bf16 / $GPU fp32 / CPU agree after $epochs epochs" 90 \
        "$PY" benchmarks/bench_precision.py --device "$GPU" --epochs "$epochs"
    part "c. throughput" 50 "$PY" benchmarks/bench_training.py throughput --steps "$steps" \
        $([ "$DRY" = 1 ] && echo --models sasrec)
    part "d. default settings on $GPU: time to quality and test figures" 200 \
        "$PY" benchmarks/bench_quality.py --data amazon-toys --models sasrec --validation sample "${quality[@]}"
    part "e. torchrun, gloo, 2 CPU processes (tiny network)" 90 \
        env OMP_NUM_THREADS=4 "$PY" benchmarks/bench_distributed.py --device cpu --nproc 2 --small --users "$users" \
        --epochs 4
    echo "== summary ($SECONDS s in all) =="
    printf '  %s\n' "${SUMMARY[@]}"
    ! printf '%s\n' "${SUMMARY[@]}" | grep -qv ': exit 0 '
}

main 2>&1 | tee "$LOG"
