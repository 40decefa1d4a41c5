"""The studio on a read-only workspace, and on a run whose training process died."""

from __future__ import annotations

import pytest

from core import runs
from core.engine import Engine
from core.store import Workspace
from tests.studio.trained_workspace import open_trained_copy, tiny_config, wait_for_history


def test_a_read_only_workspace_is_browsed_with_what_writes_disabled(qtbot, wait_idle, window, tmp_path):
    trained = open_trained_copy(tmp_path)
    path = trained.workspace.path
    trained.workspace.close()
    before = path.read_bytes()
    window._use_engine(Engine(Workspace.open(path, read_only=True)))
    wait_idle(window.context)
    assert not window.status.read_only_label.isHidden() and "(read-only)" in window.windowTitle()
    assert not window.import_action.isEnabled() and window.export_action.isEnabled()
    assert not window.page("Data").import_button.isEnabled()
    window.show_page("Train")  # the page reads its setup once seen
    train = window.page("Train")
    qtbot.waitUntil(lambda: train.setup is not None, timeout=10_000)
    done = next(run for run in window.context.engine.runs() if run.status == "done")
    train.run_table.select_run(done.id)
    assert not train.train_button.isEnabled() and not train.delete_button.isEnabled()
    assert train.active_button.isEnabled()
    train.active_button.click()  # chosen for this session, not stored
    qtbot.waitUntil(lambda: window.context.engine.active_run() == done.id, timeout=5000)
    window.context.set_engine(None)
    assert path.read_bytes() == before and window.status.read_only_label.isHidden()


def test_a_run_whose_process_died_is_shown_interrupted_and_resumes(qtbot, wait_idle, context, tmp_path):
    from studio.pages.train import TrainPage

    engine = open_trained_copy(tmp_path)
    config = tiny_config("pop")
    run_id, owner = runs.create_run(engine.workspace, config.to_json(), engine.content_hash())
    owner.release()  # the training process is gone (kill -9, power loss)
    context.set_engine(engine)
    page = TrainPage(context)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: page.train_button.isEnabled(), timeout=10_000)
    wait_for_history(qtbot, page)
    page.run_table.select_run(run_id)
    assert page.run_table.selected_run().status == "interrupted" and page.resume_button.isEnabled()
    page.resume_button.click()
    with qtbot.waitSignal(page.job.returned, timeout=30_000):
        pass
    wait_idle(context)
    assert engine.run(run_id).status == "done"


def test_the_engine_s_modules_load_without_collections_and_are_then_frozen_once(monkeypatch):
    """Once: and never asking the collector how many objects it froze (it counts them one by one,
    48 ms under the interpreter lock at every workspace opened)."""
    import gc

    import studio.workspace_opening as opening

    calls = []
    monkeypatch.setattr(opening, "_ENGINE_MODULES_FROZEN", False)
    monkeypatch.setattr(gc, "get_freeze_count", lambda: pytest.fail("counted the frozen objects"))
    for name in ("disable", "enable", "freeze"):
        monkeypatch.setattr(gc, name, lambda name=name: calls.append(name))
    assert opening.engine_class() is opening.engine_class()
    assert calls == ["disable", "enable", "freeze"]
