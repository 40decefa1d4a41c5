"""The Evaluate page: every run and baseline measured the same way, compared, and tested.

Metrics come from each run's evaluation report (full-catalogue ranking on the held-out test
items, see ``core.evaluation``); runs that finished without one are evaluated here in a worker.
The significance check is the engine's paired test over users, turned into one plain sentence.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSplitter, QVBoxLayout, QWidget,
)

from core.errors import NextPickError
from core.jobs import evaluate_runs
from core.report_text import NO_TEST_USER, p_text
from core.safe_csv import write_csv
from studio.context import StudioContext
from studio.dialogs.errors import show_error
from studio.pages import StudioPage
from studio.widgets.charts import ChartWidget
from studio.widgets.config_form import eval_mode_box
from studio.widgets.run_table import (RunTable, measured, metric_title, read_runs, run_label, run_metrics,
                                      tested_nobody)
from studio.widgets.segments_table import SegmentsTable
from studio.widgets.tables import hint_label
from studio.workers import Job

KS = (5, 10, 20)
BEYOND = ("coverage@10", "diversity@10", "novelty@10")
SIGNIFICANCE_LEVEL = 0.05
NO_VERDICT = "Pick two runs: the test runs as soon as both are chosen."
STOPPED = "Test stopped. Press Test again to run it."
TEST_TIP = "Paired test over the same users (Wilcoxon signed-rank) on the chosen metric"
STOP_TIP = "Stop the running test"
METRIC_TIPS = {
    "hr": "HR@K: share of users whose held-out next item is in the top K",
    "ndcg": "NDCG@K: like HR@K, but a hit counts more the higher it is ranked",
    "mrr": "MRR@K: 1 / rank of the held-out item (0 beyond K), averaged",
    "coverage": "Coverage: share of the catalogue that appears in anyone's top 10",
    "diversity": "Diversity: share of item pairs in a top-10 list from different categories",
    "novelty": "Novelty, in bits: how unexpected the recommended items are, −log2 of the share of events on "
               "each (higher = less popular items; +1 bit = half as popular)",
}


def metric_columns(k: int) -> list[str]:
    return [f"hr@{k}", f"ndcg@{k}", f"mrr@{k}", *BEYOND]


def significance_verdict(result: dict, label_a: str, label_b: str) -> str:
    """One sentence a shop analyst can act on, from ``engine.compare``'s means and p-value."""
    metric = metric_title(result["metric"])
    a, b, p = result["mean_a"], result["mean_b"], result["p_value"]
    if not result["n_users"]:
        return f"Nothing to compare: {NO_TEST_USER}, so neither {label_a} nor {label_b} was tested."
    better, worse = (label_a, label_b) if a >= b else (label_b, label_a)
    figures = f"{metric}: {label_a} {a:.4f} vs {label_b} {b:.4f} over {result['n_users']:,} users, {p_text(p)}."
    if a == b:
        return f"No difference: the two score the same. {figures}"
    if p < SIGNIFICANCE_LEVEL:
        return f"{better} is better than {worse}, and the difference is statistically significant. {figures}"
    return (f"No significant difference: {better} scores higher here, but the gap could be chance "
            f"(p ≥ {SIGNIFICANCE_LEVEL}). {figures}")


class EvaluatePage(StudioPage):
    title = "Evaluate"
    tooltip = "Compare every run and baseline: accuracy, list quality, by history length, and significance"

    def __init__(self, context: StudioContext, parent: Optional[QWidget] = None) -> None:
        super().__init__(context, parent)
        self.job = None
        self._significance_job = None  # the latest significance test: its verdict is the one shown
        self._runs_job: Optional[Job] = None  # the latest read of the runs: only its answer is shown
        self._test_when_read = False  # see _test_after_read
        # (run, mode) -> report computed here: what a read-only workspace could not store
        self.session_reports: dict[tuple[int, object], dict] = {}
        self.k_box = QComboBox()
        for k in KS:
            self.k_box.addItem(f"K = {k}", k)
        self.k_box.setCurrentIndex(KS.index(10))
        self.k_box.setToolTip("Length of the recommendation list the accuracy metrics judge")
        self.eval_box = eval_mode_box("evaluate_eval")  # every run in the table is measured this one way
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setToolTip("Save the table as a CSV file (opens in any spreadsheet)")
        # "No trained model yet…" wraps: it must not hold the page wider than a laptop
        self.status = hint_label()
        self.protocol = hint_label()  # how the runs shown were measured, users left out included
        self.protocol.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Only finished runs are listed, and where they trained is the Train page's concern: without
        # Status and Device every metric fits a laptop's width.
        self.table = RunTable(metric_columns(10), highlight_best=True, hidden=("Status", "Device"))
        self.table.setToolTip("Every finished run, measured on the same held-out test items. " + " ".join(
            METRIC_TIPS[name] + "." for name in ("hr", "ndcg", "mrr")))
        header = QHBoxLayout()
        title = QLabel("Evaluation")
        title.setProperty("role", "heading")
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self.status)
        header.addWidget(QLabel("Evaluated on"))
        header.addWidget(self.eval_box)
        header.addWidget(self.k_box)
        header.addWidget(self.export_button)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self._build_chart())
        bottom.addWidget(self._build_segments())
        bottom.addWidget(self._build_significance())
        bottom.setSizes([300, 560, 240])  # the segments table is the widest of the three: its last column must show
        bottom.setStretchFactor(0, 1)  # the chart and the segments share a wide window's extra width
        bottom.setStretchFactor(1, 1)
        runs = QWidget()
        runs_layout = QVBoxLayout(runs)
        runs_layout.setContentsMargins(0, 0, 0, 0)
        runs_layout.addWidget(self.table, 1)
        runs_layout.addWidget(self.table.details)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(runs)
        splitter.addWidget(bottom)
        splitter.setSizes([200, 480])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.addLayout(header)
        layout.addWidget(self.protocol)
        layout.addWidget(splitter, 1)
        self.k_box.currentIndexChanged.connect(self._on_k_changed)
        self.eval_box.currentIndexChanged.connect(self.refresh)
        self.eval_box.currentIndexChanged.connect(self._test_after_read)  # the verdict follows the mode
        self.metric_box.currentIndexChanged.connect(self._redraw)
        self.export_button.clicked.connect(self._on_export)
        self.compare_button.clicked.connect(self._on_compare_clicked)
        for box in (self.run_a, self.run_b, self.metric_box):  # two runs chosen: the test runs by itself
            box.currentIndexChanged.connect(self._significance_if_ready)
        context.workspace_changed.connect(self.session_reports.clear)
        context.workspace_changed.connect(self.refresh)
        context.runs_changed.connect(self.refresh)
        context.active_run_changed.connect(lambda _run: self.refresh())
        self.refresh()

    def _build_chart(self) -> QWidget:
        self.metric_box = QComboBox()
        self.metric_box.setToolTip("The metric the bar chart and the breakdown compare")
        self.chart = ChartWidget("Runs compared", "", "")
        self.chart.setToolTip("The chosen metric per run; the whiskers span its 95% confidence interval over the "
                              "test users (coverage, diversity and novelty are one figure over all lists: no interval)")
        box = QGroupBox("Compare runs")
        layout = QVBoxLayout(box)
        layout.addWidget(self.metric_box)
        layout.addWidget(self.chart, 1)
        return box

    def _build_segments(self) -> QWidget:
        self.segments = SegmentsTable()
        box = QGroupBox("By history length")
        layout = QVBoxLayout(box)
        layout.addWidget(self.segments)
        return box

    def _build_significance(self) -> QWidget:
        self.run_a, self.run_b = QComboBox(), QComboBox()
        for box in (self.run_a, self.run_b):  # long run names must not set the page's minimum width
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(8)
        self.run_a.setToolTip("First run of the comparison")
        self.run_b.setToolTip("Second run of the comparison")
        self.compare_button = QPushButton("Test again")
        self.compare_button.setToolTip(TEST_TIP)
        self.verdict = QLabel(NO_VERDICT)
        self.verdict.setWordWrap(True)
        self.verdict.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box = QGroupBox("Significance")
        layout = QVBoxLayout(box)
        for label, widget in (("Run A", self.run_a), ("Run B", self.run_b)):
            row = QHBoxLayout()
            row.addWidget(QLabel(label))
            row.addWidget(widget, 1)
            layout.addLayout(row)
        layout.addWidget(self.compare_button)
        layout.addWidget(self.verdict)
        layout.addStretch(1)
        return box

    # -- content --------------------------------------------------------------------------

    @property
    def engine(self):
        return self.context.engine

    def page_shown(self) -> None:
        self._evaluate_missing()
        if self.verdict.text() == NO_VERDICT:
            self._significance_if_ready()

    @property
    def eval_mode(self):
        from core.data import EvalMode

        return EvalMode(self.eval_box.currentData())

    def refresh(self) -> None:
        """Read the runs in a worker; the latest read started is the one shown."""
        self._runs_job = None
        if self.engine is None:
            self._show_runs(None, [], None)
            return
        job = self._runs_job = self.context.run(read_runs, self.engine, progress=False, cancel=False)
        job.returned.connect(lambda result: self._show_runs(job, *result))
        job.errored.connect(lambda exc: job is self._runs_job and show_error(self, exc, "Reading the runs"))

    def _show_runs(self, job: Optional[Job], every_run: list, active: Optional[int]) -> None:
        """The finished runs, each with its report under the chosen evaluation mode (none yet: evaluated
        when the page shows), so no two rows are measured differently."""
        if not self.answers_now(job, self._runs_job):
            return  # another workspace opened, the runs changed again, or the page is gone since it started
        runs = [self._as_measured(run) for run in every_run if run.status == "done"]
        self.table.set_runs(runs, active)
        chosen = (self.run_a.currentData(), self.run_b.currentData())
        for box in (self.run_a, self.run_b):
            wanted = box.currentData()
            box.blockSignals(True)  # one test after the refill, not one per item added
            box.clear()
            for run in runs:
                box.addItem(run_label(run), run.id)
            if box.findData(wanted) >= 0:
                box.setCurrentIndex(box.findData(wanted))
            box.blockSignals(False)
        if self.run_b.currentIndex() == 0 and len(runs) > 1 and self.run_a.currentIndex() == 0:
            self.run_b.blockSignals(True)
            self.run_b.setCurrentIndex(1)
            self.run_b.blockSignals(False)
        self.compare_button.setEnabled(len(runs) > 1)
        self.export_button.setEnabled(bool(runs))
        self.status.setText("" if runs else "No trained model yet — go to Train and train a model or a baseline.")
        protocols = dict.fromkeys(run.metrics["protocol"] for run in runs if run.metrics.get("protocol"))
        self.protocol.setText("\n".join(protocols))
        self._fill_metric_box()
        self.paint_when_seen(self._redraw)
        if (self.run_a.currentData(), self.run_b.currentData()) != chosen or self._test_when_read:
            self._test_when_read = False
            self._significance_if_ready()
        if self.isVisible():
            self._evaluate_missing()

    def _as_measured(self, run):
        """The run with its report under the chosen mode: stored, else computed on this page."""
        shown = run.evaluated_as(self.eval_mode)
        kept = self.session_reports.get((run.id, self.eval_mode))
        return shown if measured(shown) or kept is None else replace(shown, metrics={**shown.metrics, **kept})

    def _fill_metric_box(self) -> None:
        chosen = self.metric_box.currentText()
        self.metric_box.blockSignals(True)
        self.metric_box.clear()
        for name in self.table.metric_columns:
            self.metric_box.addItem(metric_title(name), name)
            self.metric_box.setItemData(self.metric_box.count() - 1, METRIC_TIPS[name.split("@")[0]],
                                        Qt.ItemDataRole.ToolTipRole)
        index = self.metric_box.findText(chosen)
        self.metric_box.setCurrentIndex(index if index >= 0 else 1)
        self.metric_box.blockSignals(False)

    def _on_k_changed(self) -> None:
        self.table.set_metric_columns(metric_columns(self.k_box.currentData()))
        self._fill_metric_box()
        self._redraw()

    def _redraw(self) -> None:
        metric = self.metric_box.currentData()
        rows = [row for row, run in enumerate(self.table.runs) if metric in run_metrics(run)]
        runs = [self.table.runs[row] for row in rows]
        best = set(self.table.best_rows(metric)) if metric else set()
        self.chart.setTitle(f"{metric_title(metric) if metric else ''} by run", size="10pt")
        if not runs and self.table.runs and all(map(tested_nobody, self.table.runs)):
            self.chart.clear_chart("No test user:\nnothing measured")
            self.segments.show_runs(self.table.runs, metric)
            return
        self.chart.show_labelled_bars([run_label(run) for run in runs], [run_metrics(run)[metric] for run in runs],
                                      horizontal=True, value_format="{:.4f}",
                                      highlight=[bar for bar, row in enumerate(rows) if row in best],
                                      intervals=[(run.metrics or {}).get("intervals", {}).get(metric) for run in runs],
                                      names_on_bars=True)
        self.segments.show_runs(self.table.runs, metric)

    # -- jobs -----------------------------------------------------------------------------

    def _evaluate_missing(self) -> None:
        missing = [run.id for run in self.table.runs if not measured(run)]
        if not missing or self.engine is None or (self.job is not None and self.job.running):
            return
        self.status.setText(f"Evaluating {len(missing)} run(s) on {self.eval_mode.label}…")
        mode = self.eval_mode
        job = self.job = self.context.run_in_process(evaluate_runs, missing, mode, name="evaluation")
        job.progress.connect(lambda report: self.answers_now(job, self.job) and self.status.setText(report.message))
        job.errored.connect(lambda exc: self.answers_now(job, self.job) and show_error(self, exc, "Evaluation"))
        job.returned.connect(lambda reports: self._keep_reports(reports, mode))

    def _keep_reports(self, reports: dict[int, dict], mode) -> None:
        self.session_reports.update({(run_id, mode): report for run_id, report in reports.items()})
        self._test_after_read()
        self.context.announce_runs_changed()

    def _test_after_read(self) -> None:
        """Test the chosen runs once the runs are read again (new reports were kept, or the mode
        changed): the table still holds the runs as measured before."""
        self._test_when_read = True

    def _significance_if_ready(self) -> None:
        """Test the two chosen runs, once every run shown has its report under the chosen mode (the
        evaluation that computes them ends by calling this again)."""
        a, b = self.run_a.currentData(), self.run_b.currentData()
        ready = all(map(measured, self.table.runs))
        if a is not None and b is not None and a != b and self.engine is not None and self.isVisible() and ready:
            self.run_significance()

    def run_significance(self) -> Optional[Job]:
        """The paired test of the two chosen runs, in the job process: under another evaluation mode
        than the runs were trained for it evaluates both first, seconds of work the window's
        interpreter must not share. A test started earlier is stopped: only the latest speaks."""
        a, b = self.run_a.currentData(), self.run_b.currentData()
        metric = self.metric_box.currentData()
        if a is None or b is None or a == b or metric not in {f"{m}@{k}" for m in ("hr", "ndcg", "mrr") for k in KS}:
            self.verdict.setText("Pick two different runs and an accuracy metric (HR, NDCG or MRR).")
            return None
        from core.engine import Engine  # loaded with the workspace already

        if self._significance_job is not None:
            self._significance_job.cancel()
        label_a, label_b = self.run_a.currentText(), self.run_b.currentText()
        self.verdict.setText("Testing…")
        job = self.context.run_in_process(Engine.compare, a, b, metric=metric, eval_mode=self.eval_mode,
                                          name="significance test")
        self._significance_job = job
        job.progress.connect(lambda report: self._show_verdict(job, f"Testing… {report.message}".strip()))
        job.returned.connect(lambda result: self._show_verdict(job, significance_verdict(result, label_a, label_b)))
        job.errored.connect(lambda exc: self._show_verdict(job, "The test could not run.", exc))
        job.aborted.connect(lambda: self._show_verdict(job, STOPPED))
        job.finished.connect(lambda: self._show_testing(job, False))
        self._show_testing(job, True)
        return job

    def _on_compare_clicked(self) -> None:
        """The button runs the test, or stops the one running."""
        job = self._significance_job
        if job is not None and job.running:
            job.cancel()
        else:
            self.run_significance()

    def _show_testing(self, job: Job, running: bool) -> None:
        if self.answers_now(job, self._significance_job):
            self.compare_button.setText("Stop test" if running else "Test again")
            self.compare_button.setToolTip(STOP_TIP if running else TEST_TIP)

    def _show_verdict(self, job: Job, text: str, exc: Optional[BaseException] = None) -> None:
        if not self.answers_now(job, self._significance_job):
            return
        self.verdict.setText(text)
        if exc is not None:
            show_error(self, exc, "Significance test")

    def _on_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export evaluation table", "evaluation.csv", "CSV files (*.csv)")
        if path:
            self.export_csv(Path(path))

    def export_csv(self, path: Path) -> None:
        try:
            header, *rows = self.table.rows_as_text()
            write_csv(path, header, rows)
        except NextPickError as exc:
            show_error(self, exc, "Export")
