"""Small pyqtgraph charts with one look across the studio: bars, lines and labelled bars.

Every chart is a ``ChartWidget`` whose ``show_*`` method replaces what it draws, so a page can
redraw it whenever the engine's numbers change; an empty dataset shows a "no data" note instead
of blank axes.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

pg.setConfigOptions(antialias=True, background="w", foreground="#334155")

ACCENT = "#3b82f6"


class ChartWidget(pg.PlotWidget):
    """A titled plot with labelled axes that redraws from plain arrays."""

    def __init__(
        self,
        title: str,
        x_label: str = "",
        y_label: str = "",
        *,
        date_axis: bool = False,
        log_y: bool = False,
        parent: Optional[QWidget] = None,
    ) -> None:
        axis_items = {"bottom": pg.DateAxisItem()} if date_axis else None
        super().__init__(parent=parent, axisItems=axis_items)
        self.setTitle(title, size="10pt")
        self.setLabel("bottom", x_label)
        self.setLabel("left", y_label)
        self.showGrid(x=False, y=True, alpha=0.15)
        self.setLogMode(x=False, y=log_y)
        self.setMenuEnabled(False)
        self.setMinimumHeight(180)
        self.setDownsampling(auto=True, mode="peak")
        self._note = pg.TextItem("No data yet", color="#94a3b8", anchor=(0.5, 0.5))
        self.setToolTip(title)

    def use_date_axis(self, dates: bool) -> None:
        """Label the x axis with calendar dates (unix seconds) or with plain numbers."""
        axis = pg.DateAxisItem(orientation="bottom") if dates else pg.AxisItem(orientation="bottom")
        label = self.getPlotItem().getAxis("bottom").labelText
        self.getPlotItem().setAxisItems({"bottom": axis})
        self.setLabel("bottom", label)

    def clear_chart(self) -> None:
        """Drop everything drawn and show the "no data" note."""
        self.clear()
        self.addItem(self._note)
        self._note.setPos(0.5, 0.5)
        self.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        for axis in ("left", "bottom"):
            self.getPlotItem().hideAxis(axis)

    def _start_drawing(self, bottom_ticks=None, left_ticks=None) -> None:
        self.clear()
        plot = self.getPlotItem()
        for axis in ("left", "bottom"):
            plot.showAxis(axis)
        plot.getAxis("bottom").setTicks(bottom_ticks)
        plot.getAxis("left").setTicks(left_ticks)
        inverted = left_ticks is not None  # labelled rows read top to bottom
        if plot.getViewBox().yInverted() != inverted:  # setting it relays out both axes (~20 ms)
            plot.invertY(inverted)
        plot.enableAutoRange()

    def show_bars(self, x: Sequence[float], heights: Sequence[float], width: Optional[float] = None) -> None:
        """Vertical bars centred on ``x`` (the histogram look)."""
        x = np.asarray(x, dtype=float)
        heights = np.asarray(heights, dtype=float)
        if not len(x):
            self.clear_chart()
            return
        self._start_drawing()
        if width is None:
            width = float(np.min(np.diff(x))) * 0.9 if len(x) > 1 else 1.0
        self.addItem(pg.BarGraphItem(x=x, height=heights, width=width, brush=ACCENT, pen=None))

    def show_line(self, x: Sequence[float], y: Sequence[float], *, fill: bool = False) -> None:
        """One line (optionally filled down to zero)."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        if not len(x):
            self.clear_chart()
            return
        self._start_drawing()
        brush = pg.mkBrush(59, 130, 246, 60) if fill else None
        self.plot(x, y, pen=pg.mkPen(ACCENT, width=2), fillLevel=0 if fill else None, brush=brush)

    def show_labelled_bars(self, labels: Sequence[str], values: Sequence[float], *,
                           colours: Optional[Sequence] = None, horizontal: bool = False) -> None:
        """One bar per label (categories, runs), in ``colours`` (one per bar) or the accent colour;
        ``horizontal`` puts long labels on the y axis."""
        values = np.asarray(values, dtype=float)
        if not len(values):
            self.clear_chart()
            return
        positions = np.arange(len(values), dtype=float)
        ticks = [[(float(i), _short(label, 22 if horizontal else 14)) for i, label in enumerate(labels)]]
        self._start_drawing(None if horizontal else ticks, ticks if horizontal else None)
        fill = {"brushes": list(colours)} if colours is not None else {"brush": ACCENT}
        if horizontal:
            bars = pg.BarGraphItem(x0=0, y=positions, height=0.7, width=values, pen=None, **fill)
        else:
            bars = pg.BarGraphItem(x=positions, height=values, width=0.7, pen=None, **fill)
        self.addItem(bars)


def _short(label: str, limit: int = 14) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"
