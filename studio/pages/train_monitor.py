"""The Train page's right side: the live curves, progress and log of the run being trained (or the selected
run's epochs while nothing trains), above the run history the page adds.

``TrainingMonitor`` turns the engine's ``Progress`` reports into curves, a progress bar and log lines;
the page tells it when a job begins and how it ended.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPlainTextEdit, QProgressBar, QSplitter, QVBoxLayout, QWidget

from core.progress import Progress
from core.report_text import p_text
from studio.widgets.run_table import format_duration, run_label
from studio.widgets.tables import hint_label
from studio.widgets.training_charts import TrainingCharts


class TrainingMonitor(QSplitter):
    """Curves and progress, the log, then the run history (``add_history``), one above the other."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(Qt.Orientation.Vertical, parent)
        self.started_at = 0.0
        self._last_stage = ""
        self.charts = TrainingCharts()
        self.progress_bar = QProgressBar()
        self.progress_bar.setToolTip("Progress of the current run over its planned epochs (those that fit the time "
                                     "budget; early stopping may end it sooner)")
        # Wrapped: a long line (why an update kept its weights) set the window wider than a 1024-pixel screen.
        self.progress_text = hint_label("No run in progress.")
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setToolTip("What the training reported, newest at the bottom")
        self.log.setMaximumBlockCount(2000)
        self.log.setPlaceholderText("The training log appears here: each epoch's loss and validation scores.")
        live = QWidget()
        live_layout = QVBoxLayout(live)
        live_layout.setContentsMargins(0, 0, 0, 0)
        live_layout.addWidget(self.charts, 1)
        live_layout.addWidget(self.progress_bar)
        live_layout.addWidget(self.progress_text)
        self.addWidget(live)
        self.addWidget(self.log)

    def add_history(self, history: QWidget) -> None:
        self.addWidget(history)
        self.setSizes([380, 110, 230])

    def begin(self, line: str, baseline: Optional[float]) -> None:
        """A job starts: ``line`` opens the log, ``baseline`` (popularity's validation score on the same
        split, or None) is drawn dashed."""
        self.log.clear()
        self.write(line)
        self.charts.clear()
        self.charts.set_baseline(baseline)
        self.progress_bar.setRange(0, 0)
        self.started_at = time.perf_counter()

    def follow(self, report: Progress) -> None:
        if report.total:
            self.progress_bar.setRange(0, report.total)
            self.progress_bar.setValue(report.done)
        self.progress_text.setText(progress_line(report, time.perf_counter() - self.started_at))
        self.charts.add_report(report.metrics)
        if worth_logging(report, self._last_stage):
            self.write(report.message)
        self._last_stage = report.stage

    def finished(self, run: Any) -> None:
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1)
        self.progress_text.setText(f"Run #{run.id} finished in {format_duration(run.duration_s)}"
                                   f"{finish_note(run)}.")
        lineage = f", {run.lineage()}" if run.lineage() else ""
        self.write(f"Finished: {run_label(run)}, status {run.status}{finish_note(run)}{lineage}.")
        if run.beats_popularity is False:
            self.write(popularity_warning(run))

    def cancelled(self) -> None:
        self.progress_text.setText("Stopped. The last checkpoint is kept: select the run and press Resume.")
        self.write("Stopped by you; the run is marked cancelled.")

    def failed(self, exc: BaseException) -> None:
        self.progress_text.setText("Training failed; nothing in the workspace was lost.")
        self.write(f"Failed: {exc}")

    def show_epochs_of(self, run: Any, baseline: Optional[float]) -> None:
        """The curves of a stored run's epochs (``baseline`` as in ``begin``)."""
        epochs = (run.metrics or {}).get("training", {}).get("epochs", [])
        self.charts.show_history(epochs)
        self.charts.set_baseline(baseline)
        if epochs:
            self.progress_text.setText(epochs_text(run, len(epochs)))
        else:
            self.progress_text.setText(f"{run_label(run)}: a baseline, fitted in one pass (no epochs to plot).")

    def write(self, line: str) -> None:
        if line:
            self.log.appendPlainText(line)


def finish_note(run: Any) -> str:
    """", cut short by the 10 min time budget" when the budget ended training; "" otherwise."""
    training = (run.metrics or {}).get("training", {})
    if not training.get("budget_cut"):
        return ""
    budget = (training.get("estimate") or {}).get("budget_s")
    return f", cut short by the {format_duration(budget)} time budget" if budget else ", cut short by the time budget"


def epochs_text(run: Any, run_epochs: int) -> str:
    """A stored run's epochs in one line. Best epoch 0 is an update that kept the weights it started from
    (it read "1 epochs, best validation NDCG@10 at epoch 0"), said as `nextpick update` says it."""
    best = (run.metrics or {}).get("training", {}).get("best_epoch")
    epochs = f"{run_epochs} epoch{'' if run_epochs == 1 else 's'}"
    if best == 0:
        return (f"{run_label(run)}: no epoch beat the weights it started from on validation ({epochs} run): "
                "it kept them.")
    return f"{run_label(run)}: {epochs}, best validation NDCG@10 at epoch {best}."


def popularity_warning(run: Any) -> str:
    """Why a finished neural run is not made the active model: popularity did as well or better on validation."""
    gate = run.metrics["gate"]
    return (f"Warning: {run_label(run)} did not beat popularity on validation (NDCG@10 {gate['mean_a']:.4f} vs "
            f"{gate['mean_b']:.4f}, {p_text(gate['p_value'])}), so it is not made the active model.")


def worth_logging(report: Progress, previous_stage: str) -> bool:
    """Epoch results, and each other stage's first and last report: the log stays readable."""
    if report.stage == "train":
        return "valid_ndcg10" in report.metrics or report.stage != previous_stage
    return report.stage != previous_stage or (report.total is not None and report.done >= report.total)


def progress_line(report: Progress, elapsed_s: float) -> str:
    """'epoch 3 · 1,240 sequences/s · 2 min 05 s left · 41.0 s so far' from one report."""
    parts = []
    if "epoch" in report.metrics:
        parts.append(f"epoch {report.metrics['epoch']}")
    if report.metrics.get("seqs_per_s"):
        parts.append(f"{report.metrics['seqs_per_s']:,.0f} sequences/s")
    if report.eta_s is not None:
        parts.append(f"at most {format_duration(report.eta_s)} left")
    parts.append(f"{format_duration(elapsed_s)} so far")
    return " · ".join(parts)
