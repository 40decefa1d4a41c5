"""Import: choose files (CSV or Parquet) or a database query, check what was detected, map
columns, import in the background.

The dialog previews with ``core.importing.preview_source`` (a file at once; a query's first rows
in a worker, since a database may take a while to answer) and imports with
``core.jobs.import_and_prepare`` in the job process (progress: rows, rows/s, time left; Cancel). The importer
writes one transaction, so a failure or a cancel leaves the workspace exactly as it was; the
dialog stays open to fix the choices and retry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.errors import NextPickError
from core.importing import ImportOptions, ImportReport, SqlQuery, preview_source
from core.jobs import import_and_prepare
from core.progress import Progress
from studio.context import StudioContext
from studio.dialogs.errors import show_error
from studio.dialogs.import_low_values import LowValuesBox
from studio.dialogs.import_preview import FileTab
from studio.dialogs.import_reading import ReadingBox
from studio.dialogs.import_summary import progress_text, summary_text
from studio.dialogs.rejected_dialog import RejectedRowsDialog, export_rejected_to
from studio.workers import Job

KINDS = ("events", "items", "users")
TABLE_FILTER = "Tables (*.csv *.tsv *.dat *.data *.txt *.parquet *.pq *.gz *.zip);;All files (*)"
URL_HINT = "postgresql://user:password@host:5432/shop  or  sqlite:////path/to/shop.db"


class ImportDialog(QDialog):
    """Pick an events file (and optional items/users files), preview, map roles, import."""

    def __init__(self, context: StudioContext, parent: Optional[QWidget] = None,
                 events_path: Optional[Path] = None) -> None:
        super().__init__(parent)
        self.context = context
        self.job: Optional[Job] = None
        self.report: Optional[ImportReport] = None
        self._low_action = "keep"  # what the running or last import did with low values
        self.setWindowTitle("Import")
        self.resize(980, 680)
        self.path_edits: dict[str, QLineEdit] = {}
        self._read_with: dict[str, tuple] = {}  # kind -> (path, encoding, delimiter, header) last sniffed
        self.preview_job: Optional[Job] = None
        self.tabs = QTabWidget()
        self.file_tabs = {kind: FileTab(kind) for kind in KINDS}
        for kind, tab in self.file_tabs.items():
            self.tabs.addTab(tab, kind.capitalize())
            tab.roles_changed.connect(self._update_buttons)
        self.reading = ReadingBox()
        self.reading.format_changed.connect(self._reload_all)
        self.low_values_box = LowValuesBox(self.file_tabs["events"])
        self.file_tabs["events"].roles_changed.connect(self.low_values_box.suggest)
        self.sources = QStackedWidget()
        self.sources.addWidget(self._build_files())
        self.sources.addWidget(self._build_database())
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_source_choice())
        layout.addWidget(self.sources)
        layout.addWidget(self.reading)
        layout.addWidget(self.low_values_box)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self._build_progress())
        layout.addLayout(self._build_buttons())
        if events_path is not None:
            self.set_path("events", Path(events_path))
        self._update_buttons()

    # -- layout ---------------------------------------------------------------------------

    def _build_source_choice(self) -> QHBoxLayout:
        self.files_radio = QRadioButton("Files")
        self.files_radio.setToolTip("CSV files, Parquet files, or a folder of Parquet files (partitioned or not)")
        self.database_radio = QRadioButton("From database")
        self.database_radio.setToolTip("The rows of a query on a database (PostgreSQL, SQLite…), read in chunks")
        self.files_radio.setChecked(True)
        self._source_choice = QButtonGroup(self)
        for radio in (self.files_radio, self.database_radio):
            self._source_choice.addButton(radio)
        self.database_radio.toggled.connect(self._on_source_changed)
        row = QHBoxLayout()
        row.addWidget(QLabel("Read from:"))
        row.addWidget(self.files_radio)
        row.addWidget(self.database_radio)
        row.addStretch(1)
        return row

    def _build_database(self) -> QGroupBox:
        box = QGroupBox("Database")
        self.url_edit = QLineEdit()
        self.url_edit.setPlaceholderText(URL_HINT)
        self.url_edit.setToolTip("The database's URL (SQLAlchemy form); PostgreSQL needs the [sql] extra")
        self.query_edit = QPlainTextEdit()
        self.query_edit.setPlaceholderText("select user_id, item_id, ts, event_type from events")
        self.query_edit.setToolTip("A SELECT that returns the events: one row per event")
        self.query_edit.setMaximumHeight(80)
        self.preview_button = QPushButton("Preview")
        self.preview_button.setToolTip("Run the query and show its first rows and the guessed column roles")
        self.preview_button.clicked.connect(self.preview_query)
        for edit in (self.url_edit, self.query_edit):
            edit.textChanged.connect(self._on_query_edited)
        grid = QGridLayout(box)
        grid.addWidget(QLabel("URL:"), 0, 0)
        grid.addWidget(self.url_edit, 0, 1)
        grid.addWidget(QLabel("Query:"), 1, 0)
        grid.addWidget(self.query_edit, 1, 1)
        grid.addWidget(self.preview_button, 1, 2)
        return box

    def _build_files(self) -> QGroupBox:
        box = QGroupBox("Files")
        grid = QGridLayout(box)
        labels = {"events": "Events file or folder *", "items": "Items file", "users": "Users file"}
        for row, kind in enumerate(KINDS):
            edit = QLineEdit()
            edit.setPlaceholderText(self.file_tabs[kind].toolTip())
            edit.setToolTip(self.file_tabs[kind].toolTip())
            edit.editingFinished.connect(lambda k=kind: self._reload(k))
            browse = QPushButton("Browse…")
            browse.setToolTip(f"Choose the {kind} file")
            browse.clicked.connect(lambda _=False, k=kind: self._browse(k))
            self.path_edits[kind] = edit
            grid.addWidget(QLabel(labels[kind] + ":"), row, 0)
            grid.addWidget(edit, row, 1)
            grid.addWidget(browse, row, 2)
        return box

    def _build_progress(self) -> QWidget:
        panel = QWidget()
        self.progress_bar = QProgressBar()
        self.progress_bar.setToolTip("Share of the files read so far")
        self.progress_label = QLabel("")
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        self.view_rejected_button = QPushButton("View rejected rows…")
        self.view_rejected_button.setToolTip("List the rows that were skipped, and why")
        self.view_rejected_button.clicked.connect(self._view_rejected)
        self.export_rejected_button = QPushButton("Export rejected…")
        self.export_rejected_button.setToolTip("Save the skipped rows to a CSV file to fix them")
        self.export_rejected_button.clicked.connect(self._export_rejected)
        top = QHBoxLayout()
        top.addWidget(self.progress_bar, 1)
        top.addWidget(self.progress_label)
        bottom = QHBoxLayout()
        bottom.addWidget(self.summary_label, 1)
        bottom.addWidget(self.view_rejected_button)
        bottom.addWidget(self.export_rejected_button)
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(bottom)
        for widget in (self.progress_bar, self.view_rejected_button, self.export_rejected_button):
            widget.hide()
        return panel

    def _build_buttons(self) -> QHBoxLayout:
        self.import_button = QPushButton("Import")
        self.import_button.setProperty("role", "primary")
        self.import_button.setToolTip("Import the files into the workspace")
        self.import_button.setDefault(True)
        self.import_button.clicked.connect(self.start_import)
        self.cancel_button = QPushButton("Cancel import")
        self.cancel_button.setToolTip("Stop the import; the workspace stays as it was")
        self.cancel_button.hide()
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Close this dialog")
        self.close_button.clicked.connect(self.reject)
        row = QHBoxLayout()
        row.addStretch(1)
        for button in (self.import_button, self.cancel_button, self.close_button):
            row.addWidget(button)
        return row

    # -- files and preview ----------------------------------------------------------------

    def set_path(self, kind: str, path: Optional[Path]) -> None:
        self.path_edits[kind].setText(str(path) if path else "")
        self._reload(kind)

    def path(self, kind: str) -> Optional[Path]:
        text = self.path_edits[kind].text().strip()
        return Path(text).expanduser() if text else None

    def _browse(self, kind: str) -> None:
        start = self.path(kind) or self.path("events") or Path.home()
        name, _ = QFileDialog.getOpenFileName(self, f"Choose the {kind} file", str(start), TABLE_FILTER)
        if name:
            self.set_path(kind, Path(name))

    def _reload_all(self) -> None:
        for kind in KINDS:
            self._reload(kind)

    def _reload(self, kind: str) -> None:
        """Sniff the file again with the current reading choices; a bad file is explained at once."""
        path, tab = self.path(kind), self.file_tabs[kind]
        options = self.options()
        choices = (path, options.encoding, options.delimiter, options.has_header)
        if self._read_with.get(kind) == choices:
            return  # editingFinished fires on Enter and again on focus loss
        self._read_with[kind] = choices
        self.report = None  # new choices: importing again is meaningful
        sniffed = None
        if path is not None:
            try:
                sniffed = preview_source(path, options)
            except NextPickError as exc:
                show_error(self, exc, f"Reading {path.name}")
        tab.show_file(sniffed)
        if sniffed is not None:
            self.tabs.setCurrentWidget(tab)
        if kind == "events":
            self.low_values_box.suggest()
        self._update_buttons()

    # -- database ---------------------------------------------------------------------------

    def query(self) -> Optional[SqlQuery]:
        """The database query the dialog describes; None until both URL and query are given."""
        url, text = self.url_edit.text().strip(), self.query_edit.toPlainText().strip()
        return SqlQuery(url, text) if url and text else None

    def set_query(self, url: str, query: str) -> None:
        self.database_radio.setChecked(True)
        self.url_edit.setText(url)
        self.query_edit.setPlainText(query)

    def preview_query(self) -> Optional[Job]:
        """Run the query for its first rows in a worker; the events tab shows them."""
        query = self.query()
        if query is None:
            return None
        self.preview_button.setEnabled(False)
        self.summary_label.setText("Reading the first rows…")
        self.preview_job = self.context.run(preview_source, query, ImportOptions(), progress=False, cancel=False)
        self.preview_job.returned.connect(self._on_query_previewed)
        self.preview_job.errored.connect(self._on_query_failed)
        self.preview_job.finished.connect(self._update_buttons)
        return self.preview_job

    def _on_query_previewed(self, source) -> None:
        self.summary_label.setText("")
        if self.query() is not None and source.spec == self.query():  # not edited meanwhile
            self.report = None
            self.file_tabs["events"].show_file(source)
            self.tabs.setCurrentWidget(self.file_tabs["events"])
            self.low_values_box.suggest()

    def _on_query_failed(self, exc: BaseException) -> None:
        self.summary_label.setText("")
        show_error(self, exc, "Reading the database")

    def _on_query_edited(self) -> None:
        """A changed URL or query must be previewed again before it is imported."""
        if self.database_radio.isChecked():
            self.file_tabs["events"].show_file(None)
            self.low_values_box.suggest()
            self._update_buttons()

    def _on_source_changed(self) -> None:
        """Files and a database are two ways to give the events: the tabs show the chosen one's."""
        database = self.database_radio.isChecked()
        self.sources.setCurrentIndex(1 if database else 0)
        self.reading.setEnabled(not database)
        self.report = None
        if database:
            for tab in self.file_tabs.values():
                tab.show_file(None)
            self.low_values_box.suggest()
        else:
            self._read_with.clear()
            self._reload_all()
        for kind in ("items", "users"):
            self.tabs.setTabEnabled(self.tabs.indexOf(self.file_tabs[kind]), not database)
        self._update_buttons()

    def options(self) -> ImportOptions:
        """The import options the dialog's controls describe."""
        roles = {f"{kind}.{role}": column
                 for kind, tab in self.file_tabs.items() if tab.sniffed is not None
                 for role, column in tab.roles().items()}
        return ImportOptions(**self.reading.settings(), roles=roles, low_values=self.low_values_box.low_values())

    def _update_buttons(self) -> None:
        running = self.job is not None and self.job.running
        previewing = self.preview_job is not None and self.preview_job.running
        self.preview_button.setEnabled(self.query() is not None and not previewing and not running)
        chosen = [tab for tab in self.file_tabs.values() if tab.sniffed is not None]
        missing = [f"{tab.kind} {role}" for tab in chosen for role in tab.missing_roles()]
        self.import_button.setEnabled(bool(chosen) and not missing and not running and self.report is None
                                      and self.context.engine is not None)
        if missing:
            self.summary_label.setText("Choose a column for: " + ", ".join(missing))
        self.cancel_button.setVisible(running)

    # -- import ---------------------------------------------------------------------------

    def start_import(self) -> Optional[Job]:
        engine = self.context.engine
        if engine is None or not self.import_button.isEnabled():
            return None
        if self.database_radio.isChecked():
            paths = {"events": self.query(), "items": None, "users": None}
        else:
            paths = {kind: self.path(kind) if self.file_tabs[kind].sniffed else None for kind in KINDS}
        self.report = None
        options = self.options()
        self._low_action = options.low_values.action
        self.job = self.context.run_in_process(import_and_prepare, paths["events"], name="import",
                                               items=paths["items"], users=paths["users"], options=options)
        self.job.progress.connect(self._on_progress)
        self.job.returned.connect(self._on_imported)
        self.job.errored.connect(self._on_failed)
        self.job.aborted.connect(self._on_cancelled)
        self.job.finished.connect(self._update_buttons)
        self.cancel_button.clicked.connect(self.job.cancel)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.show()
        self.progress_label.setText("Starting…")
        self.summary_label.setText("")
        for button in (self.view_rejected_button, self.export_rejected_button):
            button.hide()
        self._update_buttons()
        return self.job

    def _on_progress(self, report: Progress) -> None:
        if report.fraction is not None:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(1000 * report.fraction))
        self.progress_label.setText(progress_text(report))

    def _on_imported(self, report: ImportReport) -> None:
        self.report = report
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(1000)
        self.progress_label.setText(f"Done: {sum(f.rows_read for f in report.files):,} rows in {report.duration_s:.1f} s")
        self.summary_label.setText(summary_text(report, self._low_action))
        has_rejected = report.rows_rejected > 0
        self.view_rejected_button.setVisible(has_rejected)
        self.export_rejected_button.setVisible(has_rejected)
        if report.rows_accepted:
            self.context.announce_data_changed()

    def _on_failed(self, exc: BaseException) -> None:
        self.progress_bar.hide()
        self.progress_label.setText("")
        self.summary_label.setText("The import failed; the workspace was not changed.")
        show_error(self, exc, "Import")

    def _on_cancelled(self) -> None:
        self.progress_bar.hide()
        self.progress_label.setText("")
        self.summary_label.setText("Import cancelled; the workspace was not changed.")

    def _rejected_file(self):
        return next(f for f in self.report.files if f.rows_rejected)

    def _view_rejected(self) -> None:
        file = self._rejected_file()
        RejectedRowsDialog(self.context, file.import_id, file.name, self).open()

    def _export_rejected(self) -> None:
        file = self._rejected_file()
        export_rejected_to(self, self.context, file.import_id, Path(file.name).stem)

    def reject(self) -> None:
        """Closing while an import runs cancels it (the importer then rolls back)."""
        if self.job is not None and self.job.running:
            self.job.cancel()
        super().reject()

