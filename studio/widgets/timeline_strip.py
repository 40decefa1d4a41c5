"""The sequence's strip of coloured marks, oldest left, over a date axis, and the legend of its shapes.

Events are placed by position, not by clock time: gaps of weeks between sessions would squeeze
a session's dozen events into one pixel. Events added in a what-if are drawn hollow.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional, Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPixmap, QIcon, QPolygonF
from PySide6.QtWidgets import QToolTip, QWidget

from studio.widgets.palette import category_colour
from studio.widgets.timeline_events import TimelineEvent, after_held_out, as_user_sequence
from studio.widgets.user_list import format_time

HELD_OUT_BACKGROUND = QColor("#fde68a")  # the ranked lists' hit colour
UNSEEN_FOREGROUND = QColor("#94a3b8")  # events after the held-out one: the model had not seen them
GLYPHS = {"purchase": "diamond", "cart": "square"}  # every other event type is a circle
MARK_SPACING = 14.0  # px between marks at the default zoom: a purchase (8 px half-width) never touches a neighbour
STRIP_HEIGHT = 44
AXIS_LABEL_GAP = 64  # px between two date labels
ZOOM_STEP = 1.5
_MARK = 5.0  # half-size of a mark in pixels
MARK_MARGIN = 2 * _MARK
_EMPHASIS = {"purchase": 1.6, "cart": 1.25}  # bigger marks for stronger signals


class TimelineStrip(QWidget):
    """The sequence as coloured marks, oldest left, over a time axis; click a mark to pick that event.

    Marks sit ``spacing`` pixels apart, never overlapping at the default zoom: a user with 700
    events gets a strip wider than the pane, scrolled (``SequenceTimeline`` puts it in a scroll
    area, latest events in view) and zoomed out to fit with "Fit" or Ctrl+wheel.
    """

    event_clicked = Signal(int)
    zoom_requested = Signal(float)  # a factor: Ctrl+wheel over the strip

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.events: Sequence[TimelineEvent] = ()
        self.span = 0.0  # seconds from the first timed event to the last
        self.selected: Optional[int] = None
        self.held_out: list[int] = []
        self.spacing = MARK_SPACING
        self.time_kind = "unix"
        self.setMinimumHeight(STRIP_HEIGHT)
        self.setMouseTracking(True)
        self.setToolTip("The whole sequence, oldest left, with its dates below. Colour = category; shape = "
                        "event type (see the legend); hollow marks = what-if events. In compare mode the "
                        "held-out event is ringed and the events after it are grey. Click a mark to select it; "
                        "Ctrl+wheel or the buttons zoom.")

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(self.content_width(), STRIP_HEIGHT)

    def content_width(self) -> int:
        return int(2 * MARK_MARGIN + self.spacing * max(len(self.events) - 1, 0))

    def set_spacing(self, spacing: float) -> None:
        self.spacing = max(spacing, 0.05)
        self.setMinimumWidth(self.content_width())
        self.updateGeometry()
        self.update()

    def set_events(self, events: Sequence[TimelineEvent]) -> None:
        self.events = events
        self.span = as_user_sequence(events).time_span
        self.selected = None
        self.setMinimumWidth(self.content_width())
        self.set_held_out([])

    def set_held_out(self, rows: list[int]) -> None:
        """Ring the held-out events (ascending rows) and grey those after them, as the list below shades them."""
        self.held_out = rows
        self.update()

    def select(self, index: Optional[int]) -> None:
        self.selected = index
        self.update()

    def x_of(self, index: int) -> float:
        """Where event ``index`` is drawn; a strip wider than its marks centres them."""
        spare = max(self.width() - self.content_width(), 0) / 2
        return MARK_MARGIN + spare + self.spacing * index

    def _index_at(self, x: float) -> Optional[int]:
        if not self.events:
            return None
        guess = round((x - self.x_of(0)) / self.spacing)
        return int(min(max(guess, 0), len(self.events) - 1))

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        mid = _MARK * 2 + 2
        painter.setPen(QPen(QColor("#cbd5e1"), 1))
        painter.drawLine(QPointF(_MARK, mid), QPointF(self.width() - _MARK, mid))
        first, last = self._visible_range(event.rect())
        for index in range(first, last):
            self._paint_mark(painter, index, self.events[index], mid)
        self._paint_axis(painter, mid + 2 * _MARK + 4, first, last)
        painter.end()

    def _visible_range(self, rect) -> tuple[int, int]:
        """The events inside ``rect`` (plus a mark's width): a 2,000-event strip repaints only what shows."""
        if not self.events:
            return 0, 0
        first = self._index_at(rect.left() - 2 * _MARK) or 0
        last = (self._index_at(rect.right() + 2 * _MARK) or 0) + 1
        return first, last

    def _paint_mark(self, painter: QPainter, index: int, event: TimelineEvent, mid: float) -> None:
        colour = UNSEEN_FOREGROUND if after_held_out(self.held_out, index) else category_colour(event.category)
        size = _MARK * _EMPHASIS.get(event.event_type, 1.0)
        centre = QPointF(self.x_of(index), mid)
        if index in self.held_out:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QBrush(HELD_OUT_BACKGROUND))
            painter.drawEllipse(centre, size + 4, size + 4)
        painter.setPen(QPen(QColor("#0f172a") if index == self.selected else colour.darker(130), 2 if index == self.selected else 1))
        painter.setBrush(QBrush(Qt.BrushStyle.NoBrush) if event.what_if else QBrush(colour))
        draw_glyph(painter, event.event_type, centre, size)

    def _paint_axis(self, painter: QPainter, top: float, first: int, last: int) -> None:
        """Date labels where the period changes (hour, day, month or year, by the sequence's span),
        at least ``AXIS_LABEL_GAP`` pixels apart."""
        painter.setPen(QPen(QColor("#64748b")))
        previous_label, previous_x = None, -AXIS_LABEL_GAP
        for index in range(first, last):
            label = axis_label(self.events[index], self.span, self.time_kind)
            x = self.x_of(index)
            if label is not None and label != previous_label and x - previous_x >= AXIS_LABEL_GAP:
                painter.drawLine(QPointF(x, top - 3), QPointF(x, top))
                painter.drawText(QPointF(x + 2, top + 10), label)
                previous_x = x
            previous_label = label if label is not None else previous_label

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        index = self._index_at(event.position().x())
        if index is not None:
            item = self.events[index]
            when = format_time(item.ts, self.time_kind) if not item.what_if else "what-if"
            QToolTip.showText(event.globalPosition().toPoint(),
                              f"{item.title}\n{item.category} · {item.action} · {when}", self)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        index = self._index_at(event.position().x())
        if index is not None:
            self.select(index)
            self.event_clicked.emit(index)

    def wheelEvent(self, event) -> None:  # noqa: N802
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_requested.emit(ZOOM_STEP if event.angleDelta().y() > 0 else 1 / ZOOM_STEP)
            event.accept()
        else:
            event.ignore()  # the scroll area scrolls


def draw_glyph(painter: QPainter, event_type: str, centre: QPointF, size: float) -> None:
    """The mark of one event type: a diamond for a purchase, a square for a cart, else a circle."""
    shape = GLYPHS.get(event_type, "circle")
    if shape == "diamond":
        painter.drawPolygon(QPolygonF([centre + QPointF(0, -size), centre + QPointF(size, 0),
                                       centre + QPointF(0, size), centre + QPointF(-size, 0)]))
    elif shape == "square":
        painter.drawRect(QRectF(centre.x() - size * 0.8, centre.y() - size * 0.8, size * 1.6, size * 1.6))
    else:
        painter.drawEllipse(centre, size, size)


def axis_label(event: TimelineEvent, span: float, time_kind: str) -> Optional[str]:
    """The period ``event`` falls in, in the unit the sequence's ``span`` (``UserSequence.time_span``,
    read once per sequence: per label, a 16,000-event user's strip took a second to paint) calls for:
    "Mar 1998", "12 Mar", "14:00"."""
    if event.what_if or event.ts is None:
        return None
    if time_kind == "order":
        return f"#{int(event.ts) // 10 * 10}"
    moment = dt.datetime.fromtimestamp(float(event.ts), tz=dt.timezone.utc)
    if span > 400 * 86_400:
        return moment.strftime("%b %Y")
    if span > 2 * 86_400:
        return moment.strftime("%d %b")
    return moment.strftime("%H:00")


class TimelineLegend(QWidget):
    """The event types of the sequence with their marks, and what a hollow mark means; entries that do
    not fit the width go on to another line, so none is ever cut off."""

    LINE_HEIGHT = 18

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.types: list[str] = []
        self.setFixedHeight(self.LINE_HEIGHT)
        self.setToolTip("What each mark's shape means; colours are categories, as in the lists")

    def set_types(self, types: Sequence[str]) -> None:
        self.types = list(types)
        self._fit_height()
        self.update()

    def entries(self) -> list[tuple[str, bool, QPointF]]:
        """(name, hollow, where its mark goes) for each entry, wrapped to this widget's width."""
        metrics = self.fontMetrics()
        placed, x, line = [], 4.0, 0
        for name, hollow in [*((t, False) for t in self.types), ("what-if", True)]:
            width = 2 * _MARK + 4 + metrics.horizontalAdvance(name)
            if x > 4.0 and x + width > self.width():
                x, line = 4.0, line + 1
            placed.append((name, hollow, QPointF(x, (line + 0.5) * self.LINE_HEIGHT)))
            x += width + 10
        return placed

    def _fit_height(self) -> None:
        lines = 1 + max(int(point.y() // self.LINE_HEIGHT) for _, _, point in self.entries())
        if self.height() != lines * self.LINE_HEIGHT:
            self.setFixedHeight(lines * self.LINE_HEIGHT)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit_height()

    def paintEvent(self, _event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for name, hollow, point in self.entries():
            painter.setPen(QPen(QColor("#475569"), 1))
            painter.setBrush(QBrush(Qt.BrushStyle.NoBrush) if hollow else QBrush(QColor("#94a3b8")))
            draw_glyph(painter, name, QPointF(point.x() + _MARK, point.y()), _MARK * 0.9)
            painter.setPen(QPen(QColor("#475569")))
            painter.drawText(QPointF(point.x() + 2 * _MARK + 4, point.y() + 4), name)
        painter.end()


def colour_icon(colour: QColor, size: int = 10) -> QIcon:
    """A small filled square, the category swatch used in tables."""
    pixmap = QPixmap(size, size)
    pixmap.fill(colour)
    return QIcon(pixmap)
