"""Small pyqtgraph charts with one look across the studio: bars, lines and labelled bars.

Every chart is a ``ChartWidget`` whose ``show_*`` method replaces what it draws, so a page can
redraw it whenever the engine's numbers change; an empty dataset shows a "no data" note instead
of blank axes.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QWidget

pg.setConfigOptions(antialias=True, background="w", foreground="#334155")

ACCENT = "#3b82f6"
BEST = "#16a34a"  # the best value among bars compared
ERROR_BAR = "#0f172a"  # a 95% confidence interval's whiskers
INSIDE_LABEL_SHARE = 0.5  # a bar whose interval begins at least this share of the longest out carries its value inside
LABEL_ROOM = 0.6  # of the longest interval's end, added past it where a value is written beyond its bar's end
NAMED_BAR_HALF_HEIGHT = 0.25  # a bar named above itself: the other half of its row holds the name


class Axis(pg.AxisItem):
    """An axis whose tick and grid lines are opaque, one level of them, at the labelled values.

    pyqtgraph draws grid lines translucent, which Qt's raster engine blends pixel by pixel: ~5 ms
    per plot on every repaint, most of what the live training curves cost the GUI thread while a
    run trains (benchmarks/bench_gui.py). The same colour mixed over the white background and
    drawn opaque costs ~0.1 ms. With one level of lines, no lighter minor line cuts through a
    major one where they cross; ``grid_behind_data`` keeps the lines from hiding the data.
    """

    def __init__(self, orientation: str, whole_numbers: bool = False, **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.whole_numbers = whole_numbers  # counts (epochs): no tick between two integers
        self.setStyle(maxTickLevel=0)

    def tickSpacing(self, minVal, maxVal, size):  # noqa: N802, N803 - pyqtgraph's names
        levels = super().tickSpacing(minVal, maxVal, size)
        return [(max(spacing, 1.0), offset) for spacing, offset in levels] if self.whole_numbers else levels

    def drawPicture(self, p, axisSpec, tickSpecs, textSpecs) -> None:  # noqa: N802, N803 - pyqtgraph's names
        super().drawPicture(p, axisSpec, [(opaque_over_white(pen), start, stop) for pen, start, stop in tickSpecs],
                            labels_apart(textSpecs))


LABEL_GAP_PX = 6  # the least room between two tick labels


def labels_apart(text_specs: list) -> list:
    """Every k-th tick label, for the smallest k at which no two labels touch.

    pyqtgraph places each label of a labelled axis (bar names such as "100-199") at its tick
    whatever its width, so narrow bars ran their labels together ("100-199200-499500-999").
    An even stride keeps the labels that remain readable as a scale.
    """
    for stride in range(1, len(text_specs) + 1):
        kept = text_specs[::stride]
        if not any(_touch(a[0], b[0]) for a, b in zip(kept, kept[1:])):
            return kept
    return text_specs[:1]


def _touch(a, b) -> bool:
    grown = a.adjusted(-LABEL_GAP_PX / 2, -1, LABEL_GAP_PX / 2, 1)
    return grown.intersects(b)


class DateAxis(Axis, pg.DateAxisItem):
    """Calendar-date ticks (unix seconds), drawn as ``Axis`` draws them."""


def chart_axes(dates: bool = False, whole_numbers: bool = False) -> dict[str, pg.AxisItem]:
    """The axes of a new plot (``pg.PlotWidget(axisItems=chart_axes())``): along the bottom,
    calendar dates, counts such as epochs (``whole_numbers``) or plain numbers."""
    return {"left": Axis("left"), "bottom": DateAxis("bottom") if dates else Axis("bottom", whole_numbers)}


def grid_behind_data(plot: pg.PlotWidget) -> None:
    """Draw the view's curves and bars over the axes' opaque grid lines (pyqtgraph puts axes at z 0.5)."""
    plot.getPlotItem().getViewBox().setZValue(1)


def opaque_over_white(pen: QPen) -> QPen:
    """``pen`` with its translucent colour replaced by what it shows over the charts' white background."""
    colour = pen.color()
    if colour.alpha() == 255:
        return pen
    alpha = colour.alphaF()
    opaque = QPen(pen)
    opaque.setColor(QColor.fromRgbF(*(channel * alpha + 1 - alpha for channel in colour.getRgbF()[:3])))
    return opaque


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
        super().__init__(parent=parent, axisItems=chart_axes(date_axis))
        grid_behind_data(self)
        self.setTitle(title, size="10pt")
        self.setLabel("bottom", x_label)
        self.setLabel("left", y_label)
        self.showGrid(x=False, y=True, alpha=0.15)
        self.setLogMode(x=False, y=log_y)
        self.setMenuEnabled(False)
        self.setMinimumHeight(130)  # four of them and the history fit a 700-pixel-high window
        self.setDownsampling(auto=True, mode="peak")
        self._note = pg.TextItem("No data yet", color="#94a3b8", anchor=(0.5, 0.5))
        self.setToolTip(title)

    def use_date_axis(self, dates: bool) -> None:
        """Label the x axis with calendar dates (unix seconds) or with plain numbers."""
        label = self.getPlotItem().getAxis("bottom").labelText
        self.getPlotItem().setAxisItems({"bottom": chart_axes(dates)["bottom"]})
        self.setLabel("bottom", label)

    def clear_chart(self, note: str = "No data yet") -> None:
        """Drop everything drawn and show ``note``: why there is nothing to draw."""
        self.clear()
        self._note.setText(note)
        self.addItem(self._note)
        self._note.setPos(0.5, 0.5)
        self.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        for axis in ("left", "bottom"):
            self.getPlotItem().hideAxis(axis)

    def shown_note(self) -> str:
        """The note shown instead of a chart ("" while something is drawn)."""
        return self._note.toPlainText() if self._note in self.getPlotItem().items else ""

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
                           colours: Optional[Sequence] = None, horizontal: bool = False,
                           value_format: Optional[str] = None, highlight: Sequence[int] = (),
                           intervals: Optional[Sequence[Optional[Sequence[float]]]] = None,
                           names_on_bars: bool = False) -> None:
        """One bar per label (categories, runs), in ``colours`` (one per bar) or the accent colour;
        ``horizontal`` puts long labels on the y axis, or with ``names_on_bars`` above each bar, so a
        narrow chart keeps its width for the bars; ``value_format`` ("{:.4f}") writes each bar's value
        at its end; ``highlight`` rows are drawn in the best-value colour; ``intervals`` ([low, high]
        per bar, None where a bar has none) are drawn as error bars."""
        values = np.asarray(values, dtype=float)
        if not len(values):
            self.clear_chart()
            return
        positions = np.arange(len(values), dtype=float)
        if highlight:
            colours = [BEST if i in highlight else ACCENT for i in range(len(values))]
        ticks = [[(float(i), _short(label, 40 if horizontal else 14)) for i, label in enumerate(labels)]]
        on_bars = horizontal and names_on_bars
        self._start_drawing(None if horizontal else ticks, ([[]] if on_bars else ticks) if horizontal else None)
        fill = {"brushes": list(colours)} if colours is not None else {"brush": ACCENT}
        if horizontal:
            bars = pg.BarGraphItem(x0=0, y=positions, height=2 * NAMED_BAR_HALF_HEIGHT if on_bars else 0.7,
                                   width=values, pen=None, **fill)
        else:
            bars = pg.BarGraphItem(x=positions, height=values, width=0.7, pen=None, **fill)
        self.addItem(bars)
        low, high = _interval_ends(values, intervals)
        if intervals is not None:
            self.addItem(_error_bars(positions, values, low, high, horizontal))
        if value_format is not None:
            self._label_values(positions, values, value_format, horizontal, low, high)
        if on_bars:
            self._name_bars(positions, labels)

    def _name_bars(self, positions: np.ndarray, labels: Sequence[str]) -> None:
        """Each bar's name in the gap just above it (rows read top to bottom), and as much room above
        the first bar as between two bars: the view's automatic range covers the bars only, which
        cut the first name off."""
        for position, label in zip(positions, labels):
            name = pg.TextItem(label, color="#334155", anchor=(0, 1))
            name.setPos(0, position - NAMED_BAR_HALF_HEIGHT)
            self.addItem(name)
        first_name_top = -3 * NAMED_BAR_HALF_HEIGHT
        self.setYRange(first_name_top, len(positions) - 1 + NAMED_BAR_HALF_HEIGHT, padding=0.02)

    def _label_values(self, positions: np.ndarray, values: np.ndarray, value_format: str, horizontal: bool,
                      low: np.ndarray, high: np.ndarray) -> None:
        """Each bar's value at its end, clear of its error bar: inside a bar whose interval begins far
        enough out (in white, before the interval begins), else past the interval's end, with room
        made there when that end is far out (a wide interval from near zero: a label before it ran off
        the chart's start), so no label runs off a narrow chart or sits on a whisker."""
        top = float(high.max()) if len(values) else 1.0
        outside_ends = [end for start, end in zip(low, high) if start < INSIDE_LABEL_SHARE * top]
        if outside_ends and max(outside_ends) > INSIDE_LABEL_SHARE * top:
            (self.setXRange if horizontal else self.setYRange)(0, top * (1 + LABEL_ROOM), padding=0)
        for position, value, start, end in zip(positions, values, low, high):
            inside = start >= INSIDE_LABEL_SHARE * top
            at = start if inside else end
            if horizontal:
                text = pg.TextItem(value_format.format(value), color="w" if inside else "#0f172a",
                                   anchor=(1, 0.5) if inside else (0, 0.5))
                text.setPos(at, position)
            else:
                text = pg.TextItem(value_format.format(value), color="w" if inside else "#0f172a",
                                   anchor=(0.5, 0) if inside else (0.5, 1))
                text.setPos(position, at)
            self.addItem(text)


def _interval_ends(values: np.ndarray, intervals) -> tuple[np.ndarray, np.ndarray]:
    """Each bar's interval as (low, high) arrays; a bar without one reads as its own value."""
    pairs = [tuple(pair) if pair else (value, value) for value, pair in
             zip(values, intervals if intervals is not None else [None] * len(values))]
    low, high = (np.array(side, dtype=float) for side in zip(*pairs)) if pairs else (values, values)
    return np.minimum(low, values), np.maximum(high, values)


def _error_bars(positions: np.ndarray, values: np.ndarray, low: np.ndarray, high: np.ndarray,
                horizontal: bool) -> pg.ErrorBarItem:
    """Whiskers from ``low`` to ``high`` across each bar's end (a 95% confidence interval)."""
    ends = {"left": values - low, "right": high - values} if horizontal else {"bottom": values - low,
                                                                            "top": high - values}
    x, y = (values, positions) if horizontal else (positions, values)
    return pg.ErrorBarItem(x=x, y=y, beam=0.25, pen=pg.mkPen(ERROR_BAR, width=1.5), **ends)


def _short(label: str, limit: int = 14) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"
