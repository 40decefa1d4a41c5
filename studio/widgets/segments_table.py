"""The Evaluate page's "By history length" table: one row per run, one column per history-length
segment (``core.evaluation.LENGTH_SEGMENTS``), each cell the chosen metric over that run's test users
in the segment."""

from __future__ import annotations

from typing import Optional, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from studio.widgets.run_table import run_label


def segment_users(runs: Sequence, name: str) -> str:
    """A history-length segment's test users, for its column header: "1,302 users", or "users vary"
    where runs were tested on other users (an update tests its 200 held-out users: the header gave the
    first run's count for every row); each cell's tooltip says its run's count."""
    counts = {(run.metrics["segments"].get(name) or {}).get("users", 0) for run in runs}
    return f"{counts.pop():,} users" if len(counts) == 1 else "users vary"


class SegmentsTable(QTableWidget):
    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setToolTip("The chosen metric per run for users with short and long histories: "
                        "sequence models should shine on long ones, popularity on cold ones")
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setDefaultSectionSize(22)
        # Rows named "#2" (full names in the chart beside): the segments then share the pane, each at
        # least as wide as its three-line title; at 1024 px run names as row titles left room for two.
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.horizontalHeader().setMinimumSectionSize(40)

    def show_runs(self, runs: Sequence, metric: Optional[str]) -> None:
        """The runs whose reports have segments, cells = ``metric``; "—" where no test user falls."""
        runs = [run for run in runs if (run.metrics or {}).get("segments")]
        names = list(runs[0].metrics["segments"]) if runs else []
        self.setRowCount(len(runs))
        self.setColumnCount(len(names))
        self.setHorizontalHeaderLabels([f"{name.replace(' (', chr(10) + '(')}\n{segment_users(runs, name)}"
                                        for name in names])
        for row, run in enumerate(runs):  # "#2": the chart beside names the runs, the tooltip too
            label = QTableWidgetItem(f"#{run.id}")
            label.setToolTip(run_label(run))
            self.setVerticalHeaderItem(row, label)
            for column, name in enumerate(names):
                segment = run.metrics["segments"].get(name, {})
                value = segment.get(metric) if segment.get("users", 0) else None  # no users: nothing measured
                cell = QTableWidgetItem("—" if value is None else f"{value:.4f}")
                cell.setToolTip("No test user falls in this segment" if value is None else
                                f"Over the {segment.get('users', 0):,} test users of {run_label(run)} in this segment")
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(row, column, cell)
