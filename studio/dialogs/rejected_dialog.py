"""The rows an import skipped: shown in a table, or written to a CSV file to fix and re-import."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.importing import export_rejected, read_rejected_rows
from studio.context import StudioContext
from studio.dialogs.errors import show_error
from studio.workers import Job

SHOWN_ROWS = 5000  # the table shows the first rows; the export writes them all
COLUMNS = ("Line / row", "Column", "Reason", "Row as read")


class RejectedRowsDialog(QDialog):
    """Why each row of one import was skipped, with the row itself."""

    def __init__(self, context: StudioContext, import_id: int, file_name: str, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.context = context
        self.import_id = import_id
        self.file_name = file_name
        self.setWindowTitle(f"Rejected rows of {file_name}")
        self.resize(900, 520)
        self.caption = QLabel("Reading…")
        self.model = QStandardItemModel(0, len(COLUMNS))
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setToolTip("Each skipped row: its line in a CSV file (its row in a Parquet file or a query's result; "
                              "in a folder, its file comes first in the row as read), the column to blame and the reason")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)  # the raw row takes the spare width
        export = QPushButton("Export all…")
        export.setToolTip("Save every rejected row of this import to a CSV file")
        export.clicked.connect(lambda: export_rejected_to(self, context, import_id, Path(file_name).stem))
        close = QPushButton("Close")
        close.setToolTip("Close this list")
        close.clicked.connect(self.accept)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(export)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.caption)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.job = context.run(read_rejected_rows, context.engine.workspace, import_id, SHOWN_ROWS, progress=False,
                               cancel=False)
        self.job.returned.connect(self._show_rows)
        self.job.errored.connect(lambda exc: show_error(self, exc, "Reading the rejected rows"))

    def _show_rows(self, result: tuple[list[tuple], int]) -> None:
        rows, total = result
        for line, column, reason, raw in rows:
            self.model.appendRow([QStandardItem(str(line)), QStandardItem(column or ""),
                                  QStandardItem(reason), QStandardItem(raw or "")])
        for column in range(len(COLUMNS) - 1):  # the last one stretches
            self.table.resizeColumnToContents(column)
        shown = f"the first {len(rows):,} of " if len(rows) < total else ""
        self.caption.setText(f"Showing {shown}{total:,} rejected rows of {self.file_name}.")


def export_rejected_to(parent: QWidget, context: StudioContext, import_id: int, stem: str) -> Optional[Job]:
    """Ask where to save the rejected rows of one import and write them in the background."""
    name, _ = QFileDialog.getSaveFileName(parent, "Export rejected rows", str(Path.home() / f"{stem}-rejected.csv"),
                                          "CSV files (*.csv)")
    if not name or context.engine is None:
        return None
    job = context.run(export_rejected, context.engine.workspace, import_id, Path(name), progress=False, cancel=False)
    job.returned.connect(lambda count: QMessageBox.information(parent, "Export rejected rows",
                                                               f"Wrote {count:,} rejected rows to {name}."))
    job.errored.connect(lambda exc: show_error(parent, exc, "Exporting rejected rows"))
    return job
