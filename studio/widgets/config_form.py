"""A form generated from a config dataclass: one editor per field, its help and choices from the field's type.

The help a person reads next to "dropout" and the choices offered for "loss" are the typed
metadata the engine's author wrote on that field (``core.settings``: ``setting(help=...)``,
``Literal[...]``), so the form can never drift from the config it edits and needs no source
code at run time: a field added to ``TrainConfig`` appears here with its explanation and
nothing else to do. An optional number (``Optional[float]``) shows "automatic" for None.
The split of the data is no TrainConfig field (a run records it beside its config), so it gets
its own small editor here, ``SplitPicker``, with a date rather than a number of seconds.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from PySide6.QtCore import QDateTime, Qt, QTimeZone, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDateTimeEdit, QDoubleSpinBox, QFormLayout, QLabel, QLineEdit, QSpinBox, QWidget,
)

from core.settings import SettingInfo, settings_of

INT_MAX = 10_000_000
AUTOMATIC = "automatic"  # what an optional number's editor shows for None (its minimum, one below its lowest value)


class ConfigForm(QWidget):
    """Editors for the fields of ``config``'s dataclass except those in ``skip`` (or only those in
    ``only``), each labelled in the field's plain words with its help on hover. ``changed`` fires on
    every edit; ``show_applicable`` greys out the settings that cannot matter under the others."""

    changed = Signal()

    def __init__(self, config: Any, skip: Iterable[str] = (), only: Optional[Iterable[str]] = None,
                 parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._cls = type(config)
        skipped, wanted = set(skip), None if only is None else set(only)
        self.settings = {info.name: info for info in settings_of(self._cls)
                         if info.name not in skipped and (wanted is None or info.name in wanted)}
        self.editors: dict[str, QWidget] = {}
        self.labels: dict[str, QLabel] = {}
        self.layout_ = QFormLayout(self)
        self.layout_.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for name, info in self.settings.items():
            editor = _editor_for(info)
            editor.setObjectName(f"config_{name}")
            label = QLabel(info.label)
            label.setWordWrap(True)
            self.layout_.addRow(label, editor)
            self.editors[name] = editor
            self.labels[name] = label
            _on_edit(editor, lambda *_value: self.changed.emit())
        self.show_applicable({})
        self.set_config(config)

    def set_config(self, config: Any) -> None:
        """Show ``config``'s values in the editors."""
        for name, editor in self.editors.items():
            value = getattr(config, name)
            if isinstance(editor, QCheckBox):
                editor.setChecked(bool(value))
            elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
                editor.setValue(editor.minimum() if value is None else value)
            elif isinstance(editor, QComboBox):
                editor.setCurrentText(str(value))
            else:
                editor.setText(str(value))

    def values(self) -> dict[str, Any]:
        """The editors' values by field name (None for an optional number left automatic)."""
        values = {}
        for name, editor in self.editors.items():
            if isinstance(editor, QCheckBox):
                values[name] = editor.isChecked()
            elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
                automatic = self.settings[name].optional and editor.value() == editor.minimum()
                values[name] = None if automatic else editor.value()
            elif isinstance(editor, QComboBox):
                values[name] = editor.currentText()
            else:
                values[name] = editor.text()
        return values

    def config(self, **fixed: Any) -> Any:
        """A new config from the editors' values, with ``fixed`` fields (the skipped ones) given."""
        return self._cls(**{**self.values(), **fixed})

    def show_applicable(self, facts: dict[str, Any]) -> None:
        """Enable the settings that matter given the editors' values and ``facts`` (the skipped
        fields' values and what the form cannot know, such as ``trains_on``); grey out the others,
        saying on hover why (``SettingInfo.when_text``)."""
        known = {**self.values(), **facts}
        for name, info in self.settings.items():
            applies = info.applies(known)
            tip = info.help[:1].upper() + info.help[1:] + "." if info.help else info.label
            if not applies:
                tip = f"{info.when_text}.\n\n{tip}"
            for widget in (self.editors[name], self.labels[name]):
                widget.setEnabled(applies)
                widget.setToolTip(tip)


def _on_edit(editor: QWidget, slot) -> None:
    """Connect ``editor``'s value-changed signal, whatever kind of editor it is, to ``slot``."""
    if isinstance(editor, QCheckBox):
        editor.toggled.connect(slot)
    elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
        editor.valueChanged.connect(slot)
    elif isinstance(editor, QComboBox):
        editor.currentIndexChanged.connect(slot)
    else:
        editor.textChanged.connect(slot)


def _editor_for(info: SettingInfo) -> QWidget:
    """A check box, spin box, choice list or line edit, as the field's type says."""
    if info.kind is bool:
        return QCheckBox()
    if info.choices:
        combo = QComboBox()
        combo.addItems(info.choices)
        return combo
    if info.kind is int:
        box = QSpinBox()
        low = int(info.low) if info.low is not None else 0
        box.setRange(low - 1 if info.optional else low, int(info.high) if info.high is not None else INT_MAX)
        box.setGroupSeparatorShown(True)
    elif info.kind is float:
        box = QDoubleSpinBox()
        default = info.default or 0.0
        box.setDecimals(6 if 0 < abs(default) < 0.01 else 2 if info.optional else 4)  # optional: minutes, counts
        low = info.low if info.low is not None else 0.0
        box.setRange(low - 1.0 if info.optional else low, info.high if info.high is not None else 1e6)
        box.setSingleStep(abs(default) / 10 if default else 1.0 if info.optional else 0.01)
    else:
        return QLineEdit()
    if info.optional:
        box.setSpecialValueText(AUTOMATIC)
    return box


SPLIT_TIP = (
    "How the log is cut into training and test data.\n"
    "Leave-one-out: each user's last event is the test and the one before it validates; the standard of "
    "published benchmarks, so scores compare with papers.\n"
    "Time split: learn from everything before a cut-off and test on what happened after it, as a shop "
    "really faces it: each user active after the cut is tested on their first event after it (new users "
    "count as cold start). Needs real timestamps in the data."
)
CUTOFF_TIP = ("Time split: the moment (UTC) that separates past from future. The default is where the latest "
              "10% of the events begin.")
NO_CLOCK_TIP = "Not available: {reason}"
EVAL_TIPS = {
    "new": "New items (the default): each user's held-out item is the last item new to them, and everything they "
           "had is hidden when scoring, as the product serves with \"exclude seen\" on. Users who never take a "
           "new item are left out (counted in the report).",
    "repeat": "Repeats allowed: each user's last event is held out and nothing is hidden, as the product serves with "
              "\"exclude seen\" off; for shops where re-buying or re-watching matters.",
}
VALIDATION_CHOICES = {  # core.data.Validation values: (label, tip)
    "sample": ("Sample of users", "Sample (the default): 2,000 users (or 10%) validate for early stopping; the "
               "others also learn from that event, so the model knows everyone's latest behaviour before the test."),
    "all": ("Every user (published)", "Every user: each user's validation event validates and is never trained on; "
            "the published leave-one-out protocol, for figures next to published ones."),
}


def eval_mode_box(object_name: str) -> QComboBox:
    """A choice of evaluation mode (``core.data.EvalMode`` values as item data), each with its tip."""
    from core.data.splits import EvalMode

    box = QComboBox()
    box.setObjectName(object_name)
    for mode in EvalMode:
        box.addItem(mode.label.capitalize(), mode.value)
        box.setItemData(box.count() - 1, EVAL_TIPS[mode.value], Qt.ItemDataRole.ToolTipRole)
    box.setToolTip("What counts as a hit: " + " ".join(EVAL_TIPS.values()))
    return box


class SplitPicker(QWidget):
    """Leave-one-out or a time split with its cut-off, what is held out (new items or repeats) and who
    validates; ``choice()`` is the ``core.data.SplitChoice``."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.kind_box = QComboBox()
        self.kind_box.setObjectName("split_kind")
        self.kind_box.addItem("Leave-one-out", "leave-one-out")
        self.kind_box.addItem("Time split", "time")
        self.kind_box.setToolTip(SPLIT_TIP)
        self.cutoff_edit = QDateTimeEdit()
        self.cutoff_edit.setObjectName("split_cutoff")
        self.cutoff_edit.setTimeZone(QTimeZone.utc())
        self.cutoff_edit.setDisplayFormat("yyyy-MM-dd HH:mm 'UTC'")
        self.cutoff_edit.setCalendarPopup(True)
        self.cutoff_edit.setToolTip(CUTOFF_TIP)
        self.cutoff_label = QLabel("Cut-off")
        self.cutoff_label.setToolTip(CUTOFF_TIP)
        self.eval_box = eval_mode_box("split_eval")
        self.validation_box = QComboBox()
        self.validation_box.setObjectName("split_validation")
        for value, (label, tip) in VALIDATION_CHOICES.items():
            self.validation_box.addItem(label, value)
            self.validation_box.setItemData(self.validation_box.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.validation_box.setToolTip(" ".join(tip for _, tip in VALIDATION_CHOICES.values()))
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addRow("Split", self.kind_box)
        layout.addRow(self.cutoff_label, self.cutoff_edit)
        layout.addRow("Evaluate on", self.eval_box)
        layout.addRow("Validation", self.validation_box)
        self.kind_box.currentIndexChanged.connect(self._show_cutoff)
        self.set_data(None, None, None)

    def set_data(self, first_ts: Optional[float], last_ts: Optional[float], default_cutoff: Optional[float],
                 unavailable: str = "") -> None:
        """The data's time range and default cut-off; without them (``unavailable`` says why) only
        leave-one-out can be picked."""
        time_item = self.kind_box.model().item(1)
        time_item.setEnabled(default_cutoff is not None)
        time_item.setToolTip(NO_CLOCK_TIP.format(reason=unavailable) if default_cutoff is None else SPLIT_TIP)
        if default_cutoff is None:
            self.kind_box.setCurrentIndex(0)
        else:
            self.cutoff_edit.setDateTimeRange(_utc(first_ts), _utc(last_ts))
            self.cutoff_edit.setDateTime(_utc(default_cutoff))
        self._show_cutoff()

    def set_kind(self, kind: str) -> None:
        self.kind_box.setCurrentIndex(max(self.kind_box.findData(kind), 0))

    def choice(self):
        """The picked split; a time split carries the cut-off as shown (resolved again by the engine)."""
        from core.data.split_choice import SplitChoice

        held_out = {"eval_mode": self.eval_box.currentData(), "validation": self.validation_box.currentData()}
        if self.kind_box.currentData() != "time":
            return SplitChoice(**held_out)
        return SplitChoice("time", cutoff_ts=self.cutoff_edit.dateTime().toSecsSinceEpoch(), **held_out)

    def _show_cutoff(self) -> None:
        timed = self.kind_box.currentData() == "time"
        self.cutoff_edit.setVisible(timed)
        self.cutoff_label.setVisible(timed)


def _utc(ts: float) -> QDateTime:
    return QDateTime.fromSecsSinceEpoch(int(ts), QTimeZone.utc())
