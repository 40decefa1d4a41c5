"""The import dialog's Reading row: how the files are read (encoding, delimiter, header, the order of
dates written with slashes, the type of events that name none) and what a bad or repeated row does
(skip and report, or stop; keep duplicates or skip them)."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QRadioButton, QVBoxLayout, QWidget)

from core.importing.loaders import DEFAULT_EVENT

AUTO = "Auto-detect"
ENCODINGS = (AUTO, "utf-8", "latin-1", "cp1252", "utf-8-sig")
DELIMITERS = {AUTO: None, "Comma ( , )": ",", "Tab": "\t", "Pipe ( | )": "|", "Semicolon ( ; )": ";"}
HEADERS = {AUTO: None, "First row is a header": True, "No header row": False}
KEEP_DUPLICATES = "Keep duplicate events"
DATE_ORDERS = {AUTO: None, "Month first (12/31/2025)": "mdy", "Day first (31/12/2025)": "dmy"}


class ReadingBox(QGroupBox):
    """The reading choices; ``format_changed`` when one that changes how a file reads is made."""

    format_changed = Signal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__("Reading", parent)
        self.encoding = _combo(ENCODINGS, "Text encoding of the files; auto-detect reads UTF-8, else Latin-1")
        self.encoding.setEditable(True)
        self.delimiter = _combo(DELIMITERS, "What separates the columns; auto-detect looks at the first lines")
        self.header = _combo(HEADERS, "Whether the first row names the columns")
        self.date_order = _combo(DATE_ORDERS, "How dates written with slashes read; auto-detect goes by the file's "
                                              "dates that read only one way (31/12 or 12/31), else by the workspace's "
                                              "earlier files")
        # A finished choice, not every keystroke in the editable encoding box.
        self.encoding.lineEdit().editingFinished.connect(self.format_changed)
        for combo in (self.encoding, self.delimiter, self.header):
            combo.currentIndexChanged.connect(self.format_changed)
        self.skip = QRadioButton("Skip bad rows and report them")
        self.skip.setToolTip("Import every good row; the skipped ones can be viewed and exported afterwards")
        self.strict = QRadioButton("Stop at the first bad row (strict)")
        self.strict.setToolTip("Import nothing if any row is bad; the error names its line and column")
        self.skip.setChecked(True)
        self.keep_duplicates = QCheckBox(KEEP_DUPLICATES)
        self.keep_duplicates.setToolTip(
            "Keep an event that repeats one already in the workspace or earlier in the file exactly (same user, "
            "item, time, type and value). Off: such repeats, as in exports that overlap, are skipped and counted")
        self.event_type = QLineEdit()
        self.event_type.setPlaceholderText(DEFAULT_EVENT)
        self.event_type.setMinimumWidth(110)
        self.event_type.setMaximumWidth(160)
        self.event_type.setToolTip("The type of the events that name none: all of a file without an event "
                                   "column (a log shipped as one file per type: type purchase for its buys), "
                                   "and the empty cells of one that has it")
        self._policy = QButtonGroup(self)
        for radio in (self.skip, self.strict):
            self._policy.addButton(radio)
        # Two rows: on one the dialog could not be narrower than a 1,024-pixel screen.
        format_row, policy_row = QHBoxLayout(), QHBoxLayout()
        for label, widget in (("Encoding:", self.encoding), ("Delimiter:", self.delimiter), ("Header:", self.header),
                              ("Dates:", self.date_order)):
            format_row.addWidget(QLabel(label))
            format_row.addWidget(widget)
        format_row.addStretch(1)
        policy_row.addWidget(self.skip)
        policy_row.addWidget(self.strict)
        policy_row.addSpacing(16)
        policy_row.addWidget(self.keep_duplicates)
        policy_row.addSpacing(16)
        policy_row.addWidget(QLabel("Event type:"))
        policy_row.addWidget(self.event_type)
        policy_row.addStretch(1)
        rows = QVBoxLayout(self)
        rows.addLayout(format_row)
        rows.addLayout(policy_row)

    def settings(self) -> dict:
        """The ``core.importing.ImportOptions`` fields these choices set."""
        encoding = self.encoding.currentText().strip()
        return dict(encoding=None if encoding in ("", AUTO) else encoding,
                    delimiter=DELIMITERS[self.delimiter.currentText()], has_header=HEADERS[self.header.currentText()],
                    strict=self.strict.isChecked(), keep_duplicates=self.keep_duplicates.isChecked(),
                    date_order=DATE_ORDERS[self.date_order.currentText()],
                    event_type=self.event_type.text().strip() or None)


def _combo(choices, tip: str) -> QComboBox:
    combo = QComboBox()
    combo.addItems(list(choices))
    combo.setToolTip(tip)
    return combo
