"""A user's behaviour sequence: a painted strip of coloured marks over a list of the events.

The strip shows the shape of the whole sequence at a glance (which interests, in what order,
where the purchases are); the list below reads one event at a time. Events are placed by
position, not by clock time: gaps of weeks between sessions would squeeze a session's dozen
events into one pixel. Events added in a what-if are drawn hollow and listed in italics.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Optional, Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen, QPixmap, QIcon, QPolygonF
from PySide6.QtWidgets import QHeaderView, QTableView, QToolTip, QVBoxLayout, QWidget

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

    @property
    def action(self) -> str:
        """The event type with its value: "rating 4", "purchase 12.5", "view"."""
        return self.event_type if self.value is None else f"{self.event_type} {self.value:g}"

    @property
    def category(self) -> str:
        return primary_category(self.categories)


def events_from_frame(frame) -> list[TimelineEvent]:
    """Timeline events from a history frame with ts, event_type, item, title, categories columns."""
    return [
        TimelineEvent(str(row.item), str(row.title or row.item), split_categories(row.categories), str(row.event_type),
                      row.ts, value=_number(getattr(row, "value", None)))
        for row in frame.itertuples(index=False)
    ]


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
EVENT_COLUMN_MAX = 84  # px: "purchase 18.85" may elide (the tooltip has it); the item title needs the room
_MARK = 5.0  # half-size of a mark in pixels
_EMPHASIS = {"purchase": 1.6, "cart": 1.25}  # bigger marks for stronger signals


class TimelineStrip(QWidget):
    """The sequence as coloured marks, oldest left; click a mark to pick that event."""

    event_clicked = Signal(int)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.events: Sequence[TimelineEvent] = ()
        self.selected: Optional[int] = None
        self.held_out: list[int] = []
        self.setMinimumHeight(46)
        self.setMouseTracking(True)
        self.setToolTip("The whole sequence, oldest left. Colour = category; bigger marks = cart/purchase; "
                        "hollow marks = what-if events. In compare mode the held-out event is ringed and the "
                        "events after it are grey. Click a mark to select it.")

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(300, 46)

    def set_events(self, events: Sequence[TimelineEvent]) -> None:
        self.events = events
        self.selected = None
        self.set_held_out([])

    def set_held_out(self, rows: list[int]) -> None:
        """Ring the held-out events (ascending rows) and grey those after them, as the list below shades them."""
        self.held_out = rows
        self.update()

    def select(self, index: Optional[int]) -> None:
        self.selected = index
        self.update()

    def _x(self, index: int) -> float:
        margin = 2 * _MARK
        span = max(self.width() - 2 * margin, 1.0)
        return margin + (span * index / (len(self.events) - 1) if len(self.events) > 1 else span / 2)

    def _index_at(self, x: float) -> Optional[int]:
        if not self.events:
            return None
        return min(range(len(self.events)), key=lambda i: abs(self._x(i) - x))

    def paintEvent(self, _event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        mid = self.height() / 2
        painter.setPen(QPen(QColor("#cbd5e1"), 1))
        painter.drawLine(QPointF(_MARK, mid), QPointF(self.width() - _MARK, mid))
        for index, event in enumerate(self.events):
            self._paint_mark(painter, index, event, mid)
        painter.end()

    def _paint_mark(self, painter: QPainter, index: int, event: TimelineEvent, mid: float) -> None:
        colour = UNSEEN_FOREGROUND if after_held_out(self.held_out, index) else category_colour(event.category)
        size = _MARK * _EMPHASIS.get(event.event_type, 1.0)
        centre = QPointF(self._x(index), mid)
        if index in self.held_out:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QBrush(HELD_OUT_BACKGROUND))
            painter.drawEllipse(centre, size + 4, size + 4)
        painter.setPen(QPen(QColor("#0f172a") if index == self.selected else colour.darker(130), 2 if index == self.selected else 1))
        painter.setBrush(QBrush(Qt.BrushStyle.NoBrush) if event.what_if else QBrush(colour))
        if event.event_type == "purchase":
            painter.drawPolygon(QPolygonF([centre + QPointF(0, -size), centre + QPointF(size, 0),
                                           centre + QPointF(0, size), centre + QPointF(-size, 0)]))
        elif event.event_type == "cart":
            painter.drawRect(QRectF(centre.x() - size * 0.8, mid - size * 0.8, size * 1.6, size * 1.6))
        else:
            painter.drawEllipse(centre, size, size)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        index = self._index_at(event.position().x())
        if index is not None:
            item = self.events[index]
            QToolTip.showText(event.globalPosition().toPoint(), f"{item.title}\n{item.category} · {item.event_type}", self)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        index = self._index_at(event.position().x())
        if index is not None:
            self.select(index)
            self.event_clicked.emit(index)


def colour_icon(colour: QColor, size: int = 10) -> QIcon:
    """A small filled square, the category swatch used in tables."""
    pixmap = QPixmap(size, size)
    pixmap.fill(colour)
    return QIcon(pixmap)


def held_out_rows(events: Sequence[TimelineEvent], item: Optional[str], steps_before: Optional[int]) -> list[int]:
    """Rows of the held-out step: step ``steps_before`` when it is on ``item``, else the trailing events on ``item``."""
    if item is None:
        return []
    if steps_before is not None:
        step, rows = -1, []
        for row, event in enumerate(events):
            if row == 0 or event.item != events[row - 1].item:
                step += 1
            if step == steps_before and event.item == item:
                rows.append(row)
        if rows:
            return rows
    rows = []
    while len(rows) < len(events) and events[-1 - len(rows)].item == item:
        rows.append(len(events) - 1 - len(rows))
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
        if column == 0:
            return "what-if" if event.what_if else format_time(event.ts, self.time_kind, short=True,
                                                               with_year=self.with_year)
        return (event.action, event.title)[column - 1]

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
        self.rows = EventRows()
        self.table = QTableView()
        self.table.setModel(self.rows)
        make_clickable(self.table, "The user's events, oldest first. Click one to see the item's details.",
                       stretch_column=2)
        self.empty = hint_label("Pick a user on the left to see what they did.")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.strip)
        layout.addWidget(self.empty)
        layout.addWidget(self.table, 1)
        self.strip.event_clicked.connect(self._on_strip_clicked)
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
        self.strip.set_events(self.events)
        self.empty.setText(empty_text)
        self.empty.setVisible(not self.events)
        self.table.setVisible(bool(self.events))
        if self.events:
            self.table.scrollToBottom()

    def _fit_columns(self) -> None:
        """Times share one format, so the first and last decide; the event types are few."""
        ends = {self.events[0], self.events[-1]} if self.events else set()
        fit_column(self.table, 0, [self.rows.text(event, 0) for event in ends])
        fit_column(self.table, 1, {event.action for event in self.events})
        self.table.setColumnWidth(1, min(self.table.columnWidth(1), EVENT_COLUMN_MAX))  # long values elide

    def mark_held_out(self, item: Optional[str], steps_before: Optional[int] = None) -> None:
        """Shade the events on ``item``, the held-out item the lists are judged by (None: no shading),
        and grey the events after it. ``steps_before`` is how many steps (an item's consecutive
        events are one step) the model saw first, e.g. up to a time split's cut-off; without it
        the held-out item is the sequence's trailing one (leave-one-out, or a what-if)."""
        rows = held_out_rows(self.events, item, steps_before)
        self.rows.set_held_out(rows)
        self.strip.set_held_out(rows)

    def _on_strip_clicked(self, index: int) -> None:
        self.table.selectRow(index)
        self.table.scrollTo(self.rows.index(index, 0))
        self.item_clicked.emit(self.events[index].item)

    def _on_row_clicked(self, row: int) -> None:
        self.strip.select(row)
        self.item_clicked.emit(self.events[row].item)
