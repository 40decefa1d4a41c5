"""The Data page: what is in the workspace, how it looks, and where it came from.

Overview numbers and four charts come from ``engine.overview()``; the import history lists
every imported file with its accepted and rejected row counts, and opens or exports the
rejected rows. Everything is read in a worker, so a workspace of millions of events never
stalls the window.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import numpy as np

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.jobs import data_overview
from core.store.stats import WorkspaceStats, quality_notes
from studio.context import StudioContext
from studio.dialogs.errors import show_error
from studio.pages import StudioPage
from studio.widgets import palette
from studio.widgets.charts import ChartWidget
from studio.widgets.tables import hint_label

HISTORY_COLUMNS = ("File", "Kind", "Rows read", "Accepted", "Rejected", "Imported at")
HISTORY_ROWS_SHOWN = 5  # more scroll


TOP_CATEGORIES = 7  # the categories chart shows at most these many, the rest summed as OTHERS
FEWEST_CATEGORIES = 3  # ... and at least these many, however short the chart
OTHERS = "others"
CHART_STEP_MS = 1  # between redrawing one chart and the next (see DataPage._show_charts)


class FigureCard(QFrame):
    """One big number with a caption."""

    def __init__(self, caption: str, tooltip: str) -> None:
        super().__init__()
        self.setProperty("role", "card")
        self.value = QLabel("–")
        self.value.setProperty("role", "figure")
        label = QLabel(caption)
        label.setProperty("role", "figureCaption")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 10)
        layout.addWidget(self.value)
        layout.addWidget(label)
        self.setToolTip(tooltip)


class DataPage(StudioPage):
    title = "Data"
    tooltip = "What the workspace holds: overview, charts and import history"

    def __init__(self, context: StudioContext, parent: Optional[QWidget] = None) -> None:
        super().__init__(context, parent)
        self._history: list[dict] = []
        self._chart_steps: list = []
        self._stats: Optional[WorkspaceStats] = None  # what the charts show: the categories are redrawn to fit
        self._categories_shown = 0
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 14)
        layout.addLayout(self._build_header())
        layout.addLayout(self._build_figures())
        layout.addWidget(self._build_notes())
        layout.addLayout(self._build_charts(), 1)
        layout.addWidget(self._build_history())
        context.workspace_changed.connect(self.refresh)
        context.data_changed.connect(self.refresh)
        self._show_empty()

    # -- layout ---------------------------------------------------------------------------

    def _build_header(self) -> QHBoxLayout:
        heading = QLabel("Data")
        heading.setProperty("role", "heading")
        self.hint = hint_label()  # a long summary wraps instead of widening the window past 1024 px
        self.hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.import_button = QPushButton("Import CSV…")
        self.import_button.setProperty("role", "primary")
        self.import_button.setToolTip("Import a behaviour log and optional item and user files (Ctrl+I)")
        self.import_button.clicked.connect(self._open_import_dialog)
        row = QHBoxLayout()
        row.addWidget(heading)
        row.addWidget(self.hint, 1)
        row.addWidget(self.import_button)
        return row

    def _build_figures(self) -> QHBoxLayout:
        self.users_card = FigureCard("users", "Distinct users in the behaviour log and user file")
        self.items_card = FigureCard("items", "Distinct items in the behaviour log and item file")
        self.events_card = FigureCard("events", "Behaviour events (views, purchases, ratings...)")
        self.span_card = FigureCard("time range", "First and last event time")
        self.types_card = FigureCard("event types", "Events per event type, most frequent first")
        for card in (self.span_card, self.types_card):  # long values: smaller and wrapped, so five cards fit 1024 px
            card.value.setProperty("role", "figureSmall")
            card.value.setWordWrap(True)
        row = QHBoxLayout()
        for card in (self.users_card, self.items_card, self.events_card, self.span_card, self.types_card):
            row.addWidget(card, 2 if card in (self.span_card, self.types_card) else 1)
        return row

    def _build_notes(self) -> QLabel:
        self.notes = QLabel("")
        self.notes.setProperty("role", "note")
        self.notes.setWordWrap(True)
        self.notes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notes.setToolTip("What in this log may mislead a model, and what to do about it")
        self.notes.hide()
        return self.notes

    def _build_charts(self) -> QGridLayout:
        self.events_chart = ChartWidget("Events over time", "", "events per day", date_axis=True)
        self.lengths_chart = ChartWidget("Sequence length", "events per user", "users")
        self.popularity_chart = ChartWidget("Item popularity (long tail)", "item rank", "events", log_y=True)
        self.categories_chart = ChartWidget("Events per category", "events", "")
        grid = QGridLayout()
        grid.addWidget(self.events_chart, 0, 0)
        grid.addWidget(self.lengths_chart, 0, 1)
        grid.addWidget(self.popularity_chart, 1, 0)
        grid.addWidget(self.categories_chart, 1, 1)
        return grid

    def _build_history(self) -> QGroupBox:
        box = QGroupBox("Import history")
        self.history_model = QStandardItemModel(0, len(HISTORY_COLUMNS))
        self.history_model.setHorizontalHeaderLabels(list(HISTORY_COLUMNS))
        self.history_view = QTableView()
        self.history_view.setModel(self.history_model)
        self.history_view.setToolTip("Every file imported into this workspace")
        self.history_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.history_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.history_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history_view.setAlternatingRowColors(True)
        self.history_view.verticalHeader().hide()
        self.history_view.verticalHeader().setDefaultSectionSize(24)
        self.history_view.setWordWrap(False)
        self.history_view.setMinimumHeight(72)
        self.history_box = box
        self.history_view.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.history_view.selectionModel().selectionChanged.connect(self._update_history_buttons)
        self.view_rejected_button = QPushButton("View rejected rows…")
        self.view_rejected_button.setToolTip("List the rows of the selected import that were skipped, and why")
        self.view_rejected_button.clicked.connect(self._view_rejected)
        self.export_rejected_button = QPushButton("Export rejected…")
        self.export_rejected_button.setToolTip("Save the skipped rows of the selected import to a CSV file")
        self.export_rejected_button.clicked.connect(self._export_rejected)
        buttons = QVBoxLayout()
        buttons.addWidget(self.view_rejected_button)
        buttons.addWidget(self.export_rejected_button)
        buttons.addStretch(1)
        layout = QHBoxLayout(box)
        layout.addWidget(self.history_view, 1)
        layout.addLayout(buttons)
        self._update_history_buttons()
        return box

    # -- refresh --------------------------------------------------------------------------

    def refresh(self) -> None:
        engine = self.context.engine
        self.import_button.setEnabled(not self.context.read_only)
        if engine is None:
            self._show_empty()
            return
        self.hint.setText("Reading the workspace…")
        job = self.context.run_in_process(data_overview, name="overview", progress=False, cancel=False)
        job.returned.connect(self._show_data)
        job.errored.connect(lambda exc: show_error(self, exc, "Reading the workspace"))

    def _show_empty(self) -> None:
        self._stats = None
        self.hint.setText("No workspace open")
        self._chart_steps = []
        self._show_notes([])
        for card in (self.users_card, self.items_card, self.events_card, self.span_card, self.types_card):
            card.value.setText("–")
        for chart in (self.events_chart, self.lengths_chart, self.popularity_chart, self.categories_chart):
            chart.clear_chart()
        self._show_history([])

    def _show_data(self, view: tuple[WorkspaceStats, list[dict]]) -> None:
        stats, history = view
        self.hint.setText(_shares_line(stats))
        self.users_card.value.setText(f"{stats.users:,}")
        self.items_card.value.setText(f"{stats.items:,}")
        self.events_card.value.setText(f"{stats.events:,}")
        self.span_card.value.setText(_time_range(stats))
        self.types_card.value.setText(_event_types_line(stats.event_types))
        self._show_notes(quality_notes(stats))
        self._show_charts(stats)
        self._show_history(history)

    def _show_notes(self, notes: list[str]) -> None:
        self.notes.setText("\n".join(f"⚠ {note}" for note in notes))
        self.notes.setVisible(bool(notes))

    def _show_charts(self, stats: WorkspaceStats) -> None:
        """Redraw the four charts one per event-loop turn.

        Measured with benchmarks/bench_gui.py --watchdog: redrawing and then painting all four
        in one turn took 40-70 ms of GUI-thread time, and 200-470 ms right after an import,
        when the Train and Explore pages' workers compete for the GIL and the CPUs at the same
        moment. One chart per turn keeps each turn (update plus its paint) near 15 ms. The turns
        are timer events ``CHART_STEP_MS`` apart: a zero-delay single shot is a posted event,
        and Qt delivers a chain of those, with the paints they cause, before any timer or input.
        """
        palette.assign(row.name for row in stats.categories)  # the same colours as the Explore page
        self._chart_steps = [
            lambda: self._show_activity(stats),
            lambda: self._show_lengths(stats),
            lambda: self._show_popularity(stats),
            lambda: self._show_categories(stats),
        ]  # replaces the steps of an older refresh that are still pending
        QTimer.singleShot(CHART_STEP_MS, self._next_chart_step)

    def _next_chart_step(self) -> None:
        if self._chart_steps:
            self._chart_steps.pop(0)()
        if self._chart_steps:
            QTimer.singleShot(CHART_STEP_MS, self._next_chart_step)

    def _show_activity(self, stats: WorkspaceStats) -> None:
        activity = stats.activity
        calendar = activity.unit != "steps"
        self.events_chart.use_date_axis(calendar)
        self.events_chart.setLabel("left", f"events per {activity.unit if calendar else 'block of positions'}")
        centres = np.asarray(activity.bucket_start, dtype=float) + activity.width / 2
        self.events_chart.show_bars(centres, activity.counts, width=activity.width * 0.9)

    def _show_lengths(self, stats: WorkspaceStats) -> None:
        lengths = stats.events_per_user
        self.lengths_chart.show_labelled_bars(_bin_labels(lengths.bin_edges), lengths.counts)

    def _show_popularity(self, stats: WorkspaceStats) -> None:
        popular = stats.item_popularity[stats.item_popularity > 0]  # a log axis cannot show zero
        self.popularity_chart.show_line(np.arange(1, len(popular) + 1), popular, fill=False)

    def _show_categories(self, stats: WorkspaceStats) -> None:
        self._stats, self._categories_shown = stats, self._categories_that_fit()
        uncategorised = stats.categories and not stats.named_categories
        if uncategorised:  # one "(none)" bar says nothing
            self.categories_chart.clear_chart("No categories: import an items file\nwith a categories column")
            return
        names, events = _top_categories(stats, self._categories_shown)
        colours = [palette.category_colour(name) if name != OTHERS else palette.NO_CATEGORY_COLOUR for name in names]
        self.categories_chart.show_labelled_bars(names, events, colours=colours, horizontal=True)

    def _categories_that_fit(self) -> int:
        """As many category rows as the chart is tall enough to label, "others" included: rows closer
        than a line of text lose every other label (at 1024x700, "others" lost its own)."""
        row = self.fontMetrics().height() * 1.3
        rows = int(self.categories_chart.getPlotItem().vb.height() // row) - 1
        return max(FEWEST_CATEGORIES, min(TOP_CATEGORIES, rows))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        QTimer.singleShot(0, self._refit_categories)  # once the charts have their new size

    def _refit_categories(self) -> None:
        if self._stats is not None and self._categories_that_fit() != self._categories_shown:
            self._show_categories(self._stats)

    def _show_history(self, history: list[dict]) -> None:
        self._history = list(history)
        self.history_model.removeRows(0, self.history_model.rowCount())
        for entry in self._history:
            cells = (
                entry["source_name"],
                entry["kind"],
                f"{entry['rows_read']:,}",
                f"{entry['rows_accepted']:,}",
                f"{entry['rows_rejected']:,}",
                _format_time(entry["created_at"]),
            )
            row = [QStandardItem(text) for text in cells]
            row[0].setToolTip(entry["source_path"])
            for item in row[2:5]:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.history_model.appendRow(row)
        for column in range(1, len(HISTORY_COLUMNS)):  # contents plus room for the header's padding
            self.history_view.resizeColumnToContents(column)
            self.history_view.setColumnWidth(column, self.history_view.columnWidth(column) + 16)
        self._fit_history_height()
        self._update_history_buttons()

    def _fit_history_height(self) -> None:
        """As tall as its rows (up to ``HISTORY_ROWS_SHOWN``): empty space here is height the charts lack at 1024×700."""
        rows = min(max(self.history_model.rowCount(), 2), HISTORY_ROWS_SHOWN)
        view = self.history_view
        table = view.horizontalHeader().sizeHint().height() + rows * view.verticalHeader().defaultSectionSize() + 4
        margins = self.history_box.contentsMargins()
        self.history_box.setMaximumHeight(table + margins.top() + margins.bottom() + 24)

    def _selected_import(self) -> Optional[dict]:
        rows = self.history_view.selectionModel().selectedRows()
        return self._history[rows[0].row()] if rows else None

    def _update_history_buttons(self, *_) -> None:
        entry = self._selected_import()
        has_rejected = bool(entry and entry["rows_rejected"])
        self.view_rejected_button.setEnabled(has_rejected)
        self.export_rejected_button.setEnabled(has_rejected)

    # -- actions --------------------------------------------------------------------------

    def _open_import_dialog(self) -> None:
        from studio.dialogs.import_dialog import ImportDialog

        ImportDialog(self.context, self).open()

    def _view_rejected(self) -> None:
        from studio.dialogs.rejected_dialog import RejectedRowsDialog

        entry = self._selected_import()
        if entry is not None and self.context.engine is not None:
            RejectedRowsDialog(self.context, entry["id"], entry["source_name"], self).open()

    def _export_rejected(self) -> None:
        from studio.dialogs.rejected_dialog import export_rejected_to

        entry = self._selected_import()
        if entry is not None:
            export_rejected_to(self, self.context, entry["id"], Path(entry["source_name"]).stem)


def _format_time(unix: float) -> str:
    return datetime.fromtimestamp(unix).strftime("%Y-%m-%d %H:%M")


def _time_range(stats: WorkspaceStats) -> str:
    if stats.time_min is None:
        return "–"
    if stats.time_kind == "order":
        return f"positions {stats.time_min:,.0f} – {stats.time_max:,.0f}"
    first = datetime.fromtimestamp(stats.time_min, tz=timezone.utc).strftime("%Y-%m-%d")
    last = datetime.fromtimestamp(stats.time_max, tz=timezone.utc).strftime("%Y-%m-%d")
    return f"{first} – {last}"


def _event_types_line(event_types: dict[str, int], shown: int = 3) -> str:
    total = sum(event_types.values())
    if not total:
        return "–"
    parts = [f"{name} {count / total:.0%}" for name, count in list(event_types.items())[:shown]]
    return " · ".join(parts) + (" · …" if len(event_types) > shown else "")


def _shares_line(stats: WorkspaceStats) -> str:
    """One sentence on how concentrated the log is: what a popularity list would exploit."""
    if not stats.events:
        return "The workspace is empty: import a behaviour log to start."
    lengths = stats.events_per_user
    return (f"{stats.users_with_events:,} users with events, median {lengths.median:g} events each · "
            f"top 10% of items get {stats.top_decile_share:.0%} of events")


def _bin_labels(edges: list[int]) -> list[str]:
    """"1", "2", "3-4", "5-9", ... for histogram edges 1, 2, 3, 5, 10."""
    return [str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:])]


def _top_categories(stats: WorkspaceStats, count: int) -> tuple[list[str], list[int]]:
    """The ``count`` categories with most events, then OTHERS summing the rest."""
    shown = stats.categories[:count]
    names = [row.name for row in shown]
    events = [row.events for row in shown]
    rest = sum(row.events for row in stats.categories[count:])
    if rest:
        names.append(OTHERS)
        events.append(rest)
    return names, events
