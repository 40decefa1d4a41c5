"""Training under torchrun: two CPU processes (gloo) train one run on the demo shop.

Each launch starts torch three times (torchrun and two workers), so the launches are few: one run
stopped by a signal after its first checkpoint, then resumed to the end; its quality is compared
with the same settings trained in one process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist

from core.cli import main
from core.data import leave_one_out
from core.distributed import SOLO, Team
from core.engine import Engine
from core.progress import CancelToken, Cancelled
from core.training import TrainConfig
from core.training.loop import train_sequence_model
from engine_data import demo_workspace
from neural_data import rule_sequences

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ["--model", "sasrec", "--hidden", "16", "--layers", "1", "--max-len", "20", "--batch-size", "32",
            "--no-text", "--time-budget", "0", "--patience", "50"]
EPOCHS = 4
LAUNCH_TIMEOUT_S = 600


def torchrun(db: Path, *argv) -> subprocess.Popen:
    """``torchrun --standalone --nproc_per_node 2 -m core.cli train ...`` (standalone: a free port of its own)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "core.cli", "train", "--db", str(db), *SETTINGS, "--json", *map(str, argv)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while not path.exists():
        assert process.poll() is None, f"torchrun ended before {path} was written:\n{process.communicate()[1]}"
        assert time.monotonic() < deadline, f"no {path} after {LAUNCH_TIMEOUT_S} s"
        time.sleep(0.02)


def finish(process: subprocess.Popen) -> tuple[str, str]:
    try:
        return process.communicate(timeout=LAUNCH_TIMEOUT_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.slow
def test_two_processes_train_one_resumable_run_as_good_as_one_process(tmp_path):
    db = tmp_path / "shop.sqlite"
    demo_workspace(db, n_users=400, n_items=150).close()

    # Stopped by a signal to torchrun once the first epoch's checkpoint is written (it asked for 40 epochs).
    stopped = torchrun(db, "--epochs", 40)
    state = Path(f"{db}.runs/1/checkpoint/state.json")
    wait_for(state, stopped)
    stopped.send_signal(signal.SIGTERM)
    finish(stopped)
    engine = Engine.open(db)
    assert [(run.id, run.status) for run in engine.runs()] == [(1, "interrupted")]
    kept = json.loads(state.read_text())["state"]["history"]
    assert 1 <= len(kept) < EPOCHS  # the LR is at its peak in these epochs under either plan

    resumed = torchrun(db, "--resume", 1, "--epochs", EPOCHS)
    out, err = finish(resumed)
    assert resumed.returncode == 0, err
    result = json.loads(out)  # one JSON object: only the leader printed
    assert (result["run"], result["status"], result["device"]) == (1, "done", "2 × CPU (1 thread)")
    epochs = result["training"]["epochs"]
    assert len(epochs) == EPOCHS and epochs[:len(kept)] == kept  # continued from the checkpoint

    assert main(["train", "--db", db, *SETTINGS, "--epochs", EPOCHS, "--json"], stdout=open(os.devnull, "w")) == 0
    engine.refresh()
    runs = {run.id: run for run in engine.runs()}
    assert sorted(runs) == [1, 2] and {run.status for run in runs.values()} == {"done"}
    assert engine.bundle(1).scorer is not None and engine.recommend(1, engine.users_page(0, 1)[0].user, k=5)

    # Tolerance: the two runs' 95% intervals overlap (about +-0.04 each on these ~400 test users). The
    # processes' dropout seeds differ, and the loss is the mean of each process's mean, so the figures
    # are close, not equal.
    together, alone = runs[1].metric("ndcg@10"), runs[2].metric("ndcg@10")
    half = [np.diff(run.metrics["intervals"]["ndcg@10"])[0] / 2 for run in (runs[1], runs[2])]
    assert abs(together - alone) <= sum(half), (together, alone, half)
    assert together > runs[1].metrics["popularity"]["test"]["ndcg@10"]  # and both learned something


def test_each_process_takes_its_share_of_every_batch_and_a_batch_too_small_to_share_is_left_out():
    batches = [np.arange(7), np.arange(10, 13), np.array([20])]
    first, second = Team(0, 2, 0, "gloo"), Team(1, 2, 1, "gloo")
    assert [list(rows) for rows in first.share(batches)] == [[0, 2, 4, 6], [10, 12]]
    assert [list(rows) for rows in second.share(batches)] == [[1, 3, 5], [11]]
    assert SOLO.share(batches) == batches


def test_alone_every_team_call_is_a_no_op():
    assert SOLO.is_leader and not SOLO.joined
    assert SOLO.stop_now(True, False) == (True, False) and SOLO.from_leader(3.0, 4.5) == (3.0, 4.5)
    assert SOLO.choice_from_leader("epochs", ("", "epochs")) == "epochs" and SOLO.mean(2.5) == 2.5
    assert SOLO.seed(7) == 7 and Team(1, 2, 1, "gloo").seed(7) != 7
    assert SOLO.describe("CPU (1 thread)") == "CPU (1 thread)"
    assert Team(0, 4, 0, "nccl").describe("NVIDIA H200") == "4 × NVIDIA H200"
    with SOLO.leader_first():
        pass


@pytest.fixture
def team_of_one(tmp_path):
    """A real gloo process group of one process: every collective call runs, in this process."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield Team(0, 1, 0, "gloo")
    dist.destroy_process_group()


def test_through_the_collective_calls_one_process_trains_exactly_as_alone(team_of_one):
    data = rule_sequences(n_users=200, n_items=30)
    split = leave_one_out(data)
    config = TrainConfig(model="sasrec", hidden=16, layers=1, max_len=12, batch_size=32, epochs=2, warmup_steps=5,
                         device="cpu")
    alone = train_sequence_model(data, split, config)
    joined = train_sequence_model(data, split, config, team=team_of_one)
    for mine, its in zip(joined.history, alone.history, strict=True):
        assert (mine.loss, mine.valid_ndcg10) == pytest.approx((its.loss, its.valid_ndcg10), rel=1e-5)
    with pytest.raises(Cancelled):
        token = CancelToken()
        token.cancel()
        train_sequence_model(data, split, config, cancel=token, team=team_of_one)


def test_update_refuses_to_run_in_each_of_torchrun_s_processes(tmp_path, monkeypatch, capsys):
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "localhost",
                        "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(name, value)
    assert main(["update", "--db", tmp_path / "shop.sqlite"]) == 1
    assert "not under torchrun" in capsys.readouterr().err
