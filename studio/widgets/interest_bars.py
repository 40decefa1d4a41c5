"""Predicted next interests as horizontal bars: one bar per interest, longest on top."""

from __future__ import annotations

from typing import Optional, Sequence

import pyqtgraph as pg
from PySide6.QtWidgets import QStackedLayout, QWidget

from studio.widgets.charts import chart_axes
from studio.widgets.palette import category_colour
from studio.widgets.tables import hint_label

MAX_BARS = 8  # the pane sits beside the item details: more bars would crowd their labels


class InterestBars(QWidget):
    """Bar chart of ``engine.interests(...)``: ``Interest(name, probability)`` objects."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.interests: list = []
        self.plot = pg.PlotWidget(background="w", axisItems=chart_axes())
        self.plot.setToolTip("How likely each interest is to be the user's next one, as predicted by the model")
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.getPlotItem().hideAxis("bottom")  # each bar's label carries its probability
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.7, width=[])
        self.plot.addItem(self.bars)
        self.empty = hint_label("Pick a user and a model to see their predicted interests.")
        self.stack = QStackedLayout(self)
        self.stack.addWidget(self.plot)
        self.stack.addWidget(self.empty)
        self.set_interests([])

    def set_interests(self, interests: Sequence, empty_text: Optional[str] = None) -> None:
        """Show the ``MAX_BARS`` most probable interests; none → the empty text."""
        self.interests = sorted(interests, key=lambda it: it.probability, reverse=True)[:MAX_BARS]
        if not self.interests:
            if empty_text:
                self.empty.setText(empty_text)
            self.stack.setCurrentWidget(self.empty)
            return
        ordered = list(reversed(self.interests))  # the most probable at the top of the y axis
        heights = [float(it.probability) for it in ordered]
        self.bars.setOpts(x0=[0.0] * len(ordered), y=list(range(len(ordered))), height=0.7, width=heights,
                          brushes=[category_colour(it.name) for it in ordered], pen=pg.mkPen(None))
        axis = self.plot.getPlotItem().getAxis("left")
        axis.setTicks([[(i, bar_label(it)) for i, it in enumerate(ordered)]])
        self.plot.setXRange(0, max(max(heights), 1e-6) * 1.04, padding=0)
        self.plot.setYRange(-0.6, len(ordered) - 0.4, padding=0)
        self.stack.setCurrentWidget(self.plot)


def bar_label(interest) -> str:
    """The interest's name with its probability, in place of a value axis: in the narrow pane one
    showed a single tick, and took the width the bars need."""
    return f"{_short(interest.name)}  {_percent(interest.probability)}"


def _percent(probability: float) -> str:
    return f"{probability:.0%}" if probability >= 0.01 else "<1%"


def _short(name: str, limit: int = 18) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"
