"""The run history: one row per training run (neural or baseline) with what it scored.

Shared by the Train page (pick the active model, delete a run, resume a stopped one) and the
Evaluate page (the comparison table), so a run reads the same wherever it is shown.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from core.report_text import NO_TEST_USER, popularity_standing
from core.runs import serving_run_of
from core.store.schema import RESUMABLE
from studio.widgets.tables import hint_label

MODEL_NAMES = {
    "sasrec": "Transformer (SASRec)",
    "gru": "GRU",
    "lstm": "LSTM",
    "pop": "Popularity",
    "recentpop": "Recent popularity",
    "itemknn": "Item-kNN",
    "markov": "Markov",
}
STATUS_COLOURS = {"done": "#15803d", "running": "#2563eb", "cancelled": "#b45309", "interrupted": "#b45309",
                  "failed": "#b91c1c"}
# A run that did not beat popularity on validation (``core.report_text.popularity_standing``): its flag and tooltip.
NOT_ABOVE_POPULARITY = {
    "worse": ("worse than popularity",
              "This model scored below the popularity baseline on validation (paired test on the same users), "
              "so it was not made the active model; popularity serves these users better."),
    "tie": ("not clearly better than popularity",
            "This model did not beat the popularity baseline on validation: the paired test on the same users "
            "found no significant difference, so it was not made the active model."),
}
BELOW_POPULARITY_MARK = "⚠"  # beside the run's number where the Status column is left out
# Settings worth seeing in one line, in this order; the rest stay in the tooltip.
SUMMARY_FIELDS = ("hidden", "layers", "max_len", "lr", "dropout", "epochs")


METRIC_UNITS = {"novelty": "bits"}  # the others are shares between 0 and 1
BEST_BACKGROUND = "#dcfce7"


def metric_title(metric: str) -> str:
    """"ndcg@10" → "NDCG@10", "novelty@10" → "Novelty@10 (bits)"."""
    name, _, k = metric.partition("@")
    title = name.upper() if name in ("hr", "ndcg", "mrr") else name.capitalize()
    unit = f" ({METRIC_UNITS[name]})" if name in METRIC_UNITS else ""
    return (f"{title}@{k}" if k else title) + unit


def model_name(model: str) -> str:
    return MODEL_NAMES.get(model, model)


def run_label(run: Any) -> str:
    """How a run is named in combo boxes: "#3 GRU"."""
    return f"#{run.id} {model_name(run.model)}"


def settings_summary(run: Any) -> str:
    """The lineage of an update, the split (runs on different splits score different test items),
    then the key settings."""
    config = run.config if isinstance(run.config, dict) else vars(run.config)
    if run.model in ("pop", "recentpop", "itemknn", "markov"):
        settings = "no hyper-parameters"
    else:
        settings = " · ".join(f"{name} {setting_text(config[name])}" for name in SUMMARY_FIELDS if name in config)
    lineage = run.lineage()
    return f"{lineage + ' · ' if lineage else ''}{run.split.describe()} · {settings}"


def setting_text(value: Any) -> str:
    """A setting as a person writes it: an update's learning rate, a tenth of its parent's, read
    "0.00030000000000000003"; floats now keep 4 significant digits ("0.0003")."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def settings_tooltip(run: Any) -> str:
    config = run.config if isinstance(run.config, dict) else vars(run.config)
    lines = [f"split = {run.split.describe()}", f"evaluated on = {run.split.eval_mode.label}",
             f"validation = {run.split.validation.value}"]
    lines.extend(f"{name} = {setting_text(value)}" for name, value in config.items() if name != "split")
    return "\n".join(lines)


def format_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def metric_text(run: Any, metric: str) -> str:
    """"0.1234 ± 0.0050" (the half-width of its 95% interval, where the report has one) or "—"."""
    value = run_metrics(run).get(metric)
    if value is None:
        return "—"
    interval = (run.metrics or {}).get("intervals", {}).get(metric)
    return f"{value:.4f}" + (f" ± {(interval[1] - interval[0]) / 2:.4f}" if interval else "")


def tested_users_text(run: Any) -> str:
    """How many test users the figures are from: "20,000 of 1,000,000 test users (seeded sample)"."""
    metrics = run.metrics or {}
    if metrics.get("n_users") is None:
        return ""
    if tested_nobody(run):
        return f"no test user: {NO_TEST_USER}, so no figures"
    sampled = metrics.get("sampled_from")
    of = f" of {sampled:,}" if sampled else ""
    return f"{metrics['n_users']:,}{of} test users" + (" (seeded sample)" if sampled else "")


def users_text(run: Any) -> str:
    """The tested users and what "±" means: the tooltip of a metric cell."""
    tested = tested_users_text(run)
    return f"{tested}; ± = 95% interval" if tested and not tested_nobody(run) else tested


def status_text(run: Any) -> str:
    """"done"; "stopped at epoch 4 (resumable)"; "interrupted (resumable)"."""
    if run.status not in RESUMABLE:
        return run.status
    epochs = (run.metrics or {}).get("training", {}).get("epochs", [])
    verb = "stopped" if run.status == "cancelled" else run.status
    return f"{verb} at epoch {len(epochs)} (resumable)" if epochs else f"{verb} (resumable)"


def run_details(run: Any, active: bool = False) -> str:
    """The details line of a run: what the narrow table's hidden or cut columns say, in full."""
    trained = f"trained in {format_duration(run.duration_s)}" if run.duration_s is not None else "not trained yet"
    device = f" on {run.device}" if run.device else ""
    flag = popularity_flag(run)
    status = status_text(run) + (f" · {flag[0]}" if flag else "")
    parts = [f"{run_label(run)}: {status}", active and "★ the active model", f"{trained}{device}",
             settings_summary(run), tested_users_text(run)]
    return " · ".join(filter(None, parts))


def popularity_flag(run: Any) -> Optional[tuple[str, str]]:
    """(flag, tooltip) of a run that did not beat popularity on validation; None for one that did, or
    was not checked."""
    if run.beats_popularity is not False:
        return None
    return NOT_ABOVE_POPULARITY[popularity_standing((run.metrics or {}).get("gate")) or "worse"]


def measured(run: Any) -> bool:
    """Whether the run has an evaluation report (one that tested nobody included): a run without one is
    evaluated by the Evaluate page."""
    return "metrics" in (run.metrics or {})


def tested_nobody(run: Any) -> bool:
    """Evaluated, but no user had an event to hold out (a log of one- and two-event users)."""
    return measured(run) and (run.metrics or {}).get("n_users") == 0


def run_metrics(run: Any) -> dict[str, float]:
    """The run's test metrics (accuracy and beyond-accuracy) flattened into one dict; none where the
    run tested nobody, whose report's zeros would read as a model that failed every test."""
    metrics = {} if tested_nobody(run) else run.metrics or {}
    flat: dict[str, float] = {}
    for part in ("metrics", "beyond"):
        flat.update(metrics.get(part, {}))
    return flat


FIXED_COLUMNS = 6  # Run, Model, Status, Settings, Duration, Device; the metrics follow
# Columns that give way, first to last, when the table is narrower than its columns: what they say
# is in the details line under the table (``RunTable.details``) for the selected run.
SECONDARY = ("Settings", "Device", "Duration")
# Columns that are cut short, first to last (elided, whole on hover and in the details line), when
# hiding the secondary ones was not enough; none is cut narrower than this. The model is cut last:
# it names the run.
ELIDABLE = ("Status", "Model")
MIN_ELIDED_WIDTH = 64
SETTINGS_MIN_WIDTH = 160  # the settings are worth a column only from this width on (they are long)
ACTIVE_TIP = "★ The active model: Explore and exports use it"
NO_SELECTION = "Select a run to read its settings, split, training time and device here."


def read_runs(engine) -> tuple[list[Any], Optional[int]]:
    """The run history and the active run, read together in a worker (``context.run``): on a
    workspace of millions of events the store's reads took the window's thread past 50 ms."""
    return engine.runs(), engine.active_run()


def read_serving_runs(engine) -> tuple[list[Any], Optional[int], Optional[int]]:
    """``read_runs`` and the run lists come from when none is chosen (``Engine.serving_run``)."""
    every_run, active = read_runs(engine)
    return every_run, active, serving_run_of(every_run, active)


class RunTable(QTableWidget):
    """Runs as rows; ``metric_columns`` choose which metrics get a column."""

    run_activated = Signal(int)  # double-clicked run id

    def __init__(self, metric_columns: Sequence[str] = ("ndcg@10", "hr@10"), parent: Optional[QWidget] = None,
                 highlight_best: bool = False, hidden: Iterable[str] = ()) -> None:
        super().__init__(parent)
        self.metric_columns = list(metric_columns)
        self.highlight_best = highlight_best  # bold the best value of each metric column (the Evaluate page)
        self.hidden = set(hidden)  # fixed columns this table leaves out ("Status", "Device"), to fit a laptop
        self.runs: list[Any] = []
        self.active_run: Optional[int] = None
        self._fit_when_shown = False
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAlternatingRowColors(True)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(22)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # columns fit; see fit_columns
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.horizontalHeader().setStretchLastSection(False)
        self.horizontalHeader().setMinimumSectionSize(MIN_ELIDED_WIDTH // 2)
        self.details = hint_label(NO_SELECTION)  # the page places it under the table
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.itemDoubleClicked.connect(lambda cell: self.run_activated.emit(self.runs[cell.row()].id))
        self.itemSelectionChanged.connect(self._show_details)
        self._set_headers()

    def headers(self) -> list[str]:
        return ["Run", "Model", "Status", "Settings", "Duration", "Device", *[metric_title(m) for m in self.metric_columns]]

    def _set_headers(self) -> None:
        headers = self.headers()
        self.setColumnCount(len(headers))
        # A unit goes on a second header line: "Novelty@10 (bits)" was the widest header of all.
        self.setHorizontalHeaderLabels([name.replace(" (", "\n(") for name in headers])
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.fit_columns()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self.fit_columns()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._fit_when_shown:
            self.fit_columns()

    def fit_columns(self) -> None:
        """Every column as wide as its content when the table is wide enough; otherwise the secondary
        columns give way (``SECONDARY``, their text in ``details``), then the elidable ones are cut
        short. The table never scrolls sideways: a person compares runs across one screen.

        A table not on screen is measured when it shows: measuring every cell's text of the Train and
        Evaluate pages' tables behind the Explore page held the window 0.1-0.3 s as a workspace opened."""
        self._fit_when_shown = not self.isVisible()
        if self._fit_when_shown:
            return
        headers = self.headers()
        available = self.viewport().width()
        for column in range(len(headers)):  # a hidden section's size hint is 0: measure them all shown
            self.setColumnHidden(column, False)
        natural = {column: self._natural_width(column) for column in range(len(headers))}
        shown = [column for column, name in enumerate(headers) if name not in self.hidden]
        for name in SECONDARY:
            if sum(self._least_width(headers[c], natural[c]) for c in shown) <= available:
                break
            if headers.index(name) in shown:
                shown.remove(headers.index(name))
        widths = {column: natural[column] for column in shown}
        settings = headers.index("Settings")
        if settings in widths:  # the settings take what the others leave (elided beyond it)
            widths[settings] = max(SETTINGS_MIN_WIDTH, available - sum(w for c, w in widths.items() if c != settings))
        excess = sum(widths.values()) - available
        for name in ELIDABLE:
            column = headers.index(name)
            if excess <= 0:
                break
            if column in widths:
                cut = min(excess, max(0, widths[column] - MIN_ELIDED_WIDTH))
                widths[column] -= cut
                excess -= cut
        for column in range(len(headers)):
            self.setColumnHidden(column, column not in widths)
            if column in widths:
                self.setColumnWidth(column, widths[column])

    def _natural_width(self, column: int) -> int:
        return max(self.horizontalHeader().sectionSizeHint(column), self.sizeHintForColumn(column))

    @staticmethod
    def _least_width(name: str, natural: int) -> int:
        """How wide a shown column asks to be while deciding what gives way: the settings (long,
        and elided anyway) from their least useful width, the others whole."""
        return SETTINGS_MIN_WIDTH if name == "Settings" else natural

    def hidden_columns(self) -> list[str]:
        """The columns not shown now, whether left out by the page or given way to the width."""
        return [name for column, name in enumerate(self.headers()) if self.isColumnHidden(column)]

    def _show_details(self) -> None:
        run = self.selected_run()
        self.details.setText(NO_SELECTION if run is None else run_details(run, run.id == self.active_run))

    def set_metric_columns(self, metric_columns: Iterable[str]) -> None:
        self.metric_columns = list(metric_columns)
        self._set_headers()
        self.set_runs(self.runs, self.active_run)

    def set_runs(self, runs: Sequence[Any], active_run: Optional[int] = None) -> None:
        selected = self.selected_run_id()
        self.runs = list(runs)
        self.active_run = active_run
        self.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            for column, cell in enumerate(self._cells(run)):
                self.setItem(row, column, cell)
        if self.highlight_best:
            self._mark_best()
        if selected is not None:
            self.select_run(selected)
        self._show_details()
        self.fit_columns()

    def best_rows(self, metric: str) -> list[int]:
        """Rows holding the highest value of ``metric`` (every metric shown is better higher); [] with under two runs."""
        values = {row: run_metrics(run).get(metric) for row, run in enumerate(self.runs)}
        known = {row: value for row, value in values.items() if value is not None}
        if len(known) < 2:
            return []
        best = max(known.values())
        return [row for row, value in known.items() if value == best]

    def _mark_best(self) -> None:
        bold = QFont()
        bold.setBold(True)
        for offset, metric in enumerate(self.metric_columns):
            for row in self.best_rows(metric):
                cell = self.item(row, FIXED_COLUMNS + offset)
                cell.setFont(bold)
                cell.setBackground(QBrush(QColor(BEST_BACKGROUND)))
                best = f"The best {metric_title(metric)} of the runs shown"
                cell.setToolTip("\n".join(filter(None, [cell.toolTip(), best])))

    def rows_as_text(self) -> list[list[str]]:
        """The table as shown, header first: what "Export CSV" writes."""
        body = [[self.item(r, c).text() for c in range(self.columnCount())] for r in range(self.rowCount())]
        return [self.headers(), *body]

    def selected_run_id(self) -> Optional[int]:
        rows = self.selectionModel().selectedRows() if self.selectionModel() else []
        return self.runs[rows[0].row()].id if rows else None

    def selected_run(self) -> Optional[Any]:
        run_id = self.selected_run_id()
        return next((run for run in self.runs if run.id == run_id), None)

    def select_run(self, run_id: int) -> None:
        for row, run in enumerate(self.runs):
            if run.id == run_id:
                self.selectRow(row)

    def _cells(self, run: Any) -> list[QTableWidgetItem]:
        active = run.id == self.active_run
        cells = [
            QTableWidgetItem(f"#{run.id}" + ("  ★" if active else "")),  # Explore's mark of the active run
            QTableWidgetItem(model_name(run.model)),
            QTableWidgetItem(status_text(run)),
            QTableWidgetItem(settings_summary(run)),
            QTableWidgetItem(format_duration(run.duration_s)),
            QTableWidgetItem(run.device or ""),
            *[QTableWidgetItem(metric_text(run, m)) for m in self.metric_columns],
        ]
        cells[2].setForeground(QBrush(QColor(STATUS_COLOURS.get(run.status, "#334155"))))
        flag = popularity_flag(run)
        if flag:
            # Said in the Status column; where a table leaves it out (Evaluate, to fit a laptop) the run's
            # number is marked instead, and the details line says it in words.
            cells[2].setText(f"{run.status} · {flag[0]}")
            flagged = [cells[2]]
            if "Status" in self.hidden:
                cells[0].setText(f"{cells[0].text()}  {BELOW_POPULARITY_MARK}")
                flagged = cells[:2]
            for cell in flagged:
                cell.setForeground(QBrush(QColor(STATUS_COLOURS["failed"])))
                cell.setToolTip(flag[1])
        cells[3].setToolTip(settings_tooltip(run))
        for cell in cells[1:3]:  # elided when the table is narrow: whole on hover
            cell.setToolTip(cell.toolTip() or cell.text())
        for cell in cells[FIXED_COLUMNS:]:
            cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            cell.setToolTip(users_text(run))
        cells[0].setToolTip(cells[0].toolTip() or (ACTIVE_TIP if active else "Run number"))
        return cells
