"""A user's behaviour sequence: a painted strip of coloured marks over a list of the events.

The strip (``timeline_strip``) shows the shape of the whole sequence (which interests, in what
order, where the purchases are), with a legend of the marks' shapes and dates along its axis; it
scrolls and zooms, so 700 events stay 700 separate marks. The list below reads one event at a
time. Events added in a what-if are drawn hollow and listed in italics.
"""

from __future__ import annotations

from typing import Optional, Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QFont, QIcon
from PySide6.QtWidgets import QFrame, QHBoxLayout, QScrollArea, QTableView, QToolButton, QVBoxLayout, QWidget

from studio.widgets.palette import category_colour, category_text
from studio.widgets.tables import fit_column, hint_label, make_clickable
from studio.widgets.timeline_events import (TimelineEvent, UserSequence, after_held_out, as_user_sequence,
                                            held_out_rows)
from studio.widgets.timeline_strip import (
    GLYPHS, HELD_OUT_BACKGROUND, MARK_MARGIN, MARK_SPACING, STRIP_HEIGHT, UNSEEN_FOREGROUND, ZOOM_STEP,
    TimelineLegend, TimelineStrip, colour_icon,
)
from studio.widgets.user_list import format_time

EVENT_COLUMN_MAX = 96  # px: a long event type may elide (the tooltip has it); the item title needs the room
ROW_PADDING = 6  # px beside the two lines of text in a sequence row


class EventRows(QAbstractTableModel):
    """The events as table rows, each cell made only when the view asks for it.

    A user with hundreds of events used to cost hundreds of table items (and swatch pixmaps) per
    user switch, ~30 ms of GUI-thread work; a model answers for the dozen rows on screen.
    """

    HEADERS = ("Time", "Event", "Item")  # the item's category is the colour swatch beside its title

    def __init__(self) -> None:
        super().__init__()
        self.events = UserSequence()
        self.held_out_rows: list[int] = []
        self.time_kind = "unix"
        self.with_year = False
        self._italic = QFont()
        self._italic.setItalic(True)
        self._swatches: dict[str, QIcon] = {}

    def set_events(self, events: Sequence[TimelineEvent], time_kind: str) -> None:
        self.beginResetModel()
        self.events, self.held_out_rows, self.time_kind = as_user_sequence(events), [], time_kind
        self.with_year = time_kind == "unix" and self.events.spans_years
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
    def events(self) -> UserSequence:
        return self.rows.events

    @property
    def held_out_rows(self) -> list[int]:
        return self.rows.held_out_rows

    def set_events(self, events: Sequence[TimelineEvent], empty_text: str = "This user has no events yet.") -> None:
        """Show ``events`` (oldest first) and scroll to the most recent one."""
        self.rows.set_events(events, self.time_kind)
        self._fit_columns()
        self.strip.time_kind = self.time_kind
        self.strip.set_events(self.events)
        self.legend.set_types(sorted(self.events.event_types, key=lambda kind: (kind in GLYPHS, kind)))
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
        fit_column(self.table, 1, [self.rows.text(event, 1) for event in self.events.width_deciders])
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
        room = self.strip_area.viewport().width() - 2 * MARK_MARGIN
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
