"""Live training curves: loss per step and per epoch, validation NDCG@10 and HR@10 per epoch."""

from __future__ import annotations

from typing import Optional

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QWidget

from studio.widgets.charts import chart_axes, grid_behind_data

LOSS_COLOUR = "#2563eb"
NDCG_COLOUR = "#059669"
HR_COLOUR = "#d97706"
BASELINE_COLOUR = "#64748b"
REDRAW_MS = 250  # live reports are drawn together at most this often


def _plot(title: str, x_label: str, tooltip: str, legend_offset: tuple[int, int]) -> pg.PlotWidget:
    """A plot with its legend in the corner the curves usually leave free (loss falls, quality rises),
    on a white ground: a small log's noisy validation curves leave no corner free."""
    plot = pg.PlotWidget(background="w", axisItems=chart_axes(whole_numbers=True))  # steps and epochs
    grid_behind_data(plot)
    plot.setTitle(title, size="10pt")
    plot.setLabel("bottom", x_label)
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setMenuEnabled(False)
    plot.addLegend(offset=legend_offset, brush=pg.mkBrush(255, 255, 255, 230), pen=pg.mkPen("#cbd5e1"))
    plot.setToolTip(tooltip)
    plot.setMinimumHeight(160)
    return plot


class TrainingCharts(QWidget):
    """Two plots fed by the training job's progress metrics (see ``core.training.loop``)."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.loss_plot = _plot("Training loss", "step", "Loss of each reported step (thin) and the mean per epoch (dots)",
                               (-10, 10))
        self.valid_plot = _plot("Validation", "epoch", "Full-catalogue NDCG@10 and HR@10 on the validation users "
                                "after each epoch: higher is better", (-10, -10))
        self.step_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#93c5fd", width=1), name="step loss")
        self.step_curve.setClipToView(True)  # a long run's thousands of steps: only those in view,
        self.step_curve.setDownsampling(auto=True, method="peak")  # at most a few per pixel
        self.epoch_curve = self.loss_plot.plot([], [], pen=pg.mkPen(LOSS_COLOUR, width=2), symbol="o",
                                               symbolSize=6, symbolBrush=LOSS_COLOUR, name="epoch loss")
        self.ndcg_curve = self.valid_plot.plot([], [], pen=pg.mkPen(NDCG_COLOUR, width=2), symbol="o",
                                               symbolSize=6, symbolBrush=NDCG_COLOUR, name="NDCG@10")
        self.hr_curve = self.valid_plot.plot([], [], pen=pg.mkPen(HR_COLOUR, width=2), symbol="s",
                                             symbolSize=6, symbolBrush=HR_COLOUR, name="HR@10")
        self.baseline_line = pg.InfiniteLine(angle=0, movable=False,
                                             pen=pg.mkPen(BASELINE_COLOUR, width=1.5, style=Qt.PenStyle.DashLine),
                                             label="popularity", labelOpts={"position": 0.02, "color": BASELINE_COLOUR,
                                                                            "anchors": [(0, 1), (0, 1)]})
        self.baseline_line.hide()
        self.valid_plot.addItem(self.baseline_line)
        self.baseline: Optional[float] = None
        self._redraw_timer = QTimer(self, singleShot=True, interval=REDRAW_MS)
        self._redraw_timer.timeout.connect(self._redraw)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.valid_plot)
        self.clear()

    def set_baseline(self, ndcg10: Optional[float]) -> None:
        """The popularity baseline's validation NDCG@10 on the same split, as a dashed line the
        model's curve has to climb above; None hides it (no baseline trained on this split yet)."""
        self.baseline = ndcg10
        self.baseline_line.setVisible(ndcg10 is not None)
        if ndcg10 is not None:
            self.baseline_line.setValue(ndcg10)

    def clear(self) -> None:
        """Empty plots for a live run: loss over steps, validation over epochs."""
        self.steps: list[tuple[float, float]] = []
        self.epochs: list[tuple[float, float, float, float, float]] = []  # (epoch, step, loss, ndcg, hr)
        self.loss_plot.setLabel("bottom", "step")
        self._redraw()

    def show_history(self, epochs: list[dict]) -> None:
        """A finished run's per-epoch records (``core.training.loop.EpochRecord`` as dicts), loss over epochs."""
        self.steps = []
        self.epochs = [(e["epoch"], e["epoch"], e["loss"], e["valid_ndcg10"], e["valid_hr10"]) for e in epochs]
        self.loss_plot.setLabel("bottom", "epoch")
        self._redraw()

    def add_report(self, metrics: dict) -> None:
        """One progress report's metrics: a step point, and an epoch point when validation ran (or
        popularity's validation score, the dashed line); drawn with the others that arrive within
        ``REDRAW_MS``. Redrawing on every report re-ranged and repainted both plots several times a
        second, 20-40 ms of the window's time each, during which training's threads took the CPUs
        (bench_gui.py --watchdog)."""
        if "popularity_valid_ndcg10" in metrics:  # the run measured popularity on its own validation users
            self.set_baseline(metrics["popularity_valid_ndcg10"])
        if "loss" not in metrics or "step" not in metrics:
            return
        if "valid_ndcg10" in metrics:
            self.epochs.append((metrics["epoch"], metrics["step"], metrics["loss"],
                                metrics["valid_ndcg10"], metrics["valid_hr10"]))
        else:
            self.steps.append((metrics["step"], metrics["loss"]))
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def _redraw(self) -> None:
        self.step_curve.setData([s for s, _ in self.steps], [loss for _, loss in self.steps])
        self.epoch_curve.setData([e[1] for e in self.epochs], [e[2] for e in self.epochs])
        self.ndcg_curve.setData([e[0] for e in self.epochs], [e[3] for e in self.epochs])
        self.hr_curve.setData([e[0] for e in self.epochs], [e[4] for e in self.epochs])
