"""The Train page trains through the engine in a worker: live curves, Stop, run history (its settings and
presets: test_train_settings.py)."""

from __future__ import annotations

import dataclasses
import os
import signal

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from core.training import TrainConfig
from studio.pages.train import TrainPage
from tests.studio.trained_workspace import tiny_config, train_page, wait_for_history  # noqa: F401 (the page fixture)


def test_form_is_generated_from_train_config_with_data_sized_defaults(qtbot, page):
    qtbot.waitUntil(lambda: page.settings.form is not None, timeout=10_000)
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "device", "time_budget"}
    assert set(page.settings.form.editors) == fields
    assert page.settings.form.editors["hidden"].value() == 32  # small data → narrow model
    page.settings.form.editors["text"].setChecked(False)  # the item-text switch (the [text] extra's language model)
    assert page.settings.form.config(model="gru", device="cpu").text is False
    gpu = page.settings.device_box.model().item(2)
    import torch

    assert gpu.isEnabled() == torch.cuda.is_available()


def test_training_shows_curve_points_and_stop_cancels_within_a_second(qtbot, page):
    runs_before = len(page.context.engine.runs())
    config = tiny_config("gru", epochs=200, patience=200)
    job = page.start_training(config)
    qtbot.waitUntil(lambda: page.monitor.charts.ndcg_curve.getData()[1] is not None, timeout=60_000)  # drawn
    assert page.monitor.charts.ndcg_curve.getData()[1][0] >= 0.0
    assert page.monitor.progress_bar.maximum() > 0 and "sequences/s" in page.monitor.progress_text.text()
    assert not page.train_button.isEnabled() and page.stop_button.isEnabled()
    with qtbot.waitSignal(job.aborted, timeout=1000):
        page.stop_button.click()
    qtbot.waitUntil(lambda: page.train_button.isEnabled(), timeout=2000)
    runs = page.context.engine.runs()
    assert len(runs) == runs_before + 1
    stopped = max(runs, key=lambda run: run.id)
    assert stopped.status == "cancelled"
    wait_for_history(qtbot, page)
    page.run_table.select_run(stopped.id)
    assert page.resume_button.isEnabled()


def test_a_killed_training_process_is_reported_and_its_run_can_be_resumed(qtbot, page):
    """The job process dies as under the kernel's out-of-memory killer; the window stays and says so."""
    job = page.start_training(tiny_config("gru", epochs=200, patience=200))
    qtbot.waitUntil(lambda: len(page.monitor.charts.epochs) >= 1, timeout=60_000)
    with qtbot.waitSignals([job.errored, job.finished], timeout=30_000, order="strict"):
        os.kill(page.context.jobs.server.pid, signal.SIGKILL)
    dialog = page.findChild(QMessageBox, "errorDialog")
    assert dialog.text() == "The training process ended unexpectedly (exit code -9: probably out of memory)."
    assert "resumed" in dialog.informativeText()
    dialog.close()
    killed = max(page.context.engine.runs(), key=lambda run: run.id)
    assert killed.status == "interrupted"
    qtbot.waitUntil(lambda: page.train_button.isEnabled(), timeout=5000)
    wait_for_history(qtbot, page)
    page.run_table.select_run(killed.id)
    assert page.resume_button.isEnabled()


def test_resume_continues_the_stopped_run_from_its_checkpoint(qtbot, page):
    job = page.start_training(tiny_config("gru", epochs=200, patience=200))
    qtbot.waitUntil(lambda: len(page.monitor.charts.epochs) >= 1, timeout=60_000)
    with qtbot.waitSignal(job.finished, timeout=2000):
        page.stop_training()
    stopped = max(page.context.engine.runs(), key=lambda run: run.id)
    wait_for_history(qtbot, page)
    page.run_table.select_run(stopped.id)
    page.resume_button.click()
    resumed = page.job
    assert resumed is not job and resumed.running
    qtbot.waitUntil(lambda: len(page.monitor.charts.epochs) >= 1, timeout=60_000)
    assert page.monitor.charts.epochs[0][0] >= 2  # epoch 1 came from the checkpoint, not trained again
    with qtbot.waitSignal(resumed.aborted, timeout=1000):
        page.stop_button.click()
    runs = page.context.engine.runs()
    assert max(run.id for run in runs) == stopped.id  # the same run continued; no new one
    assert page.context.engine.run(stopped.id).status == "cancelled"


def test_baseline_run_can_become_active_be_deleted_and_undeleted(qtbot, page, monkeypatch):
    engine = page.context.engine
    page.settings.model_box.setCurrentIndex(page.settings.model_box.findData("recentpop"))
    assert not page.settings.form.isEnabled() and page.settings.baseline_note.isVisibleTo(page)
    job = page.start_training()
    with qtbot.waitSignal(job.finished, timeout=30_000):
        pass
    wait_for_history(qtbot, page)
    run = next(run for run in page.run_table.runs if run.model == "recentpop")
    assert run.status == "done"
    page.run_table.select_run(run.id)
    page.active_button.click()
    qtbot.waitUntil(lambda: "★" in page.run_table.item(page.run_table.currentRow(), 0).text(), timeout=5000)
    assert engine.active_run() == run.id
    page.delete_button.click()  # no question: Undo is the safety net
    qtbot.waitUntil(lambda: all(r.id != run.id for r in page.run_table.runs), timeout=5000)
    assert all(r.id != run.id for r in engine.runs()) and page.undo_button.isVisibleTo(page)
    page.undo_button.click()
    qtbot.waitUntil(lambda: any(r.id == run.id for r in page.run_table.runs), timeout=5000)
    qtbot.waitUntil(lambda: engine.active_run() == run.id, timeout=5000)
    assert not page.undo_button.isVisibleTo(page)
    page.run_table.select_run(run.id)
    page.delete_button.click()
    qtbot.waitUntil(lambda: bool(page.context.trash), timeout=5000)
    folder = page.context.trash[-1].folder
    assert folder.exists()
    page.context.empty_trash()  # what closing the studio does
    assert not folder.exists() and not page.context.trash


def test_a_finished_run_exports_its_model_folder(qtbot, page, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog

    from core.bundles import read_manifest

    done = next(run for run in page.run_table.runs if run.status == "done")
    page.run_table.select_run(done.id)
    assert page.export_model_button.isEnabled()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(tmp_path))
    shown = []
    monkeypatch.setattr(QMessageBox, "information", lambda *args: shown.append(args[2]))
    page.export_model_button.click()
    qtbot.waitUntil(lambda: bool(shown), timeout=10_000)
    exported = tmp_path / f"nextpick-run{done.id}-{done.model}"
    assert read_manifest(exported)["model"] == done.model and str(exported) in shown[0]


def test_a_run_worse_than_popularity_is_flagged_and_not_made_active(qtbot, page):
    engine = page.context.engine
    engine.set_active_run(None)
    job = page.start_training(tiny_config("gru", lr=1e-9))
    with qtbot.waitSignal(job.finished, timeout=60_000):
        pass
    run = max(engine.runs(), key=lambda r: r.id)
    assert run.beats_popularity is False and engine.active_run() is None
    assert "did not beat popularity" in page.monitor.log.toPlainText()
    wait_for_history(qtbot, page)
    row = [r.id for r in page.run_table.runs].index(run.id)
    assert page.run_table.item(row, 2).text() in ("done · worse than popularity",
                                                   "done · not clearly better than popularity")  # untrained: a tie


def test_a_workspace_without_events_disables_train_and_says_why(qtbot, context, engine):
    from studio.pages.train import NO_EVENTS

    context.set_engine(engine)
    page = TrainPage(context)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: page.setup is not None, timeout=10_000)
    assert not page.train_button.isEnabled()
    assert page.train_button.toolTip() == NO_EVENTS and page.monitor.progress_text.text() == NO_EVENTS


def test_a_running_run_is_listed_at_once_a_stopped_one_says_where_it_stopped(qtbot, page):
    from studio.widgets.run_table import status_text

    runs_before = {run.id for run in page.run_table.runs}
    job = page.start_training(tiny_config("gru", epochs=200, patience=200))
    log = page.monitor.log.toPlainText()
    assert "Automatic" not in log and ("CPU (" in log or "NVIDIA" in log)
    qtbot.waitUntil(lambda: any(run.id not in runs_before and run.status == "running"
                                for run in page.run_table.runs), timeout=30_000)
    qtbot.waitUntil(lambda: len(page.monitor.charts.epochs) >= 1, timeout=60_000)
    with qtbot.waitSignal(job.finished, timeout=2000):
        page.stop_training()
    stopped = max(page.context.engine.runs(), key=lambda run: run.id)
    epochs = len(stopped.metrics["training"]["epochs"])
    assert epochs >= 1 and status_text(stopped) == f"stopped at epoch {epochs} (resumable)"
    wait_for_history(qtbot, page)
    page.run_table.select_run(stopped.id)
    qtbot.waitUntil(lambda: len(page.monitor.charts.epochs) == epochs)  # its curves are kept
    row = next(r for r, run in enumerate(page.run_table.runs) if run.id == stopped.id)
    assert page.run_table.item(row, 2).text() == status_text(stopped)


def test_the_validation_chart_shows_the_popularity_baseline_of_the_same_split(qtbot, page):
    from studio.pages.train import popularity_validation

    pop = next(run for run in page.run_table.runs if run.model == "pop" and run.status == "done")
    page.run_table.select_run(pop.id)
    expected = popularity_validation(page.run_table.runs, pop.split)
    assert expected == pop.metrics["valid"]["ndcg@10"]
    assert page.monitor.charts.baseline_line.isVisible() and page.monitor.charts.baseline_line.value() == expected


def test_a_neural_runs_curves_climb_against_the_popularity_it_measured_on_its_own_users(qtbot, page):
    from studio.pages.train import popularity_validation

    run = next(run for run in page.run_table.runs if run.model != "pop" and run.metrics.get("popularity"))
    own = run.metrics["popularity"]["valid"]["ndcg@10"]
    assert popularity_validation([run], run.split, of_run=run) == own  # with no popularity run beside it
    page.run_table.select_run(run.id)
    qtbot.waitUntil(lambda: page.monitor.charts.baseline_line.isVisible()
                    and page.monitor.charts.baseline_line.value() == own)


def test_making_a_run_active_writes_in_a_worker_and_the_history_follows_once_stored(qtbot, page, monkeypatch):
    import threading

    engine = page.context.engine
    done = [run for run in page.run_table.runs if run.status == "done" and run.id != engine.active_run()][0]
    release, writers = threading.Event(), []
    store = engine.set_active_run

    def held_write(run_id):  # a write that waits, as for another window's import
        writers.append(threading.current_thread())
        release.wait(10)
        store(run_id)

    monkeypatch.setattr(engine, "set_active_run", held_write)
    page.run_table.select_run(done.id)
    page.active_button.click()  # returns at once: the window keeps painting while the write waits
    qtbot.waitUntil(lambda: bool(writers), timeout=5000)
    assert writers[0] is not threading.main_thread()
    row = page.run_table.currentRow()
    assert "★" not in page.run_table.item(row, 0).text()  # not marked before it is stored
    release.set()
    qtbot.waitUntil(lambda: "★" in page.run_table.item(page.run_table.currentRow(), 0).text(), timeout=5000)
    assert engine.active_run() == done.id


def test_a_busy_workspace_never_freezes_the_window_and_the_error_says_to_wait(qtbot, page):
    import sqlite3

    engine = page.context.engine
    before = engine.active_run()
    done = [run for run in page.run_table.runs if run.status == "done" and run.id != before][0]
    engine.workspace.write_wait_s = 1.0
    other = sqlite3.connect(engine.workspace.path, isolation_level=None)  # another window's import
    other.execute("BEGIN IMMEDIATE")
    ticks = []
    clock = QTimer()
    clock.timeout.connect(lambda: ticks.append(1))
    clock.start(10)
    try:
        page.run_table.select_run(done.id)
        page.active_button.click()
        qtbot.waitUntil(lambda: page.findChild(QMessageBox, "errorDialog") is not None, timeout=10_000)
    finally:
        clock.stop()
        other.rollback()
        other.close()
    assert ticks  # the event loop ran while the write waited for the lock
    dialog = page.findChild(QMessageBox, "errorDialog")
    assert dialog.windowTitle().startswith(f"Making run #{done.id} the active model")
    assert "is busy" in dialog.text()
    assert "try again" in dialog.informativeText()
    dialog.close()
    assert engine.active_run() == before and "★" not in page.run_table.item(page.run_table.currentRow(), 0).text()


def test_the_run_history_and_the_lag_are_read_off_the_window_thread_and_the_latest_read_wins(qtbot, page,
                                                                                             monkeypatch):
    import threading

    from PySide6.QtCore import QThreadPool

    engine = page.context.engine
    runs, threads, started, release = engine.runs(), [], threading.Event(), threading.Event()

    def recorded(read):
        def call(*args, **kwargs):
            threads.append(threading.current_thread())
            return read(*args, **kwargs)
        return call

    def runs_first_held_then_one_fewer():
        if not started.is_set():  # the first read answers last, with what the second already replaced
            started.set()
            release.wait(10)
            return runs
        return runs[:-1]

    for name in ("active_run", "run_lag"):
        monkeypatch.setattr(engine, name, recorded(getattr(engine, name)))
    monkeypatch.setattr(engine, "runs", recorded(runs_first_held_then_one_fewer))
    pool = QThreadPool.globalInstance()
    threads_before = pool.maxThreadCount()
    pool.setMaxThreadCount(max(threads_before, 2))  # the held read must leave a thread to the next one
    try:
        page.context.announce_runs_changed()
        stale = page._runs_job
        qtbot.waitUntil(started.is_set, timeout=5000)
        page.context.announce_runs_changed()
        qtbot.waitUntil(lambda: len(page.run_table.runs) == len(runs) - 1, timeout=5000)
        with qtbot.waitSignal(stale.finished, timeout=5000):
            release.set()
    finally:
        pool.setMaxThreadCount(threads_before)
    assert len(page.run_table.runs) == len(runs) - 1  # the stale answer was dropped
    done = next(run for run in page.run_table.runs if run.status == "done")
    page.run_table.select_run(done.id)
    qtbot.waitUntil(lambda: page.lag is not None and page.lag[0] == done.id, timeout=5000)
    assert threads and threading.main_thread() not in threads


def test_the_setup_is_read_only_once_the_page_shows(qtbot, context, imported_engine, monkeypatch):
    """Reading the setup copies and partitions every event's time: not while another page is in front."""
    import studio.pages.train as train_module

    reads = []
    real = train_module.load_setup
    monkeypatch.setattr(train_module, "load_setup", lambda *args: (reads.append(args), real(*args))[1])
    context.set_engine(imported_engine)
    page = TrainPage(context)
    qtbot.addWidget(page)
    context.announce_data_changed()
    qtbot.wait(200)
    assert reads == [] and page.setup is None
    page.show()
    qtbot.waitUntil(lambda: page.setup is not None, timeout=10_000)
    assert len(reads) == 1  # the open and the import asked once between them


def test_a_hidden_page_fills_its_history_and_curves_once_it_is_seen(qtbot, context, tmp_path):
    """Behind the Explore page as a big workspace opened, the history and the selected run's curves cost
    the window 55 ms: they are drawn when the page shows."""
    from tests.studio.trained_workspace import open_trained_copy

    context.set_engine(open_trained_copy(tmp_path))
    page = TrainPage(context)
    qtbot.addWidget(page)
    qtbot.waitUntil(lambda: bool(page._runs_read[0]), timeout=10_000)  # the history read has answered
    assert page.run_table.runs == []
    page.show()
    qtbot.waitUntil(lambda: len(page.run_table.runs) == len(context.engine.runs()), timeout=10_000)
    assert page.run_table.selected_run() is not None
