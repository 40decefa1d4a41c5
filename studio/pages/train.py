"""The Train page: choose a model and its settings, watch it learn, and manage the runs.

Training runs in a worker through ``engine.train``; its progress reports become the live
curves (per-step loss, per-epoch loss and validation NDCG@10 / HR@10), the progress bar and
the log. Stop sets the job's cancel token: the engine checks it before every step, keeps the
last complete checkpoint and marks the run cancelled, and Resume continues that run.

The settings panel is ``train_settings.TrainSettings``, the curves, progress and log
``train_monitor.TrainingMonitor``; this module holds the page: its buttons, the training job and
the run history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from PySide6.QtWidgets import QFileDialog, QGroupBox, QHBoxLayout, QMessageBox, QPushButton, QVBoxLayout, QWidget

from core.progress import Progress
from core.runs import UnknownRunError
from core.store.schema import RESUMABLE
from studio.context import StudioContext
from studio.dialogs.errors import show_error
from studio.pages import StudioPage
from studio.pages.train_monitor import TrainingMonitor
from studio.pages.train_settings import TrainSettings
from studio.pages.train_setup import TrainingSetup, load_setup
from studio.widgets.run_table import RunTable, model_name, read_runs, run_label
from studio.workers import Job

TRAIN_TIP = "Start a new training run with these settings (Ctrl+T)"
NO_EVENTS = "This workspace has no events yet: import a behaviour log on the Data page, then train."


class TrainPage(StudioPage):
    title = "Train"
    tooltip = "Train a model or a baseline, watch it learn, and manage the runs"

    def __init__(self, context: StudioContext, parent: Optional[QWidget] = None) -> None:
        super().__init__(context, parent)
        self.job: Optional[Job] = None
        self.setup: Optional[TrainingSetup] = None
        self._run_listed = True  # the job's run shows in the history (set False when a job starts)
        self._runs_job: Optional[Job] = None  # the latest read of the run history: only its answer is shown
        self._runs_read: tuple[list, Optional[int]] = ([], None)  # the latest history read, shown once seen
        self._lag_job: Optional[Job] = None  # the latest read of the selected run's lag: only its answer is shown
        self.lag: Optional[tuple[int, Any]] = None  # (run id, core.runs.lag.RunLag) the Update button offers
        self.lay_out_side_by_side(self._build_settings(), self._build_monitor(), (340, 900))
        context.workspace_changed.connect(self.refresh)
        context.data_changed.connect(self._load_defaults_when_seen)
        context.runs_changed.connect(self._refresh_runs)
        context.active_run_changed.connect(lambda _run: self._refresh_runs())
        self.refresh()

    # -- layout ---------------------------------------------------------------------------

    def _build_settings(self) -> QWidget:
        """The settings panel, and the run buttons below it."""
        self.settings = TrainSettings(self.context)
        self.train_button = QPushButton("Train")
        self.train_button.setProperty("role", "primary")
        self.train_button.setShortcut("Ctrl+T")
        self.train_button.setToolTip(TRAIN_TIP)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the run within a second; its last checkpoint is kept for Resume")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the selected stopped or interrupted run from its last checkpoint")
        self.update_button = QPushButton("Update model")
        self.update_button.setToolTip("Offered when the log has grown since the selected run was trained")
        buttons = QHBoxLayout()
        for button in (self.train_button, self.stop_button, self.resume_button, self.update_button):
            buttons.addWidget(button)
        panel = QWidget()
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.settings, 1)
        layout.addLayout(buttons)
        self.settings.model_changed.connect(self._update_buttons)
        self.settings.defaults_button.clicked.connect(self._load_defaults)
        self.train_button.clicked.connect(lambda: self.start_training())
        self.stop_button.clicked.connect(self.stop_training)
        self.resume_button.clicked.connect(self.resume_selected)
        self.update_button.clicked.connect(self.update_selected)
        return panel

    def _build_monitor(self) -> QWidget:
        self.monitor = TrainingMonitor()
        self.run_table = RunTable()
        self.run_table.setToolTip("Every run of this workspace; double-click one to make it the active model")
        self.active_button = QPushButton("Use as active model")
        self.active_button.setToolTip("Explore and exports use the active model")
        self.export_model_button = QPushButton("Export model…")
        self.export_model_button.setToolTip("Copy the selected finished run's model (a folder of safetensors and "
                                            "JSON) to a folder of your choice, for nextpick serve or another machine")
        self.delete_button = QPushButton("Delete run")
        self.delete_button.setToolTip("Delete the selected run and its saved model; Undo brings it back until "
                                      "the studio closes")
        self.undo_button = QPushButton("Undo delete")
        self.undo_button.setToolTip("Bring back the run deleted last, with its model")
        self.undo_button.hide()
        history = QGroupBox("Run history")
        history_layout = QVBoxLayout(history)
        history_layout.addWidget(self.run_table, 1)
        history_layout.addWidget(self.run_table.details)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.active_button)
        row.addWidget(self.export_model_button)
        row.addWidget(self.delete_button)
        row.addWidget(self.undo_button)
        history_layout.addLayout(row)
        self.monitor.add_history(history)
        self.active_button.clicked.connect(self._on_use_active)
        self.delete_button.clicked.connect(self._on_delete)
        self.undo_button.clicked.connect(self._on_undo_delete)
        self.export_model_button.clicked.connect(self._on_export_model)
        self.run_table.run_activated.connect(self.make_active)
        self.run_table.itemSelectionChanged.connect(self._update_buttons)
        self.run_table.itemSelectionChanged.connect(self._show_selected_history)
        return self.monitor

    # -- state ----------------------------------------------------------------------------

    @property
    def engine(self):
        return self.context.engine

    def refresh(self) -> None:
        """A workspace (or none) was opened: defaults and runs follow it; until they arrive, nothing is
        offered and the previous workspace's runs are gone."""
        self._load_defaults_when_seen()
        self.run_table.set_runs([])
        self._refresh_runs()
        self._update_buttons()

    def _load_defaults_when_seen(self) -> None:
        """Read the setup once the page shows: at 25M events its worker copies and partitions every
        event's time (the split's default cut-off), which held the window ~100 ms and slowed the Explore
        page's first answer as a workspace opened on another page."""
        self.paint_when_seen(self._load_defaults)

    def _load_defaults(self) -> None:
        if self.engine is None:
            return
        model = self.settings.model_box.currentData() or "sasrec"
        job = self.context.run(load_setup, self.engine, model, progress=False, cancel=False)
        job.returned.connect(self._on_setup)
        job.errored.connect(lambda exc: show_error(self, exc, "Reading the data"))

    def _on_setup(self, setup: TrainingSetup) -> None:
        self.setup = setup
        self.settings.set_setup(setup)

    def _refresh_runs(self) -> None:
        """Read the history in a worker; the latest read started is the one shown."""
        self._runs_job = None
        if self.engine is None:
            return
        job = self._runs_job = self.context.run(read_runs, self.engine, progress=False, cancel=False)
        job.returned.connect(lambda result: self._show_runs(job, *result))
        job.errored.connect(lambda exc: job is self._runs_job and show_error(self, exc, "Reading the runs"))

    def _show_runs(self, job: Job, runs: list, active: Optional[int]) -> None:
        if not self.answers_now(job, self._runs_job):
            return  # another workspace opened, the runs changed again, or the page is gone since it started
        self._runs_read = (runs, active)
        self.paint_when_seen(self._fill_runs)

    def _fill_runs(self) -> None:
        """The history and the selected run's curves, once the page is seen: drawn behind the Explore
        page as a 25M-event workspace opened, they held the window 55 ms (bench_gui.py --watchdog)."""
        runs, active = self._runs_read
        self.run_table.set_runs(runs, active)
        if self.run_table.selected_run_id() is None and self.run_table.runs:
            self.run_table.select_run(active or self.run_table.runs[-1].id)
        self._update_buttons()

    def _show_selected_history(self) -> None:
        """While nothing trains, the curves show the selected run's epochs."""
        run = self.run_table.selected_run()
        if run is None or (self.job is not None and self.job.running):
            return
        self.monitor.show_epochs_of(run, popularity_validation(self.run_table.runs, run.split, of_run=run))

    def _update_buttons(self) -> None:
        has_engine = self.engine is not None and self.setup is not None
        writable = not self.context.read_only
        training = self.job is not None and self.job.running
        selected = self.run_table.selected_run()
        no_events = has_engine and self.setup.events == 0
        self.train_button.setEnabled(has_engine and writable and not training and not no_events)
        self.train_button.setToolTip(NO_EVENTS if no_events else TRAIN_TIP)
        if no_events:
            self.monitor.progress_text.setText(NO_EVENTS)
        self.stop_button.setEnabled(training)
        self.resume_button.setEnabled(has_engine and writable and not training and selected is not None
                                      and selected.status in RESUMABLE)
        self._offer_update(selected if has_engine and writable and not training else None)
        self.active_button.setEnabled(selected is not None and selected.status == "done")
        self.delete_button.setEnabled(selected is not None and writable and not training)
        self.export_model_button.setEnabled(selected is not None and selected.status == "done")
        self.undo_button.setVisible(bool(self.context.trash) and writable)
        self.settings.defaults_button.setEnabled(has_engine and not training)
        self.settings.estimate_button.setEnabled(has_engine and not training and self.settings.neural_chosen())

    def _offer_update(self, run) -> None:
        """The Update button is enabled for a finished run the log has grown past, and says by how much;
        the lag is read in a worker (the button keeps its state for the same run until it arrives)."""
        self._lag_job = None
        if run is None or run.status != "done":
            self._show_lag(None, run, None)
            return
        if self.lag is not None and self.lag[0] != run.id:
            self._show_lag(None, run, None)  # another run's offer must not stand while this one's is read
        job = self._lag_job = self.context.run(self.engine.run_lag, run.id, progress=False, cancel=False)
        job.returned.connect(lambda lag: self._show_lag(job, run, lag))
        job.errored.connect(lambda exc: self._on_lag_failed(job, run, exc))

    def _on_lag_failed(self, job: Job, run, exc: BaseException) -> None:
        if self.answers_now(job, self._lag_job) and not isinstance(exc, UnknownRunError):  # else deleted a moment ago: the history is refreshed next
            show_error(self, exc, "Reading how far the run is behind the log")
        self._show_lag(job, run, None)

    def _show_lag(self, job: Optional[Job], run, lag) -> None:
        if not self.answers_now(job, self._lag_job):
            return  # another run was selected, the buttons were updated again, or the page is gone
        self.lag = (run.id, lag) if lag is not None else None
        grown = lag is not None and bool(lag.newer_events)
        self.update_button.setEnabled(grown)
        self.update_button.setToolTip(
            f"Fine-tune {run_label(run)} on what the log gained since it was trained ({lag.describe()}): "
            "a new run, within a tenth of the full training's time" if grown else
            "Offered when the log has grown since the selected run was trained")

        return job

    def start_training(self, config=None, resume_run: Optional[int] = None) -> Optional[Job]:
        """Train ``config`` (default: the panel's) or continue ``resume_run``; returns the Job."""
        if self.engine is None:
            return None
        from core.engine import Engine  # loaded with the workspace already

        config = config or self.settings.current_config()
        split = None if resume_run else self.settings.split_picker.choice()  # a resumed run keeps its own split
        verb = f"Resuming run #{resume_run}" if resume_run else f"Training ({split.describe()})"
        runs = self.run_table.runs
        on_split = split if split is not None else next((r.split for r in runs if r.id == resume_run), None)
        return self._start_job(f"{verb}: {model_name(config.model)} on {self._device_in_words()}",
                               popularity_validation(runs, on_split),
                               "training", Engine.train, config, resume_run=resume_run, split=split)

    def update_selected(self) -> Optional[Job]:
        """Update the selected run (``Engine.update``): a child run caught up with the newer events."""
        from core.engine import Engine  # loaded with the workspace already

        run = self.run_table.selected_run()
        if self.engine is None or run is None or self.lag is None or self.lag[0] != run.id:
            return None
        return self._start_job(f"Updating {run_label(run)}: {self.lag[1].describe()}",
                               popularity_validation(self.run_table.runs, run.split),
                               "update", Engine.update, run.id)

    def _start_job(self, line: str, baseline, name: str, work, *args, **kwargs) -> Job:
        """Run ``work`` (an ``Engine`` method) in the job process with the page following its progress;
        ``line`` opens the log, ``baseline`` is popularity's validation score on the same split (drawn
        dashed), or None; ``name`` is the job's, for a process that dies under it."""
        self.monitor.begin(line, baseline)
        self._run_listed = False
        self.job = self.context.run_in_process(work, *args, name=name, **kwargs)
        self.job.progress.connect(self._on_progress)
        self.job.returned.connect(self._on_finished)
        self.job.aborted.connect(self._on_cancelled)
        self.job.errored.connect(self._on_failed)
        self.job.finished.connect(self._on_ended)
        self._update_buttons()
        return self.job

    def stop_training(self) -> None:
        if self.job is not None and self.job.running:
            self.job.cancel()
            self.stop_button.setEnabled(False)
            self.monitor.write("Stopping after the current step…")

    def resume_selected(self) -> None:
        run = self.run_table.selected_run()
        if run is not None:
            config = type(self.setup.defaults).from_json(run.config)
            self.start_training(config, resume_run=run.id)

    def _device_in_words(self) -> str:
        """The device the run really uses: "CPU (2 threads)" or the GPU's name, never "Automatic"."""
        if self.settings.device_box.currentData() == "cpu":
            import torch  # loaded with the engine already

            from core.training import device_name

            return device_name(torch.device("cpu"))
        return self.engine.device_name()

    def _on_progress(self, report: Progress) -> None:
        if not self._run_listed:  # the run's row exists once the job reports: list it while it trains
            self._run_listed = True
            self._refresh_runs()
        self.monitor.follow(report)

    def _on_finished(self, run: Any) -> None:
        """A run worse than popularity is told so (by the monitor) and not made active; else it becomes the
        active model when none is, or when it updated the active run."""
        self.monitor.finished(run)
        if run.beats_popularity is not False and self.run_table.active_run in (None, run.id):
            self.make_active(run.id)

    def _on_cancelled(self) -> None:
        self.monitor.cancelled()

    def _on_failed(self, exc: BaseException) -> None:
        self.monitor.failed(exc)
        show_error(self, exc, "Training")

    def _on_ended(self) -> None:
        self.context.announce_runs_changed()
        self._update_buttons()

    # -- run history ----------------------------------------------------------------------

    def _on_use_active(self) -> None:
        run_id = self.run_table.selected_run_id()
        if run_id is not None:
            self.make_active(run_id)

    def make_active(self, run_id: int) -> Optional[Job]:
        """Store ``run_id`` as the active model in a worker; the history marks it once stored."""
        job = self.context.set_active_run(run_id)
        if job is not None:
            self.active_button.setEnabled(False)
            job.errored.connect(lambda exc: show_error(self, exc, f"Making run #{run_id} the active model"))
            job.finished.connect(self._update_buttons)
        return job

    def _on_delete(self) -> None:
        """Into the session's trash at once, no question asked: Undo is the safety net."""
        run = self.run_table.selected_run()
        if run is None:
            return
        # In a worker: the deletion may have to wait for an import in another window.
        job = self.context.run(self.engine.trash_run, run.id, progress=False, cancel=False)
        job.returned.connect(lambda trashed: self._on_trashed(trashed, run_label(run)))
        job.errored.connect(lambda exc: show_error(self, exc, "Deleting the run"))
        job.finished.connect(self.context.announce_runs_changed)
        job.finished.connect(self._update_buttons)  # after the run list has dropped the deleted run

    def _on_trashed(self, trashed, label: str) -> None:
        self.context.trash.append(trashed)
        self.undo_button.setToolTip(f"Bring back {label}, with its model")
        self.monitor.progress_text.setText(f"Deleted {label}. Undo delete brings it back until the studio closes.")

    def _on_undo_delete(self) -> None:
        if not self.context.trash or self.engine is None:
            return
        trashed = self.context.trash.pop()
        job = self.context.run(self.engine.restore_run, trashed, progress=False, cancel=False)
        job.returned.connect(lambda run_id: self._on_restored(run_id, trashed))
        job.errored.connect(lambda exc: (self.context.trash.append(trashed), show_error(self, exc, "Undoing the delete")))
        job.finished.connect(self.context.announce_runs_changed)

    def _on_restored(self, run_id: int, trashed) -> None:
        self.monitor.progress_text.setText(f"Run #{run_id} is back.")
        if trashed.was_active:
            self.make_active(run_id)
        self._update_buttons()

    def _on_export_model(self) -> None:
        run = self.run_table.selected_run()
        if run is None or self.engine is None:
            return
        parent = QFileDialog.getExistingDirectory(self, "Export the model into folder", str(Path.home()))
        if not parent:
            return
        destination = Path(parent) / f"nextpick-run{run.id}-{run.model}"
        job = self.context.run(self.engine.export_bundle, run.id, destination, progress=False, cancel=False)
        job.returned.connect(lambda path: QMessageBox.information(
            self, "Export model", f"Saved the model of {run_label(run)} to {path} (safetensors weights with a "
                                  "JSON manifest of its settings and catalogue)."))
        job.errored.connect(lambda exc: show_error(self, exc, "Exporting the model"))


def popularity_validation(runs, split, of_run=None) -> Optional[float]:
    """Validation NDCG@10 of popularity on ``split``: the line a model's validation curve has to climb
    above. ``of_run``'s own figure where it measured one on its epochs' users (a neural run trained
    afresh measures popularity beside it), else the latest finished popularity baseline's; None
    when neither exists."""
    own = (of_run.metrics or {}).get("popularity", {}).get("valid", {}) if of_run is not None else {}
    if "ndcg@10" in own and of_run.parent is None:  # an update's epochs validate on its newest events
        return float(own["ndcg@10"])
    for run in sorted(runs, key=lambda run: -run.id):
        if run.model == "pop" and run.status == "done" and split is not None and run.split == split:
            value = (run.metrics or {}).get("valid", {}).get("ndcg@10")
            if value is not None:
                return float(value)
    return None
