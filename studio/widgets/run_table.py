"""The run history: one row per training run (neural or baseline) with what it scored.

Shared by the Train page (pick the active model, delete a run, resume a stopped one) and the
Evaluate page (the comparison table), so a run reads the same wherever it is shown.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from core.store.schema import RESUMABLE

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
BELOW_POPULARITY = "worse than popularity"
BELOW_POPULARITY_TIP = ("This model did not beat the popularity baseline on validation (paired test on the same "
                        "users), so it was not made the active model; popularity serves these users as well or "
                        "better.")
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
        settings = " · ".join(f"{name} {config[name]}" for name in SUMMARY_FIELDS if name in config)
    lineage = run.lineage()
    return f"{lineage + ' · ' if lineage else ''}{run.split.describe()} · {settings}"


def settings_tooltip(run: Any) -> str:
    config = run.config if isinstance(run.config, dict) else vars(run.config)
    lines = [f"split = {run.split.describe()}", f"evaluated on = {run.split.eval_mode.label}",
             f"validation = {run.split.validation.value}"]
    lines.extend(f"{name} = {value}" for name, value in config.items() if name != "split")
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


def users_text(run: Any) -> str:
    """How many test users the figures are from: "20,000 of 1,000,000 test users (seeded sample)"."""
    metrics = run.metrics or {}
    if metrics.get("n_users") is None:
        return ""
    sampled = metrics.get("sampled_from")
    of = f" of {sampled:,}" if sampled else ""
    return f"{metrics['n_users']:,}{of} test users" + (" (seeded sample); ± = 95% interval" if sampled else
                                                       "; ± = 95% interval")


def status_text(run: Any) -> str:
    """"done"; "stopped at epoch 4 (resumable)"; "interrupted (resumable)"."""
    if run.status not in RESUMABLE:
        return run.status
    epochs = (run.metrics or {}).get("training", {}).get("epochs", [])
    verb = "stopped" if run.status == "cancelled" else run.status
    return f"{verb} at epoch {len(epochs)} (resumable)" if epochs else f"{verb} (resumable)"


def run_metrics(run: Any) -> dict[str, float]:
    """The run's test metrics (accuracy and beyond-accuracy) flattened into one dict."""
    metrics = run.metrics or {}
    flat: dict[str, float] = {}
    for part in ("metrics", "beyond"):
        flat.update(metrics.get(part, {}))
    return flat


FIXED_COLUMNS = 6  # Run, Model, Status, Settings, Duration, Device; the metrics follow


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
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAlternatingRowColors(True)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(22)
        self.itemDoubleClicked.connect(lambda cell: self.run_activated.emit(self.runs[cell.row()].id))
        self._set_headers()

    def headers(self) -> list[str]:
        return ["Run", "Model", "Status", "Settings", "Duration", "Device", *[metric_title(m) for m in self.metric_columns]]

    def _set_headers(self) -> None:
        headers = self.headers()
        self.setColumnCount(len(headers))
        self.setHorizontalHeaderLabels(headers)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)  # the settings give way (elided; full on hover)
        header.setMinimumSectionSize(40)
        for column, name in enumerate(headers):
            self.setColumnHidden(column, name in self.hidden)

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
            QTableWidgetItem(f"#{run.id}" + ("  ★ active" if active else "")),
            QTableWidgetItem(model_name(run.model)),
            QTableWidgetItem(status_text(run)),
            QTableWidgetItem(settings_summary(run)),
            QTableWidgetItem(format_duration(run.duration_s)),
            QTableWidgetItem(run.device or ""),
            *[QTableWidgetItem(metric_text(run, m)) for m in self.metric_columns],
        ]
        cells[2].setForeground(QBrush(QColor(STATUS_COLOURS.get(run.status, "#334155"))))
        if run.beats_popularity is False:
            cells[2].setText(f"{run.status} · {BELOW_POPULARITY}")
            cells[2].setForeground(QBrush(QColor(STATUS_COLOURS["failed"])))
            cells[2].setToolTip(BELOW_POPULARITY_TIP)
        cells[3].setToolTip(settings_tooltip(run))
        for cell in cells[FIXED_COLUMNS:]:
            cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            cell.setToolTip(users_text(run))
        cells[0].setToolTip("The active model: Explore and exports use it" if active else "Run number")
        return cells
