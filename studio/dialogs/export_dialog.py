"""Export recommendations: the dialog that asks for run, users, K and file.

The writing itself is ``core.export.write_recommendations_csv`` (shared with ``nextpick
export``), run in the background with progress and Cancel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.engine import LONGEST_LIST
from core.export import ExportReport, parse_user_list, write_recommendations_csv
from core.runs import serving_run_of
from studio.context import StudioContext
from studio.dialogs.errors import show_error
from studio.widgets.run_table import read_runs, run_label
from studio.workers import Job


class ExportDialog(QDialog):
    """Choose run, users, K and file; the export runs in the background with Cancel."""

    def __init__(self, context: StudioContext, parent: Optional[QWidget] = None,
                 selected_users: Sequence[str] = ()) -> None:
        super().__init__(parent)
        self.context = context
        self.job: Optional[Job] = None
        self.setWindowTitle("Export recommendations")
        self.run_combo = QComboBox()
        self.run_combo.setToolTip("The trained model whose recommendations are exported")
        self.all_radio = QRadioButton("All users")
        self.all_radio.setToolTip("One block of K rows for every user in the workspace")
        self.some_radio = QRadioButton("These users:")
        self.some_radio.setToolTip("Only the users listed on the right")
        self.users_edit = QLineEdit(", ".join(selected_users))
        self.users_edit.setPlaceholderText("user ids, separated by commas or spaces")
        self.users_edit.setToolTip("User ids separated by commas, spaces or new lines")
        self.users_edit.textEdited.connect(lambda _: self.some_radio.setChecked(True))
        (self.some_radio if selected_users else self.all_radio).setChecked(True)
        self._scope = QButtonGroup(self)
        self._scope.addButton(self.all_radio)
        self._scope.addButton(self.some_radio)
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, LONGEST_LIST)
        self.k_spin.setValue(10)
        self.k_spin.setToolTip("Recommendations per user")
        self.k_spin.setMaximumWidth(90)
        self.exclude_check = QCheckBox("Leave out items the user already interacted with")
        self.exclude_check.setChecked(True)
        self.exclude_check.setToolTip("Recommend only items new to each user")
        self.path_edit = QLineEdit(str(Path.home() / "recommendations.csv"))
        self.path_edit.setToolTip("The CSV file to write")
        browse = QPushButton("Browse…")
        browse.setToolTip("Choose where to save the CSV file")
        browse.clicked.connect(self._browse)
        self.progress_bar = QProgressBar()
        self.progress_bar.setToolTip("Users done so far")
        self.progress_bar.hide()
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.export_button = QPushButton("Export")
        self.export_button.setProperty("role", "primary")
        self.export_button.setToolTip("Write the CSV file")
        self.export_button.clicked.connect(self.start_export)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the export (no file is left behind) or close the dialog")
        self.cancel_button.clicked.connect(self.reject)
        self._lay_out(browse)
        self._fill_runs()

    def _lay_out(self, browse: QPushButton) -> None:
        users_row = QHBoxLayout()
        users_row.addWidget(self.some_radio)
        users_row.addWidget(self.users_edit, 1)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Model:", self.run_combo)
        form.addRow("Users:", self.all_radio)
        form.addRow("", users_row)
        form.addRow("Items per user:", self.k_spin)
        form.addRow("", self.exclude_check)
        form.addRow("File:", path_row)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addLayout(buttons)
        self.resize(560, self.sizeHint().height())

    def _fill_runs(self) -> None:
        engine = self.context.engine
        every_run, active = read_runs(engine) if engine else ([], None)
        runs = [run for run in every_run if run.status == "done"]
        for run in reversed(runs):
            ndcg = run.metric("ndcg@10")
            label = run_label(run) + (f" (NDCG@10 {ndcg:.3f})" if ndcg is not None else "")
            self.run_combo.addItem(label + ("  — active" if run.id == active else ""), run.id)
        serving = serving_run_of(every_run, active)  # what `nextpick export` writes without --run
        if serving is not None and self.run_combo.findData(serving) >= 0:
            self.run_combo.setCurrentIndex(self.run_combo.findData(serving))
        if not runs:
            self.status_label.setText("Train a model on the Train page first: there is nothing to export yet.")
            self.export_button.setEnabled(False)

    def _browse(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Export recommendations", self.path_edit.text(), "CSV files (*.csv)")
        if name:
            self.path_edit.setText(name)

    def start_export(self) -> Optional[Job]:
        engine = self.context.engine
        users = None if self.all_radio.isChecked() else parse_user_list(self.users_edit.text())
        if engine is None or self.run_combo.currentData() is None or users == []:
            self.status_label.setText("Name at least one user, or choose All users.")
            return None
        self.job = self.context.run_in_process(write_recommendations_csv, self.run_combo.currentData(), users,
                                               Path(self.path_edit.text()).expanduser(), name="export",
                                               k=self.k_spin.value(), exclude_seen=self.exclude_check.isChecked())
        self.job.progress.connect(self._on_progress)
        self.job.returned.connect(self._on_written)
        self.job.errored.connect(self._on_failed)
        self.job.aborted.connect(lambda: self.status_label.setText("Export cancelled; no file was written."))
        self.job.finished.connect(lambda: self.export_button.setEnabled(True))
        self.export_button.setEnabled(False)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.show()
        self.status_label.setText("Exporting…")
        return self.job

    def _on_progress(self, report) -> None:
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(int(1000 * (report.fraction or 0.0)))
        self.status_label.setText(report.message)

    def _on_written(self, report: ExportReport) -> None:
        self.progress_bar.setValue(1000)
        self.status_label.setText(f"Wrote {report.rows:,} recommendations for {report.users:,} users to {report.path}.")
        self.cancel_button.setText("Close")

    def _on_failed(self, exc: BaseException) -> None:
        self.progress_bar.hide()
        self.status_label.setText("The export failed; no file was written.")
        show_error(self, exc, "Export")

    def reject(self) -> None:
        """Cancel stops a running export first; a second press closes the dialog."""
        if self.job is not None and self.job.running:
            self.job.cancel()
            return
        super().reject()
