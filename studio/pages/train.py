"""The Train page: choose a model and its settings, watch it learn, and manage the runs.

Training runs in a worker through ``engine.train``; its progress reports become the live
curves (per-step loss, per-epoch loss and validation NDCG@10 / HR@10), the progress bar and
the log. Stop sets the job's cancel token: the engine checks it before every step, keeps the
last complete checkpoint and marks the run cancelled, and Resume continues that run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from PySide6.QtWidgets import (
    QButtonGroup, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QMessageBox, QPlainTextEdit,
    QProgressBar, QPushButton, QRadioButton, QScrollArea, QSplitter, QToolButton, QVBoxLayout, QWidget,
)
from PySide6.QtCore import Qt

from core.runs import UnknownRunError
from core.presets import PRESETS, about_minutes
from core.progress import Progress
from core.store.schema import RESUMABLE
from studio.context import StudioContext
from studio.dialogs.errors import show_error
from studio.pages import StudioPage
from studio.pages.train_setup import TrainingSetup, load_setup
from studio.widgets.config_form import ConfigForm, SplitPicker
from studio.widgets.run_table import RunTable, format_duration, model_name, read_runs, run_label
from studio.widgets.training_charts import TrainingCharts
from studio.workers import Job

# Chosen with their own controls, so the generated Advanced form leaves them out.
OWN_CONTROLS = ("model", "device", "time_budget")
DEFAULT_PRESET = "balanced"  # what a new workspace's Train page starts from
MODEL_TIPS = {
    "sasrec": "Self-attention over the sequence: usually the most accurate, needs the most compute",
    "gru": "Recurrent network: fast and strong on short sequences",
    "lstm": "Recurrent network with a longer memory than the GRU",
    "pop": "Most popular items (per profile segment): the yardstick every model must beat",
    "recentpop": "Most popular items in the latest part of the log",
    "itemknn": "Items often taken together with the user's items",
    "markov": "Items most often taken right after the user's last item",
}


TRAIN_TIP = "Start a new training run with these settings (Ctrl+T)"
NO_EVENTS = "This workspace has no events yet: import a behaviour log on the Data page, then train."


class TrainPage(StudioPage):
    title = "Train"
    tooltip = "Train a model or a baseline, watch it learn, and manage the runs"

    def __init__(self, context: StudioContext, parent: Optional[QWidget] = None) -> None:
        super().__init__(context, parent)
        self.job: Optional[Job] = None
        self.setup: Optional[TrainingSetup] = None
        self.form: Optional[ConfigForm] = None  # the Advanced settings
        self.budget_form: Optional[ConfigForm] = None  # the time limit, beside the presets
        self.preset_job: Optional[Job] = None
        self.preset_estimates: dict = {}  # preset name -> core.training.TrainingEstimate on this data
        self.started_at = 0.0
        self._last_stage = ""
        self._run_listed = True  # the job's run shows in the history (set False when a job starts)
        self._runs_job: Optional[Job] = None  # the latest read of the run history: only its answer is shown
        self._lag_job: Optional[Job] = None  # the latest read of the selected run's lag: only its answer is shown
        self.lag: Optional[tuple[int, Any]] = None  # (run id, core.runs.RunLag) the Update button offers
        self.lay_out_side_by_side(self._build_settings(), self._build_monitor(), (340, 900))
        context.workspace_changed.connect(self.refresh)
        context.data_changed.connect(self._load_defaults_when_seen)
        context.runs_changed.connect(self._refresh_runs)
        context.active_run_changed.connect(lambda _run: self._refresh_runs())
        self.refresh()

    # -- layout ---------------------------------------------------------------------------

    def _build_settings(self) -> QWidget:
        self.model_box = QComboBox()
        self.model_box.setToolTip("What to train: a neural sequence model, or a baseline to compare it with")
        self.device_box = QComboBox()
        self.device_box.setToolTip("Where to train: Automatic uses the GPU when there is one")
        self.form_hint = QLabel("Open a workspace: the settings are sized to its data.")
        self.form_hint.setProperty("role", "hint")
        self.form_hint.setWordWrap(True)
        self.baseline_note = QLabel("Baselines have no settings: they are counted from the log in seconds.")
        self.baseline_note.setProperty("role", "hint")
        self.baseline_note.setWordWrap(True)
        self.defaults_button = QPushButton("Reset settings")
        self.defaults_button.setToolTip("Set every setting back to the chosen preset's (Balanced when none is "
                                        "chosen), sized to this workspace's data")
        self.train_button = QPushButton("Train")
        self.train_button.setProperty("role", "primary")
        self.train_button.setShortcut("Ctrl+T")
        self.train_button.setToolTip(TRAIN_TIP)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the run within a second; its last checkpoint is kept for Resume")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the selected stopped or interrupted run from its last checkpoint")
        self.estimate_button = QPushButton("Estimate time")
        self.estimate_button.setToolTip("Time a few training steps with these settings and say how long the run "
                                        "would take on this computer (nothing is trained)")
        self.estimate_text = QLabel("")
        self.estimate_text.setObjectName("estimate_text")
        self.estimate_text.setProperty("role", "hint")
        self.estimate_text.setWordWrap(True)
        self.update_button = QPushButton("Update model")
        self.update_button.setToolTip("Offered when the log has grown since the selected run was trained")
        self.split_picker = SplitPicker()
        top = QFormLayout()
        top.addRow("Model", self.model_box)
        top.addRow("Device", self.device_box)
        top.addRow(self.split_picker)
        buttons = QHBoxLayout()
        for button in (self.train_button, self.stop_button, self.resume_button, self.update_button):
            buttons.addWidget(button)
        panel = QWidget()
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.baseline_note)
        layout.addWidget(self._build_presets())
        layout.addWidget(self._build_advanced(), 1)
        layout.addStretch(0)
        layout.addLayout(buttons)
        self.model_box.currentIndexChanged.connect(self._on_model_changed)
        self.device_box.currentIndexChanged.connect(self._on_device_changed)
        self.defaults_button.clicked.connect(self._load_defaults)
        self.estimate_button.clicked.connect(self.estimate_time)
        self.train_button.clicked.connect(lambda: self.start_training())
        self.stop_button.clicked.connect(self.stop_training)
        self.resume_button.clicked.connect(self.resume_selected)
        self.update_button.clicked.connect(self.update_selected)
        return panel

    def _build_presets(self) -> QGroupBox:
        """Quick, Balanced, Best (each labelled with the engine's estimate for this data) or Custom, and
        the time limit; the estimate of the current settings below them."""
        self.presets_box = QGroupBox("How long to train")
        self.preset_buttons: dict[str, QRadioButton] = {}
        self.preset_group = QButtonGroup(self)
        layout = QVBoxLayout(self.presets_box)
        for name, preset in PRESETS.items():
            button = QRadioButton(f"{preset.label} · timing…")
            button.setObjectName(f"preset_{name}")
            button.setToolTip(preset.summary)
            self.preset_buttons[name] = button
        self.custom_button = QRadioButton("Custom (your advanced settings)")
        self.custom_button.setToolTip("Chosen by itself when you change a setting under Advanced or the time limit")
        for button in (*self.preset_buttons.values(), self.custom_button):
            self.preset_group.addButton(button)
            layout.addWidget(button)
        self.preset_buttons[DEFAULT_PRESET].setChecked(True)
        self.budget_slot = QVBoxLayout()
        self.budget_slot.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self.budget_slot)
        estimate_row = QHBoxLayout()
        estimate_row.addWidget(self.estimate_text, 1)
        estimate_row.addWidget(self.estimate_button)
        layout.addLayout(estimate_row)
        self.preset_group.buttonClicked.connect(self._on_preset_clicked)
        return self.presets_box

    def _build_advanced(self) -> QWidget:
        """The raw settings, collapsed behind one "Advanced settings" toggle."""
        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("Advanced settings")
        self.advanced_toggle.setToolTip("Every setting of the model and its training, in plain words; hover one "
                                        "to read what it does")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.setStyleSheet("QToolButton { border: none; }")
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.form_hint)
        self.advanced = QWidget()
        advanced_layout = QVBoxLayout(self.advanced)
        advanced_layout.setContentsMargins(0, 0, 0, 0)
        advanced_layout.addWidget(self.scroll, 1)
        advanced_layout.addWidget(self.defaults_button)
        self.advanced.setVisible(False)
        holder = QWidget()
        layout = QVBoxLayout(holder)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.advanced_toggle, 0, Qt.AlignmentFlag.AlignTop)  # collapsed: right under the presets
        layout.addWidget(self.advanced, 1)
        self.advanced_toggle.toggled.connect(self._show_advanced)
        return holder

    def _show_advanced(self, shown: bool) -> None:
        self.advanced.setVisible(shown)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def _build_monitor(self) -> QWidget:
        self.charts = TrainingCharts()
        self.progress_bar = QProgressBar()
        self.progress_bar.setToolTip("Progress of the current run over its planned epochs (those that fit the time "
                                     "budget; early stopping may end it sooner)")
        self.progress_text = QLabel("No run in progress.")
        self.progress_text.setProperty("role", "hint")
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setToolTip("What the training reported, newest at the bottom")
        self.log.setMaximumBlockCount(2000)
        self.log.setPlaceholderText("The training log appears here: each epoch's loss and validation scores.")
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
        live = QWidget()
        live_layout = QVBoxLayout(live)
        live_layout.setContentsMargins(0, 0, 0, 0)
        live_layout.addWidget(self.charts, 1)
        live_layout.addWidget(self.progress_bar)
        live_layout.addWidget(self.progress_text)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(live)
        splitter.addWidget(self.log)
        splitter.addWidget(history)
        splitter.setSizes([380, 110, 230])
        self.active_button.clicked.connect(self._on_use_active)
        self.delete_button.clicked.connect(self._on_delete)
        self.undo_button.clicked.connect(self._on_undo_delete)
        self.export_model_button.clicked.connect(self._on_export_model)
        self.run_table.run_activated.connect(self.make_active)
        self.run_table.itemSelectionChanged.connect(self._update_buttons)
        self.run_table.itemSelectionChanged.connect(self._show_selected_history)
        return splitter

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
        model = self.model_box.currentData() or "sasrec"
        job = self.context.run(load_setup, self.engine, model, progress=False, cancel=False)
        job.returned.connect(self._on_setup)
        job.errored.connect(lambda exc: show_error(self, exc, "Reading the data"))

    def _on_setup(self, setup: TrainingSetup) -> None:
        """The first setup builds the model list, devices and forms; later ones reset the values to the
        chosen preset's."""
        first = self.setup is None
        self.setup = setup
        if first:
            self._fill_models(setup)
            self.form = ConfigForm(setup.defaults, skip=OWN_CONTROLS)
            self.budget_form = ConfigForm(setup.defaults, only=("time_budget",))
            self.scroll.setWidget(self.form)
            self.budget_slot.addWidget(self.budget_form)
            self.form.changed.connect(self._on_settings_edited)
            self.budget_form.changed.connect(self._on_settings_edited)
        self._fill_devices(setup.gpu)
        self.split_picker.set_data(*setup.time_span, setup.default_cutoff, setup.no_time_split)
        self._apply_preset(self._chosen_preset() or DEFAULT_PRESET)
        self._on_model_changed()

    def _fill_models(self, setup: TrainingSetup) -> None:
        self.model_box.blockSignals(True)
        for model in (*setup.neural, *setup.baselines):
            self.model_box.addItem(model_name(model), model)
            self.model_box.setItemData(self.model_box.count() - 1, MODEL_TIPS.get(model, ""),
                                       Qt.ItemDataRole.ToolTipRole)
        self.model_box.setCurrentIndex(self.model_box.findData(setup.defaults.model))
        self.model_box.blockSignals(False)

    def _fill_devices(self, gpu: Optional[str]) -> None:
        chosen = self.device_box.currentData()
        self.device_box.clear()
        self.device_box.addItem("Automatic", "auto")
        self.device_box.addItem("CPU", "cpu")
        self.device_box.addItem(f"GPU: {gpu}" if gpu else "GPU (none found)", "cuda")
        gpu_item = self.device_box.model().item(2)
        gpu_item.setEnabled(gpu is not None)
        gpu_item.setToolTip(gpu or "PyTorch sees no CUDA GPU on this computer")
        if chosen is not None and (chosen != "cuda" or gpu is not None):
            self.device_box.setCurrentIndex(self.device_box.findData(chosen))

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
        self.run_table.set_runs(runs, active)
        if self.run_table.selected_run_id() is None and self.run_table.runs:
            self.run_table.select_run(active or self.run_table.runs[-1].id)
        self._update_buttons()

    def _show_selected_history(self) -> None:
        """While nothing trains, the curves show the selected run's epochs."""
        run = self.run_table.selected_run()
        if run is None or (self.job is not None and self.job.running):
            return
        epochs = (run.metrics or {}).get("training", {}).get("epochs", [])
        self.charts.show_history(epochs)
        self.charts.set_baseline(popularity_validation(self.run_table.runs, run.split))
        if epochs:
            best = (run.metrics or {}).get("training", {}).get("best_epoch")
            self.progress_text.setText(f"{run_label(run)}: {len(epochs)} epochs, best validation NDCG@10 at "
                                       f"epoch {best}.")
        else:
            self.progress_text.setText(f"{run_label(run)}: a baseline, fitted in one pass (no epochs to plot).")

    def _update_buttons(self) -> None:
        has_engine = self.engine is not None and self.setup is not None
        writable = not self.context.read_only
        training = self.job is not None and self.job.running
        selected = self.run_table.selected_run()
        no_events = has_engine and self.setup.events == 0
        self.train_button.setEnabled(has_engine and writable and not training and not no_events)
        self.train_button.setToolTip(NO_EVENTS if no_events else TRAIN_TIP)
        if no_events:
            self.progress_text.setText(NO_EVENTS)
        self.stop_button.setEnabled(training)
        self.resume_button.setEnabled(has_engine and writable and not training and selected is not None
                                      and selected.status in RESUMABLE)
        self._offer_update(selected if has_engine and writable and not training else None)
        self.active_button.setEnabled(selected is not None and selected.status == "done")
        self.delete_button.setEnabled(selected is not None and writable and not training)
        self.export_model_button.setEnabled(selected is not None and selected.status == "done")
        self.undo_button.setVisible(bool(self.context.trash) and writable)
        self.defaults_button.setEnabled(has_engine and not training)
        self.estimate_button.setEnabled(has_engine and not training and self.model_box.currentData() in self.setup.neural)

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

    def _on_model_changed(self) -> None:
        if self.form is None:
            return
        neural = self.model_box.currentData() in self.setup.neural
        for widget in (self.form, self.presets_box, self.advanced_toggle):
            widget.setEnabled(neural)
        self.baseline_note.setVisible(not neural)
        self.estimate_text.setText("" if neural else "A baseline is counted from the log in seconds.")
        self._show_applicable()
        self._update_buttons()
        self._estimate_presets()

    def _on_device_changed(self) -> None:
        """Fast GPU arithmetic follows the device, and each preset is timed again where it will run."""
        if self.form is not None and self.device_box.currentData() is not None:
            self._show_applicable()
            self._estimate_presets()

    def _show_applicable(self) -> None:
        """Grey out the settings that cannot matter under the model, device and data chosen."""
        device = self.device_box.currentData()
        on_gpu = device == "cuda" or (device == "auto" and self.setup.gpu is not None)
        self.form.show_applicable({"model": self.model_box.currentData(), "trains_on": "cuda" if on_gpu else "cpu",
                                   "has_categories": self.setup.has_categories, "text_model": self.setup.text_model})

    # -- presets --------------------------------------------------------------------------

    def _chosen_preset(self) -> Optional[str]:
        return next((name for name, button in self.preset_buttons.items() if button.isChecked()), None)

    def _preset_config(self, name: str):
        """What preset ``name`` trains with the model and device chosen, its loss and batch sized for the
        preset's budget and width as the CLI's ``--preset`` sizes them (``TrainingSetup.preset_config``)."""
        return self.setup.preset_config(name, self.model_box.currentData(), self.device_box.currentData() or "auto")

    def _on_preset_clicked(self, button) -> None:
        name = next((name for name, preset_button in self.preset_buttons.items() if preset_button is button), None)
        if name is not None:
            self._apply_preset(name)

    def _apply_preset(self, name: str) -> None:
        """Show preset ``name``'s settings in the forms (and its estimate, when timed)."""
        config = self._preset_config(name)
        for form in (self.form, self.budget_form):
            form.blockSignals(True)
            form.set_config(config)
            form.blockSignals(False)
        self.preset_buttons[name].setChecked(True)
        self._show_applicable()
        if name in self.preset_estimates:
            self.estimate_text.setText(f"Estimate: {self.preset_estimates[name].describe()}.")

    def _on_settings_edited(self) -> None:
        """An edit under Advanced or of the time limit: the preset it matches stays chosen, else Custom."""
        config = self.current_config()
        matched = next((name for name in PRESETS if self._preset_config(name) == config), None)
        (self.preset_buttons[matched] if matched else self.custom_button).setChecked(True)
        if matched in self.preset_estimates:
            self.estimate_text.setText(f"Estimate: {self.preset_estimates[matched].describe()}.")
        elif matched is None:
            self.estimate_text.setText("Your own settings: press Estimate time to time them on this computer.")
        self._show_applicable()

    def _estimate_presets(self) -> Optional[Job]:
        """Time each preset on this data in a worker (``Engine.estimate_presets``); its labels follow.
        A newer request replaces (and cancels) an older one."""
        if self.engine is None or self.form is None or self.model_box.currentData() not in self.setup.neural:
            return None
        if self.preset_job is not None:
            self.preset_job.cancel()
        self.preset_estimates = {}
        for name, button in self.preset_buttons.items():
            button.setText(f"{PRESETS[name].label} · timing…")
        from core.engine import Engine  # loaded with the workspace already

        configs = {name: self._preset_config(name) for name in PRESETS}
        job = self.context.run_in_process(Engine.estimate_presets, configs, self.split_picker.choice(),
                                          name="estimate", progress=False)
        self.preset_job = job
        job.returned.connect(lambda estimates: self._on_preset_estimates(job, estimates))
        job.errored.connect(lambda exc: self._on_preset_estimates(job, {}, exc))
        return job

    def _on_preset_estimates(self, job: Job, estimates: dict, error: Optional[BaseException] = None) -> None:
        if job is not self.preset_job:
            return  # the settings changed since it started
        self.preset_estimates = estimates
        for name, button in self.preset_buttons.items():
            preset = PRESETS[name]
            estimate = estimates.get(name)
            button.setText(f"{preset.label} · {about_minutes(estimate.at_most_s)}" if estimate else preset.label)
            button.setToolTip(f"{preset.summary}\n\n" + (
                f"On this data: {estimate.describe()}." if estimate else f"No estimate: {error}"))
        chosen = self._chosen_preset()
        if chosen in estimates:
            self.estimate_text.setText(f"Estimate: {estimates[chosen].describe()}.")
        elif error is not None and chosen is not None:
            self.estimate_text.setText(f"No estimate: {error}")

    # -- training -------------------------------------------------------------------------

    def current_config(self):
        """The ``TrainConfig`` the panel shows (the workspace's setup must have arrived)."""
        return self.form.config(model=self.model_box.currentData(), device=self.device_box.currentData(),
                                **self.budget_form.values())

    def estimate_time(self) -> Optional[Job]:
        """Time a few steps of the panel's settings in a worker and show how long the run would take."""
        if self.engine is None or self.form is None or self.model_box.currentData() not in self.setup.neural:
            return None
        from core.engine import Engine  # loaded with the workspace already

        self.estimate_text.setText("Timing a few training steps…")
        job = self.context.run_in_process(Engine.estimate_training, self.current_config(), self.split_picker.choice(),
                                          name="estimate", progress=False, cancel=False)
        job.returned.connect(lambda estimate: self.estimate_text.setText(f"Estimate: {estimate.describe()}."))
        job.errored.connect(lambda exc: self.estimate_text.setText(f"No estimate: {exc}"))
        return job

    def start_training(self, config=None, resume_run: Optional[int] = None) -> Optional[Job]:
        """Train ``config`` (default: the panel's) or continue ``resume_run``; returns the Job."""
        if self.engine is None:
            return None
        from core.engine import Engine  # loaded with the workspace already

        config = config or self.current_config()
        split = None if resume_run else self.split_picker.choice()  # a resumed run keeps its own split
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
        self.log.clear()
        self._log(line)
        self.charts.clear()
        self.charts.set_baseline(baseline)
        self.progress_bar.setRange(0, 0)
        self.started_at = time.perf_counter()
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
            self._log("Stopping after the current step…")

    def resume_selected(self) -> None:
        run = self.run_table.selected_run()
        if run is not None:
            config = type(self.setup.defaults).from_json(run.config)
            self.start_training(config, resume_run=run.id)

    def _device_in_words(self) -> str:
        """The device the run really uses: "CPU (2 threads)" or the GPU's name, never "Automatic"."""
        if self.device_box.currentData() == "cpu":
            import torch  # loaded with the engine already

            from core.training import device_name

            return device_name(torch.device("cpu"))
        return self.engine.device_name()

    def _on_progress(self, report: Progress) -> None:
        if not self._run_listed:  # the run's row exists once the job reports: list it while it trains
            self._run_listed = True
            self._refresh_runs()
        if report.total:
            self.progress_bar.setRange(0, report.total)
            self.progress_bar.setValue(report.done)
        self.progress_text.setText(progress_line(report, time.perf_counter() - self.started_at))
        self.charts.add_report(report.metrics)
        if worth_logging(report, self._last_stage):
            self._log(report.message)
        self._last_stage = report.stage

    def _on_finished(self, run: Any) -> None:
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1)
        self.progress_text.setText(f"Run #{run.id} finished in {format_duration(run.duration_s)}"
                                   f"{finish_note(run)}.")
        lineage = f", {run.lineage()}" if run.lineage() else ""
        self._log(f"Finished: {run_label(run)}, status {run.status}{finish_note(run)}{lineage}.")
        if run.beats_popularity is False:
            self._log(popularity_warning(run))
        elif self.run_table.active_run in (None, run.id):  # an update of the active run took its place
            self.make_active(run.id)

    def _on_cancelled(self) -> None:
        self.progress_text.setText("Stopped. The last checkpoint is kept: select the run and press Resume.")
        self._log("Stopped by you; the run is marked cancelled.")

    def _on_failed(self, exc: BaseException) -> None:
        self.progress_text.setText("Training failed; nothing in the workspace was lost.")
        self._log(f"Failed: {exc}")
        show_error(self, exc, "Training")

    def _on_ended(self) -> None:
        self.context.announce_runs_changed()
        self._update_buttons()

    def _log(self, line: str) -> None:
        if line:
            self.log.appendPlainText(line)

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
        self.progress_text.setText(f"Deleted {label}. Undo delete brings it back until the studio closes.")

    def _on_undo_delete(self) -> None:
        if not self.context.trash or self.engine is None:
            return
        trashed = self.context.trash.pop()
        job = self.context.run(self.engine.restore_run, trashed, progress=False, cancel=False)
        job.returned.connect(lambda run_id: self._on_restored(run_id, trashed))
        job.errored.connect(lambda exc: (self.context.trash.append(trashed), show_error(self, exc, "Undoing the delete")))
        job.finished.connect(self.context.announce_runs_changed)

    def _on_restored(self, run_id: int, trashed) -> None:
        self.progress_text.setText(f"Run #{run_id} is back.")
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


def finish_note(run: Any) -> str:
    """", cut short by the 10 min time budget" when the budget ended training; "" otherwise."""
    training = (run.metrics or {}).get("training", {})
    if not training.get("budget_cut"):
        return ""
    budget = (training.get("estimate") or {}).get("budget_s")
    return f", cut short by the {format_duration(budget)} time budget" if budget else ", cut short by the time budget"


def popularity_warning(run: Any) -> str:
    """Why a finished neural run is not made the active model: popularity did as well or better on validation."""
    gate = run.metrics["gate"]
    return (f"Warning: {run_label(run)} did not beat popularity on validation (NDCG@10 {gate['mean_a']:.4f} vs "
            f"{gate['mean_b']:.4f}, p = {gate['p_value']:.3g}), so it is not made the active model.")


def popularity_validation(runs, split) -> Optional[float]:
    """Validation NDCG@10 of the latest finished popularity baseline on ``split``: the line a
    model's validation curve has to climb above. None when no such baseline was trained."""
    for run in sorted(runs, key=lambda run: -run.id):
        if run.model == "pop" and run.status == "done" and split is not None and run.split == split:
            value = (run.metrics or {}).get("valid", {}).get("ndcg@10")
            if value is not None:
                return float(value)
    return None


def worth_logging(report: Progress, previous_stage: str) -> bool:
    """Epoch results, and each other stage's first and last report: the log stays readable."""
    if report.stage == "train":
        return "valid_ndcg10" in report.metrics or report.stage != previous_stage
    return report.stage != previous_stage or (report.total is not None and report.done >= report.total)


def progress_line(report: Progress, elapsed_s: float) -> str:
    """'epoch 3 · 1,240 sequences/s · 2 min 05 s left · 41.0 s so far' from one report."""
    parts = []
    if "epoch" in report.metrics:
        parts.append(f"epoch {report.metrics['epoch']}")
    if report.metrics.get("seqs_per_s"):
        parts.append(f"{report.metrics['seqs_per_s']:,.0f} sequences/s")
    if report.eta_s is not None:
        parts.append(f"at most {format_duration(report.eta_s)} left")
    parts.append(f"{format_duration(elapsed_s)} so far")
    return " · ".join(parts)
