"""The controls beside the Explore page's ranked list: model, K, diversity, exclude seen, compare."""

from __future__ import annotations

from typing import Optional, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSlider, QSpinBox, QVBoxLayout, QWidget

from studio.widgets.run_table import run_label


class RecommendControls(QWidget):
    """Emits ``changed()`` whenever the list they describe would change."""

    changed = Signal()
    compare_toggled = Signal(bool)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.model_box = QComboBox()
        self.model_box.setToolTip("Which trained run (model or baseline) recommends")
        self.k_box = QSpinBox(minimum=1, maximum=100, value=10)
        self.k_box.setToolTip("How many items to recommend")
        self.diversity = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, value=0)
        self.diversity.setToolTip("0 = pure relevance; higher values trade some relevance for items from "
                                  "more varied categories (MMR re-ranking)")
        self.diversity.setFixedWidth(90)
        self.diversity_value = QLabel(_diversity_text(0))
        self.diversity_value.setToolTip("The diversity weight in use")
        self.diversity_value.setMinimumWidth(self.diversity_value.fontMetrics().horizontalAdvance("0.00") + 4)
        self.diversity.valueChanged.connect(lambda value: self.diversity_value.setText(_diversity_text(value)))
        self.exclude_seen = QCheckBox("Exclude seen", checked=True)
        self.exclude_seen.setToolTip("Leave out items the user already took")
        self.compare_box = QCheckBox("Compare with")
        self.compare_box.setToolTip("Show a second run's list beside the first for the same user. Both lists "
                                    "are made as if the user's last item had not happened yet (it was held out "
                                    "from training), and that item is highlighted wherever a model ranks it")
        self.compare_model_box = QComboBox()
        self.compare_model_box.setToolTip("The run to compare with")
        self.compare_model_box.setEnabled(False)
        # Run names are long ("#2 Transformer (SASRec) ★"): boxes sized to the longest name made the
        # Recommendations pane so wide that the sequence pane's Item column was squeezed to "…".
        for box in (self.model_box, self.compare_model_box):
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(12)
        rows = (
            (QLabel("Model"), self.model_box, QLabel("K"), self.k_box),
            (QLabel("Diversity"), self.diversity, self.diversity_value, self.exclude_seen),
            (self.compare_box, self.compare_model_box),
        )  # three short rows: two long ones set the pane's minimum width above the sequence pane's share
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widgets in rows:
            row = QHBoxLayout()
            for widget in widgets:
                row.addWidget(widget, 1 if isinstance(widget, QComboBox) else 0)
            if not any(isinstance(widget, QComboBox) for widget in widgets):
                row.addStretch(1)
            layout.addLayout(row)
        for signal in (self.model_box.currentIndexChanged, self.k_box.valueChanged, self.diversity.valueChanged,
                       self.exclude_seen.toggled, self.compare_model_box.currentIndexChanged):
            signal.connect(lambda *_: self.changed.emit())
        self.compare_box.toggled.connect(self._on_compare_toggled)

    # -- values -----------------------------------------------------------------------------

    @property
    def run(self) -> Optional[int]:
        return self.model_box.currentData()

    @property
    def compare_run(self) -> Optional[int]:
        """The second run while compare mode is on, else None."""
        return self.compare_model_box.currentData() if self.comparing else None

    @property
    def comparing(self) -> bool:
        return self.compare_box.isChecked()

    @property
    def k(self) -> int:
        return self.k_box.value()

    @property
    def diversity_weight(self) -> float:
        return self.diversity.value() / 100.0

    @property
    def exclude(self) -> bool:
        return self.exclude_seen.isChecked()

    # -- runs -------------------------------------------------------------------------------

    def set_runs(self, runs: Sequence, active: Optional[int], prefer_active: bool = False,
                 serving: Optional[int] = None) -> None:
        """Finished runs in both boxes, quietly: keep what was chosen, else (or if ``prefer_active``) the active
        run, else ``serving``: the run the CLI and the service answer from (``Engine.serving_run``), not the
        first trained (a popularity baseline beside a Transformer that beat it)."""
        wanted = [active, self.run, serving] if prefer_active else [self.run, active, serving]
        main = _fill_run_box(self.model_box, runs, active, wanted)
        others = [run.id for run in runs if run.id != main]
        _fill_run_box(self.compare_model_box, runs, active, [self.compare_model_box.currentData(), *others[:1]],
                      avoid=main)

    def _on_compare_toggled(self, on: bool) -> None:
        self.compare_model_box.setEnabled(on)
        self.compare_toggled.emit(on)
        self.changed.emit()


def _fill_run_box(box: QComboBox, runs: Sequence, active: Optional[int], wanted: list,
                  avoid: Optional[int] = None) -> Optional[int]:
    """Refill ``box`` with ``runs`` without signals and select the first of ``wanted`` still there."""
    box.blockSignals(True)
    box.clear()
    for run in runs:
        box.addItem(run_label(run) + ("  ★" if run.id == active else ""), run.id)
    found = [box.findData(run_id) for run_id in wanted if run_id is not None and run_id != avoid]
    box.setCurrentIndex(next((index for index in found if index >= 0), 0 if runs else -1))
    box.blockSignals(False)
    return box.currentData()


def _diversity_text(value: int) -> str:
    return f"{value / 100:.2f}"
