"""Runs in a workspace that moves, and runs whose process died."""

import shutil
import sqlite3

import pytest

from core import runs
from core.bundles import BundleError
from core.engine import Engine
from core.store import Workspace
from core.training import TrainConfig
from engine_data import one_thread, trained  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("one_thread")


def _copy(trained, target):
    shutil.copytree(trained, target)
    return target / "shop.sqlite"


def _a_user(engine):
    return engine.users_page(0, 1, order_by="activity")[0].user


def test_the_bundle_path_is_stored_relative_to_the_run(trained):
    con = sqlite3.connect(trained / "shop.sqlite")
    assert con.execute("SELECT bundle_path FROM runs").fetchall() == [("bundle",)]
    con.close()


def test_a_copied_workspace_serves_its_own_models_after_the_original_is_gone(trained, tmp_path):
    original = _copy(trained, tmp_path / "original")
    moved = _copy(original.parent, tmp_path / "elsewhere" / "copy")
    engine = Engine.open(moved)
    assert engine.run(1).bundle_path == str(moved.with_name("shop.sqlite.runs") / "1" / "bundle")
    shutil.rmtree(original.parent)
    assert len(engine.recommend(1, _a_user(engine), k=5)) == 5
    engine.workspace.close()


def test_absolute_paths_of_older_releases_are_read_inside_the_workspace_they_are_in(trained, tmp_path):
    original = _copy(trained, tmp_path / "original")
    con = sqlite3.connect(original)
    con.execute("UPDATE runs SET bundle_path = ?", (str(original.with_name("shop.sqlite.runs") / "1" / "bundle"),))
    con.commit()
    con.close()
    copy = _copy(original.parent, tmp_path / "copy")
    engine = Engine.open(copy)
    assert engine.run(1).bundle_path.startswith(str(copy.parent))  # never the original's model
    shutil.rmtree(original.parent)
    assert engine.recommend(1, _a_user(engine), k=3)
    engine.workspace.close()


def test_a_copy_without_its_runs_folder_says_what_is_missing(trained, tmp_path):
    (tmp_path / "lone").mkdir()
    shutil.copy(trained / "shop.sqlite", tmp_path / "lone" / "shop.sqlite")
    engine = Engine.open(tmp_path / "lone" / "shop.sqlite")
    with pytest.raises(BundleError, match=r"run #1's model is missing: .*lone/shop\.sqlite\.runs/1/bundle") as error:
        engine.recommend(1, _a_user(engine))
    assert error.value.hint == "Move or copy a workspace together with its shop.sqlite.runs folder."
    engine.workspace.close()


def test_a_run_whose_process_is_gone_reads_interrupted_and_resumes(trained, tmp_path):
    path = _copy(trained, tmp_path / "ws")
    engine = Engine.open(path)
    config = TrainConfig.for_data(engine.sequence_data(), model="pop")
    run_id, owner = runs.create_run(engine.workspace, {**config.to_json(), "split": None}, "x")
    assert engine.run(run_id).status == "running"  # its owner (this process) holds the lock
    with pytest.raises(ValueError, match="still training"):
        engine.delete_run(run_id)
    with pytest.raises(ValueError, match="training in another window"):
        engine.train(config, resume_run=run_id)
    owner.release()  # what the operating system does when the training process dies
    assert engine.run(run_id).status == "interrupted"
    assert [r.status for r in engine.runs()] == ["done", "interrupted"]
    resumed = engine.train(config, resume_run=run_id)
    assert (resumed.id, resumed.status) == (run_id, "done")
    with pytest.raises(ValueError, match="is done: only a cancelled, interrupted or failed run can be resumed"):
        engine.train(config, resume_run=run_id)
    engine.workspace.close()


def test_a_new_run_never_inherits_a_deleted_runs_leftover_folder(trained, tmp_path):
    path = _copy(trained, tmp_path / "ws")
    engine = Engine.open(path)
    leftover = runs.run_folder(engine.workspace, 2) / "checkpoint"
    leftover.mkdir(parents=True)  # a deletion killed after its commit, before removing the folder
    (leftover / "state.json").write_text("{}")
    run = engine.train(TrainConfig.for_data(engine.sequence_data(), model="pop"))
    assert run.id == 2 and not leftover.exists()
    engine.workspace.close()


def test_a_read_only_workspace_evaluates_without_storing(trained, tmp_path):
    path = _copy(trained, tmp_path / "ws")
    shutil.rmtree(path.with_name("shop.sqlite.cache"), ignore_errors=True)
    before = path.read_bytes()
    engine = Engine(Workspace.open(path, read_only=True))
    report = engine.evaluate(1)
    assert report["metrics"]["ndcg@10"] == pytest.approx(engine.run(1).metric("ndcg@10"))
    assert engine.recommend(1, _a_user(engine), k=3) and engine.interests(1, _a_user(engine))
    engine.workspace.close()
    assert path.read_bytes() == before and not path.with_name("shop.sqlite.cache").exists()


def test_a_trashed_run_is_restored_with_its_model_and_active_mark(trained, tmp_path):
    engine = Engine.open(_copy(trained, tmp_path / "ws"))
    engine.set_active_run(1)
    user = _a_user(engine)
    before = engine.recommend(1, user, k=5)
    trashed = engine.trash_run(1)
    assert engine.runs() == [] and engine.active_run() is None
    assert not runs.run_folder(engine.workspace, 1).exists() and trashed.folder.is_dir()
    assert engine.restore_run(trashed) == 1
    assert engine.active_run() == 1 and engine.recommend(1, user, k=5) == before
    trashed = engine.trash_run(1)
    engine.empty_trash(trashed)
    assert not trashed.folder.exists()
    engine.workspace.close()


def test_what_a_crashed_studio_left_in_the_trash_is_swept_and_a_live_ones_undo_is_kept(trained, tmp_path):
    import subprocess
    import sys

    engine = Engine.open(_copy(trained, tmp_path / "ws"))
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    mine = engine.trash_run(1)  # this process is alive: its Undo must keep working
    crashed = mine.folder.with_name(f"7-{int(ended.stdout)}-deadbeef")
    crashed.mkdir()
    older_release = mine.folder.with_name("8-cafef00d")
    older_release.mkdir()
    assert engine.sweep_trash() == 2
    assert mine.folder.is_dir() and not crashed.exists() and not older_release.exists()
    assert engine.restore_run(mine) == 1
    engine.workspace.close()


def test_a_trashed_run_whose_id_was_taken_comes_back_under_a_new_one(trained, tmp_path):
    engine = Engine.open(_copy(trained, tmp_path / "ws"))
    trashed = engine.trash_run(1)
    engine.train(TrainConfig.for_data(engine.sequence_data(), model="pop"))  # takes id 1 again
    restored = engine.restore_run(trashed)
    assert restored == 2 and [run.id for run in engine.runs()] == [1, 2]
    assert len(engine.recommend(restored, _a_user(engine), k=5)) == 5
    engine.workspace.close()


def test_a_run_exports_its_bundle_folder_and_never_overwrites(trained, tmp_path):
    from core.bundles import load_bundle
    from core.errors import UsageError

    engine = Engine.open(_copy(trained, tmp_path / "ws"))
    target = engine.export_bundle(1, tmp_path / "exported")
    assert load_bundle(target, engine.sequence_data()).model == "pop"
    with pytest.raises(UsageError, match="already exists"):
        engine.export_bundle(1, tmp_path / "exported")
    engine.workspace.close()
