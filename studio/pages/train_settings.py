"""The Train page's settings panel: what to train (model, device, split), how long (the presets, each
labelled with its estimate on this data, and the time limit) and every other setting (Advanced).

``TrainSettings`` shows the ``TrainingSetup`` the page reads (``set_setup``) and hands back the
``TrainConfig`` it shows (``current_config``); the page's buttons follow ``model_changed``.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QRadioButton, QScrollArea,
    QToolButton, QVBoxLayout, QWidget,
)

from core.presets import PRESETS, about_minutes
from studio.context import StudioContext
from studio.pages.train_setup import TrainingSetup
from studio.widgets.config_form import ConfigForm, SplitPicker
from studio.widgets.run_table import model_name
from studio.widgets.tables import hint_label
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


class TrainSettings(QWidget):
    """Model, device, split, presets and the Advanced settings, sized to the open workspace's data."""

    model_changed = Signal()  # another model was chosen (or the setup arrived): what can be pressed changes

    def __init__(self, context: StudioContext, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.context = context
        self.setup: Optional[TrainingSetup] = None
        self.form: Optional[ConfigForm] = None  # the Advanced settings
        self.budget_form: Optional[ConfigForm] = None  # the time limit, beside the presets
        self.preset_job: Optional[Job] = None
        self.preset_estimates: dict = {}  # preset name -> core.training.plan.TrainingEstimate on this data
        self.model_box = QComboBox()
        self.model_box.setToolTip("What to train: a neural sequence model, or a baseline to compare it with")
        self.device_box = QComboBox()
        self.device_box.setToolTip("Where to train: Automatic uses the GPU when there is one")
        self.form_hint = hint_label("Open a workspace: the settings are sized to its data.")
        self.baseline_note = hint_label("Baselines have no settings: they are counted from the log in seconds.")
        self.defaults_button = QPushButton("Reset settings")
        self.defaults_button.setToolTip("Set every setting back to the chosen preset's (Balanced when none is "
                                        "chosen), sized to this workspace's data")
        self.estimate_button = QPushButton("Estimate time")
        self.estimate_button.setToolTip("Time a few training steps with these settings and say how long the run "
                                        "would take on this computer (nothing is trained)")
        self.estimate_text = QLabel("")
        self.estimate_text.setObjectName("estimate_text")
        self.estimate_text.setProperty("role", "hint")
        self.estimate_text.setWordWrap(True)
        self.split_picker = SplitPicker()
        top = QFormLayout()
        top.addRow("Model", self.model_box)
        top.addRow("Device", self.device_box)
        top.addRow(self.split_picker)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.baseline_note)
        layout.addWidget(self._build_presets())
        layout.addWidget(self._build_advanced(), 1)
        layout.addStretch(0)
        self.model_box.currentIndexChanged.connect(self._on_model_changed)
        self.device_box.currentIndexChanged.connect(self._on_device_changed)
        self.estimate_button.clicked.connect(self.estimate_time)

    # -- layout ---------------------------------------------------------------------------

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

    # -- the workspace's setup ------------------------------------------------------------

    def set_setup(self, setup: TrainingSetup) -> None:
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

    def neural_chosen(self) -> bool:
        """Whether the chosen model is a neural one (it has settings and an estimate); False before the setup."""
        return self.setup is not None and self.model_box.currentData() in self.setup.neural

    def _on_model_changed(self) -> None:
        if self.form is None:
            return
        neural = self.neural_chosen()
        for widget in (self.form, self.presets_box, self.advanced_toggle):
            widget.setEnabled(neural)
        self.baseline_note.setVisible(not neural)
        self.estimate_text.setText("" if neural else "A baseline is counted from the log in seconds.")
        self._show_applicable()
        self.model_changed.emit()
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
        if self.context.engine is None or self.form is None or not self.neural_chosen():
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

    # -- what the panel shows -------------------------------------------------------------

    def current_config(self):
        """The ``TrainConfig`` the panel shows (the workspace's setup must have arrived)."""
        return self.form.config(model=self.model_box.currentData(), device=self.device_box.currentData(),
                                **self.budget_form.values())

    def estimate_time(self) -> Optional[Job]:
        """Time a few steps of the panel's settings in a worker and show how long the run would take."""
        if self.context.engine is None or self.form is None or not self.neural_chosen():
            return None
        from core.engine import Engine  # loaded with the workspace already

        self.estimate_text.setText("Timing a few training steps…")
        job = self.context.run_in_process(Engine.estimate_training, self.current_config(), self.split_picker.choice(),
                                          name="estimate", progress=False, cancel=False)
        job.returned.connect(lambda estimate: self.estimate_text.setText(f"Estimate: {estimate.describe()}."))
        job.errored.connect(lambda exc: self.estimate_text.setText(f"No estimate: {exc}"))
        return job
