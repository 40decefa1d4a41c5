"""The import dialog's Low ratings row: keep, drop or mark as dislikes the events whose value (a
rating) is at or below a threshold (``core.importing.LowValues``).

The choice needs a value column in the events file; the threshold follows the rating scale the
previewed values look like (at most 5: 2; at most 10: 4).
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QGroupBox, QHBoxLayout, QLabel, QWidget

from core.importing import LowValues
from core.store.stats import rating_scale_low
from studio.dialogs.import_preview import FileTab

LOW_VALUE_CHOICES = {  # core.importing.LowValues actions: (label, tip)
    "keep": ("kept as interactions", "Every event counts as an interaction, whatever its value"),
    "drop": ("dropped", "Events with a value at or below the threshold are not imported (counted in the summary)"),
    "negative": ("marked as dislikes", "Events with a value at or below the threshold are imported marked negative: "
                                     "shown in the user's history, but never learned from as interactions nor "
                                     "used as test targets"),
}
NO_VALUE_COLUMN = "The events file has no value (rating) column: choose one under Events to treat low ratings apart"


class LowValuesBox(QGroupBox):
    """What to do with low values, for the events file previewed in ``events``."""

    def __init__(self, events: FileTab, parent: Optional[QWidget] = None) -> None:
        super().__init__("Low ratings", parent)
        self.events = events
        self.setToolTip("A rating of 1 or 2 stars may mean the shopper disliked the item: counting it "
                        "as an interaction teaches the model to recommend what people dislike")
        self.action = QComboBox()
        for action, (label, tip) in LOW_VALUE_CHOICES.items():
            self.action.addItem(label, action)
            self.action.setItemData(self.action.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.action.setToolTip("\n".join(f"{label}: {tip}." for label, tip in LOW_VALUE_CHOICES.values()))
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(-1e9, 1e9)
        self.threshold.setDecimals(2)
        self.threshold.setValue(2.0)
        self.threshold.setToolTip("The highest value that counts as low (2 on a 5-star scale, 4 on a 10-point one)")
        self.hint = QLabel("")
        self.hint.setProperty("role", "hint")
        row = QHBoxLayout(self)
        row.addWidget(QLabel("Events with a value at or below"))
        row.addWidget(self.threshold)
        row.addWidget(QLabel("are"))
        row.addWidget(self.action)
        row.addWidget(self.hint, 1)
        self.action.currentIndexChanged.connect(self.show_state)
        self.show_state()

    def low_values(self) -> LowValues:
        """What the row asks for (keep, when the events file has no value column)."""
        action = self.action.currentData() if self._has_value_column() else "keep"
        return LowValues(action, None if action == "keep" else self.threshold.value())

    def suggest(self) -> None:
        """The threshold the previewed values' scale calls for, then ``show_state``."""
        if self._has_value_column():
            index = self.events.sniffed.columns.index(self.events.roles()["value"])
            values = [_number(row[index]) for row in self.events.sniffed.preview if index < len(row)]
            values = [value for value in values if value is not None]
            low = rating_scale_low(min(values), max(values)) if values else None
            if low is not None:
                self.threshold.setValue(low)
        self.show_state()

    def show_state(self) -> None:
        """The choice needs a value column; the threshold matters only when low values are not kept."""
        has_values = self._has_value_column()
        self.action.setEnabled(has_values)
        if not has_values:
            self.action.setCurrentIndex(0)
        self.threshold.setEnabled(has_values and self.action.currentData() != "keep")
        self.hint.setText("" if has_values else "(no value column)")
        self.hint.setToolTip("" if has_values else NO_VALUE_COLUMN)

    def _has_value_column(self) -> bool:
        return self.events.sniffed is not None and "value" in self.events.roles()


def _number(cell: str) -> Optional[float]:
    try:
        return float(cell)
    except ValueError:
        return None
