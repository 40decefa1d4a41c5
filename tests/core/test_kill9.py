"""``kill -9`` in the middle of an import, a training run or a run's deletion: the workspace passes
``PRAGMA integrity_check`` and nothing committed is lost.

Each case runs the work in a child process and kills it at a point the child announces (plus a
delay, so the kill lands at different depths of the work).
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.engine import Engine
from engine_data import one_thread, trained  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]


def _killed_after(script: str, marker: str, delay_s: float, *args) -> None:
    """Run ``script`` in a child; ``delay_s`` after it prints ``marker``, kill -9 it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, env=env,
                             text=True)
    try:
        for line in child.stdout:
            if line.strip() == marker:
                break
        else:
            pytest.fail(f"the child ended (exit {child.wait()}) before it printed {marker!r}")
        time.sleep(delay_s)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


def _check(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    return con


IMPORT = """
import sys
from core.importing import import_files
from core.store import Workspace
workspace = Workspace.open(sys.argv[1])
print("importing", flush=True)
import_files(workspace, events=sys.argv[2])
print("done", flush=True)
"""


def test_kill_during_an_import(tmp_path):
    path = tmp_path / "shop.sqlite"
    first, big = tmp_path / "first.csv", tmp_path / "big.csv"
    first.write_text("user,item,time\n" + "".join(f"u{i % 50},i{i % 90},{1_700_000_000 + i}\n" for i in range(1000)))
    big.write_text("user,item,time\n" + "".join(f"v{i % 3000},j{i % 700},{1_700_100_000 + i}\n"
                                                  for i in range(100_000)))
    from core.importing import import_files
    from core.store import Workspace

    with Workspace.open(path) as workspace:
        import_files(workspace, events=first)
    _killed_after(IMPORT, "importing", 0.3, path, big)
    con = _check(path)
    events = con.execute("SELECT count(*) FROM events").fetchone()[0]
    imports = con.execute("SELECT count(*) FROM imports").fetchone()[0]
    assert (events, imports) in ((1000, 1), (101_000, 2))
    assert con.execute("SELECT count(*) FROM events WHERE import_id = 1").fetchone()[0] == 1000
    con.close()
    with Workspace.open(path) as workspace:  # and the next import goes through
        import_files(workspace, events=big)
        assert workspace.counts()["events"] == 101_000


TRAIN = """
import sys
from core.engine import Engine
from core.training import TrainConfig
engine = Engine.open(sys.argv[1])
config = TrainConfig(model="gru", hidden=16, layers=1, max_len=20, batch_size=64, epochs=200, patience=200, device="cpu",
                     text=False)
engine.train(config, progress=lambda report: print(report.stage, flush=True) if "valid_ndcg10" in report.metrics else None)
"""


def test_kill_during_training_leaves_an_interrupted_run_that_resumes(trained, tmp_path, capsys):
    from cli_run import run

    shutil.copytree(trained, tmp_path / "ws")
    path = tmp_path / "ws" / "shop.sqlite"
    _killed_after(TRAIN, "train", 0.1, path)  # after the first epoch's checkpoint
    con = _check(path)
    assert con.execute("SELECT id, status FROM runs ORDER BY id").fetchall() == [(1, "done"), (2, "running")]
    con.close()
    code, out, _ = run(capsys, "runs", "--db", path)
    assert code == 0 and "interrupted" in out.splitlines()[2]
    state = json.loads((path.with_name("shop.sqlite.runs") / "2" / "checkpoint" / "state.json").read_text())
    code, out, err = run(capsys, "train", "--resume", 2, "--epochs", state["state"]["epoch"], "--db", path)
    assert code == 0, err
    assert out.startswith("run #2 (gru): done")


DELETE = """
import sys
from core.runs import delete_run
from core.store import Workspace
workspace = Workspace.open(sys.argv[1])
for run_id in range(2, 7):
    print(f"deleting {run_id}", flush=True)
    delete_run(workspace, run_id)
"""


@pytest.mark.parametrize("marker,delay_s", [("deleting 2", 0.0), ("deleting 3", 0.01)])
def test_kill_during_run_deletion(trained, tmp_path, marker, delay_s):
    shutil.copytree(trained, tmp_path / "ws")
    path = tmp_path / "ws" / "shop.sqlite"
    runs_root = path.with_name("shop.sqlite.runs")
    con = sqlite3.connect(path)
    for run_id in range(2, 7):  # copies of run 1, each with a large folder, so removing one takes a while
        con.execute("INSERT INTO runs (id, created_at, model, status, config, metrics, device, duration_s, "
                    "content_hash, bundle_path) SELECT ?, created_at, model, status, config, metrics, device, "
                    "duration_s, content_hash, bundle_path FROM runs WHERE id = 1", (run_id,))
        shutil.copytree(runs_root / "1", runs_root / str(run_id))
        for n in range(300):
            (runs_root / str(run_id) / "bundle" / f"extra-{n}.bin").write_bytes(b"x")
    con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('active_run', '6')")
    con.commit()
    con.close()
    events_before = sqlite3.connect(path).execute("SELECT count(*) FROM events").fetchone()[0]
    _killed_after(DELETE, marker, delay_s, path)
    con = _check(path)
    remaining = [row[0] for row in con.execute("SELECT id FROM runs ORDER BY id")]
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == events_before
    active = con.execute("SELECT value FROM meta WHERE key = 'active_run'").fetchone()[0]
    con.close()
    assert remaining == [1, *range(min(remaining[1:], default=7), 7)]  # the runs not reached yet, all of them
    assert active == ("6" if 6 in remaining else "")  # never names a deleted run
    for run_id in remaining:  # a run still listed has all of its bundle
        bundle = runs_root / str(run_id) / "bundle"
        assert (bundle / "bundle.json").is_file() and (bundle / "weights.safetensors").is_file()
        assert run_id == 1 or len(list(bundle.glob("extra-*"))) == 300
    engine = Engine.open(path)
    user = engine.users_page(0, 1, order_by="activity")[0].user
    assert all(engine.recommend(run_id, user, k=3) for run_id in remaining)
    for run_id in remaining[1:]:
        engine.delete_run(run_id)
    assert [run.id for run in engine.runs()] == [1]
    engine.workspace.close()
