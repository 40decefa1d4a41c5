"""A user's behaviour sequence: a painted strip of coloured marks over a list of the events.

The strip shows the shape of the whole sequence (which interests, in what order, where the
purchases are), with a legend of the marks' shapes and dates along its axis; it scrolls and
zooms, so 700 events stay 700 separate marks. The list below reads one event at a time.
Events are placed by position, not by clock time: gaps of weeks between sessions would squeeze
a session's dozen events into one pixel. Events added in a what-if are drawn hollow and listed
in italics.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Optional, Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen, QPixmap, QIcon, QPolygonF
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QFrame, QHBoxLayout, QScrollArea, QTableView, QToolButton, QToolTip, QVBoxLayout, QWidget,
)

from core.store.schema import split_categories
from studio.widgets.palette import category_colour, category_text, primary_category
from studio.widgets.tables import fit_column, hint_label, make_clickable
from studio.widgets.user_list import format_time


@dataclass(frozen=True)
class TimelineEvent:
    """One row of the timeline; ``what_if`` marks events the person added, not the shop's log."""

    item: str
    title: str
    categories: tuple[str, ...]  # names, primary first, as in core.serving
    event_type: str
    ts: Optional[float]
    what_if: bool = False
    value: Optional[float] = None  # a rating, price or quantity, as imported
    negative: bool = False  # a dislike (a low rating the import marked): shown, never scored from

    @property
    def action(self) -> str:
        """The event type with its value: "rating 4", "purchase 12.5", "view", "rating 1 (dislike)"."""
        action = self.event_type if self.value is None else f"{self.event_type} {self.value:g}"
        return f"{action} (dislike)" if self.negative else action

    @property
    def category(self) -> str:
        return primary_category(self.categories)


def events_from_frame(frame) -> list[TimelineEvent]:
    """Timeline events from a history frame with ts, event_type, item, title, categories columns."""
    return [
        TimelineEvent(str(row.item), str(row.title or row.item), split_categories(row.categories), str(row.event_type),
                      row.ts, value=_number(getattr(row, "value", None)), negative=bool(getattr(row, "negative", 0)))
        for row in frame.itertuples(index=False)
    ]


def interactions(events: Sequence[TimelineEvent]) -> list[str]:
    """The items of ``events`` a model scores from: every event but the dislikes, in order."""
    return [event.item for event in events if not event.negative]


def _number(value) -> Optional[float]:
    return None if value is None or value != value else float(value)  # NaN: no value


def spans_years(events: Sequence[TimelineEvent]) -> bool:
    """Whether the first and last timed events fall in different calendar years (UTC)."""
    times = [event.ts for event in events if event.ts is not None and not event.what_if]
    if not times:
        return False
    first, last = (dt.datetime.fromtimestamp(float(t), tz=dt.timezone.utc).year for t in (times[0], times[-1]))
    return first != last


HELD_OUT_BACKGROUND = QColor("#fde68a")  # the ranked lists' hit colour
UNSEEN_FOREGROUND = QColor("#94a3b8")  # events after the held-out one: the model had not seen them
GLYPHS = {"purchase": "diamond", "cart": "square"}  # every other event type is a circle
MARK_SPACING = 14.0  # px between marks at the default zoom: a purchase (8 px half-width) never touches a neighbour
STRIP_HEIGHT = 44
AXIS_LABEL_GAP = 64  # px between two date labels
ZOOM_STEP = 1.5
EVENT_COLUMN_MAX = 96  # px: a long event type may elide (the tooltip has it); the item title needs the room
ROW_PADDING = 6  # px beside the two lines of text in a sequence row
_MARK = 5.0  # half-size of a mark in pixels
_MARGIN = 2 * _MARK
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
        return int(2 * _MARGIN + self.spacing * max(len(self.events) - 1, 0))

    def set_spacing(self, spacing: float) -> None:
        self.spacing = max(spacing, 0.05)
        self.setMinimumWidth(self.content_width())
        self.updateGeometry()
        self.update()

    def set_events(self, events: Sequence[TimelineEvent]) -> None:
        self.events = events
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
        return _MARGIN + spare + self.spacing * index

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
            label = axis_label(self.events[index], self.events, self.time_kind)
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


def axis_label(event: TimelineEvent, events: Sequence[TimelineEvent], time_kind: str) -> Optional[str]:
    """The period ``event`` falls in, in the unit the sequence's span calls for: "Mar 1998", "12 Mar", "14:00"."""
    if event.what_if or event.ts is None:
        return None
    if time_kind == "order":
        return f"#{int(event.ts) // 10 * 10}"
    times = [e.ts for e in events if e.ts is not None and not e.what_if]
    span = max(times) - min(times)
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


def held_out_rows(events: Sequence[TimelineEvent], item: Optional[str], steps_before: Optional[int]) -> list[int]:
    """Rows of the held-out step: step ``steps_before`` when it is on ``item``, else the trailing events on ``item``."""
    if item is None:
        return []
    scored = [row for row, event in enumerate(events) if not event.negative]  # dislikes are no steps
    if steps_before is not None:
        step, rows, previous = -1, [], None
        for row in scored:
            if previous is None or events[row].item != previous:
                step += 1
            previous = events[row].item
            if step == steps_before and events[row].item == item:
                rows.append(row)
        if rows:
            return rows
    rows = []
    while len(rows) < len(scored) and events[scored[-1 - len(rows)]].item == item:
        rows.append(scored[-1 - len(rows)])
    return sorted(rows)


def after_held_out(held_out: list[int], row: int) -> bool:
    """Whether ``row`` comes after the held-out rows (ascending): an event the model had not seen."""
    return bool(held_out) and row > held_out[-1]


class EventRows(QAbstractTableModel):
    """The events as table rows, each cell made only when the view asks for it.

    A user with hundreds of events used to cost hundreds of table items (and swatch pixmaps) per
    user switch, ~30 ms of GUI-thread work; a model answers for the dozen rows on screen.
    """

    HEADERS = ("Time", "Event", "Item")  # the item's category is the colour swatch beside its title

    def __init__(self) -> None:
        super().__init__()
        self.events: list[TimelineEvent] = []
        self.held_out_rows: list[int] = []
        self.time_kind = "unix"
        self.with_year = False
        self._italic = QFont()
        self._italic.setItalic(True)
        self._swatches: dict[str, QIcon] = {}

    def set_events(self, events: list[TimelineEvent], time_kind: str) -> None:
        self.beginResetModel()
        self.events, self.held_out_rows, self.time_kind = events, [], time_kind
        self.with_year = time_kind == "unix" and spans_years(events)
        self.endResetModel()

    def set_held_out(self, rows: list[int]) -> None:
        self.held_out_rows = rows
        if self.events:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.events) - 1, len(self.HEADERS) - 1),
                                  [Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole])

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt's name
        return 0 if parent.isValid() else len(self.events)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        event = self.events[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(event, index.column())
        if role == Qt.ItemDataRole.DecorationRole and index.column() == 2:
            return self._swatch(event.category)
        if role == Qt.ItemDataRole.ToolTipRole:
            unseen = after_held_out(self.held_out_rows, index.row())
            after = "\nAfter the held-out item: the model had not seen it" if unseen else ""
            return f"{event.title} ({event.item})\n{category_text(event.categories)} · {event.action}{after}"
        if role == Qt.ItemDataRole.ForegroundRole and after_held_out(self.held_out_rows, index.row()):
            return QBrush(UNSEEN_FOREGROUND)
        if role == Qt.ItemDataRole.FontRole and event.what_if:
            return self._italic
        if role == Qt.ItemDataRole.BackgroundRole and index.row() in self.held_out_rows:
            return QBrush(HELD_OUT_BACKGROUND)
        return None

    def text(self, event: TimelineEvent, column: int) -> str:
        """A cell as shown. Rows are two lines high, so the time and the event put their second half
        ("03:33", "18.85") on a line of its own and leave the width to the item's title (wrapped too)."""
        if column == 0:
            when = "what-if" if event.what_if else format_time(event.ts, self.time_kind, short=True,
                                                               with_year=self.with_year)
            return _second_line(when)
        return (_second_line(event.action), event.title)[column - 1]

    def _swatch(self, category: str) -> QIcon:
        if category not in self._swatches:
            self._swatches[category] = colour_icon(category_colour(category))
        return self._swatches[category]


class SequenceTimeline(QWidget):
    """Strip plus event list; emits the external id of the item the person clicks."""

    item_clicked = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.time_kind = "unix"
        self.strip = TimelineStrip()
        self.strip_area = QScrollArea()
        self.strip_area.setWidget(self.strip)
        self.strip_area.setWidgetResizable(True)
        self.strip_area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.strip_area.setFrameShape(QFrame.Shape.NoFrame)
        self.strip_area.setFixedHeight(STRIP_HEIGHT + self.strip_area.horizontalScrollBar().sizeHint().height())
        self.legend = TimelineLegend()
        self.zoom_out = _tool_button("−", "Zoom out: more of the sequence in view", lambda: self.zoom(1 / ZOOM_STEP))
        self.zoom_in = _tool_button("+", "Zoom in: marks further apart", lambda: self.zoom(ZOOM_STEP))
        self.zoom_fit = _tool_button("Fit", "The whole sequence in view", self.fit)
        self.rows = EventRows()
        self.table = QTableView()
        self.table.setModel(self.rows)
        make_clickable(self.table, "The user's events, oldest first. Click one to see the item's details.",
                       stretch_column=2, row_height=2 * self.table.fontMetrics().lineSpacing() + ROW_PADDING)
        self.table.setWordWrap(True)  # a long title takes the row's second line
        self.empty = hint_label("Pick a user on the left to see what they did.")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        strip_row = QHBoxLayout()
        strip_row.addWidget(self.legend, 1)
        for button in (self.zoom_out, self.zoom_in, self.zoom_fit):
            strip_row.addWidget(button)
        layout.addLayout(strip_row)
        layout.addWidget(self.strip_area)
        layout.addWidget(self.empty)
        layout.addWidget(self.table, 1)
        self.strip.event_clicked.connect(self._on_strip_clicked)
        self.strip.zoom_requested.connect(self.zoom)
        self.table.clicked.connect(lambda index: self._on_row_clicked(index.row()))
        self.set_events([])

    @property
    def events(self) -> list[TimelineEvent]:
        return self.rows.events

    @property
    def held_out_rows(self) -> list[int]:
        return self.rows.held_out_rows

    def set_events(self, events: Sequence[TimelineEvent], empty_text: str = "This user has no events yet.") -> None:
        """Show ``events`` (oldest first) and scroll to the most recent one."""
        self.rows.set_events(list(events), self.time_kind)
        self._fit_columns()
        self.strip.time_kind = self.time_kind
        self.strip.set_events(self.events)
        self.legend.set_types(sorted({event.event_type for event in self.events if not event.what_if},
                                     key=lambda kind: (kind in GLYPHS, kind)))
        self.strip.set_spacing(MARK_SPACING)
        QTimer.singleShot(0, self._scroll_strip_to_latest)
        self.empty.setText(empty_text)
        self.empty.setVisible(not self.events)
        self.table.setVisible(bool(self.events))
        if self.events:
            self.table.scrollToBottom()

    def _fit_columns(self) -> None:
        """Times share one format, so the first and last decide; the event types are few."""
        ends = {self.events[0], self.events[-1]} if self.events else set()
        fit_column(self.table, 0, [self.rows.text(event, 0) for event in ends])
        fit_column(self.table, 1, {self.rows.text(event, 1) for event in self.events})
        self.table.setColumnWidth(1, min(self.table.columnWidth(1), EVENT_COLUMN_MAX))  # long event types elide

    def mark_held_out(self, item: Optional[str], steps_before: Optional[int] = None) -> None:
        """Shade the events on ``item``, the held-out item the lists are judged by (None: no shading),
        and grey the events after it. ``steps_before`` is how many steps (an item's consecutive
        events are one step) the model saw first, e.g. up to a time split's cut-off; without it
        the held-out item is the sequence's trailing one (leave-one-out, or a what-if)."""
        rows = held_out_rows(self.events, item, steps_before)
        self.rows.set_held_out(rows)
        self.strip.set_held_out(rows)

    def zoom(self, factor: float) -> None:
        """Marks ``factor`` times further apart, keeping the latest events in view."""
        self.strip.set_spacing(self.strip.spacing * factor)
        QTimer.singleShot(0, self._scroll_strip_to_latest)

    def fit(self) -> None:
        """The whole sequence in the pane's width."""
        room = self.strip_area.viewport().width() - 2 * _MARGIN
        self.strip.set_spacing(room / max(len(self.events) - 1, 1))

    def _scroll_strip_to_latest(self) -> None:
        bar = self.strip_area.horizontalScrollBar()
        bar.setValue(bar.maximum())

    def _on_strip_clicked(self, index: int) -> None:
        self.table.selectRow(index)
        self.table.scrollTo(self.rows.index(index, 0))
        self.item_clicked.emit(self.events[index].item)

    def _on_row_clicked(self, row: int) -> None:
        self.strip.select(row)
        self.item_clicked.emit(self.events[row].item)


def _second_line(text: str) -> str:
    """"12 Apr 03:33" → "12 Apr\n03:33", "purchase 18.85" → "purchase\n18.85": the last word below."""
    head, space, tail = text.rpartition(" ")
    return f"{head}\n{tail}" if space else text


def _tool_button(text: str, tip: str, slot) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setToolTip(tip)
    button.clicked.connect(slot)
    return button
