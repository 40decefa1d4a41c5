"""The Explore page's user list: a lazily filled table that stays fast with a million users.

The model never holds more rows than the view has scrolled to: it asks the engine for one page
(``engine.users_page(offset, limit, search, order_by)``) each time Qt's view calls
``fetchMore`` near the bottom, and for the number of matches (``engine.user_count(search)``)
only to show it. Searching and sorting start again from the first page, read in a worker: the
engine's user directory (``core.store.directory``) scans a million ids for a search there and
remembers the matches, so the later pages are array slices.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Optional

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QLineEdit,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from studio.dialogs.errors import show_error
from studio.widgets.tables import fit_column

PAGE_SIZE = 200
SEARCH_DELAY_MS = 150  # wait for a pause in typing before asking the engine
ID_SEPARATORS = "@.-_:/|"  # where a shared ending of the ids may start ("@shop.de", "-DE")
SHARED_ENDING_MIN = 3  # characters an ending must have to be worth leaving out
CELL_PADDING = 8  # pixels a table cell keeps beside its text

# (header, row attribute, engine order key, the order's direction, tooltip). The engine keeps
# each order precomputed in one direction: ids ascending, activity and last-seen newest first.
COLUMNS = (
    ("User", "user", "user", Qt.SortOrder.AscendingOrder, "The shop's user id; click to sort by id"),
    ("Events", "events", "activity", Qt.SortOrder.DescendingOrder,
     "How many events the user has; click to list the most active first"),
    ("Last seen", "last_seen", "last_seen", Qt.SortOrder.DescendingOrder,
     "Time of the user's latest event; click to list the most recent first"),
)

Index = QModelIndex | QPersistentModelIndex


def format_time(ts: Optional[float], time_kind: str = "unix", short: bool = False, date_only: bool = False,
                with_year: bool = False) -> str:
    """A timestamp as people read it (UTC); workspaces without real times show the event's position.
    ``short`` leaves the year out unless ``with_year`` (a sequence that spans years)."""
    if ts is None:
        return ""
    if time_kind == "order":
        return f"#{int(ts)}"
    moment = dt.datetime.fromtimestamp(float(ts), tz=dt.timezone.utc)
    if short:
        return moment.strftime("%d %b %Y %H:%M" if with_year else "%d %b %H:%M")
    return moment.strftime("%Y-%m-%d" if date_only else "%Y-%m-%d %H:%M")


class UserListModel(QAbstractTableModel):
    """Users of the open workspace, fetched page by page from the engine."""

    count_changed = Signal(int)  # users matching the current search
    load_failed = Signal(object)  # the exception a background first-page read raised

    def __init__(self, engine: Any = None, parent=None, page_size: int = PAGE_SIZE,
                 run_job: Optional[Callable[..., Any]] = None) -> None:
        """``run_job`` (``StudioContext.run``) reads first pages in a worker; None reads them here."""
        super().__init__(parent)
        self._engine = engine
        self._run_job = run_job
        self._generation = 0
        self.page_size = page_size
        self._rows: list[Any] = []
        self._search = ""
        self._order_by = "activity"
        self._exhausted = True
        self.time_kind = "unix"
        self.total = 0
        self.most_events = 0  # of any user matching the search, loaded or not: sizes the Events column
        self.shared_ending = ""  # what every id of the first page ends with ("@example.de"), if anything

    # -- what the view sees ----------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802 - Qt's name
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section][0]
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMNS[section][4]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        value = getattr(row, COLUMNS[index.column()][1])
        if role == Qt.ItemDataRole.DisplayRole:
            if index.column() == 2:
                return format_time(value, self.time_kind, date_only=True)
            return f"{value:,}" if isinstance(value, int) else str(value)
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() == 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 0:
            return str(value)  # the whole id, where the narrow list shows it shortened
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 2:
            return format_time(value, self.time_kind)
        if role == Qt.ItemDataRole.UserRole:
            return row.user
        return None

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: N802
        return not parent.isValid() and not self._exhausted

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: N802
        """The next page: a slice of the engine's directory, whose matches for the search the first
        page (read in a worker) left remembered."""
        if parent.isValid() or self._exhausted or self._engine is None:
            return
        page = self._engine.users_page(len(self._rows), self.page_size, self._search or None, self._order_by)
        if page:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(page) - 1)
            self._rows.extend(page)
            self.endInsertRows()
        self._exhausted = len(page) < self.page_size or len(self._rows) >= self.total

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort by ``column`` in the engine's direction for it (``order`` is not offered)."""
        if COLUMNS[column][2] != self._order_by or not self._rows:
            self._order_by = COLUMNS[column][2]
            self.reload()

    # -- what the page drives --------------------------------------------------------------

    def set_engine(self, engine: Any) -> None:
        self._engine = engine
        self.reload()

    def set_search(self, text: str) -> None:
        if text.strip() != self._search:
            self._search = text.strip()
            self.reload()

    def row_at(self, row: int) -> Optional[Any]:
        """The engine's row for view row ``row`` (user, events, last_seen), or None."""
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def user_at(self, row: int) -> Optional[str]:
        found = self.row_at(row)
        return found.user if found is not None else None

    def reload(self) -> None:
        """Start again from the first page of the current search and order.

        A search over a million ids takes a noticeable fraction of a second, so with a job
        runner the first page is read in a worker; only the latest request's page is shown.
        """
        self._generation += 1
        generation = self._generation
        if self._engine is None:
            self._show_first_page(generation, 0, [], 0, "unix")
        elif self._run_job is None:
            self._show_first_page(generation, *first_page(self._engine, self._search, self._order_by, self.page_size))
        else:
            job = self._run_job(first_page, self._engine, self._search, self._order_by, self.page_size,
                                progress=False, cancel=False)
            job.returned.connect(lambda result: self._show_first_page(generation, *result))
            job.errored.connect(self.load_failed.emit)

    def _show_first_page(self, generation: int, total: int, page: list, most_events: int, time_kind: str) -> None:
        if generation != self._generation:
            return  # a newer search or order is on its way
        self.beginResetModel()
        self.time_kind = time_kind
        self._rows = list(page)
        self.total = total
        self.most_events = most_events
        self.shared_ending = shared_ending([row.user for row in self._rows])
        self._exhausted = len(page) < self.page_size or len(page) >= total
        self.endResetModel()
        self.count_changed.emit(total)


def shared_ending(ids: list[str]) -> str:
    """The ending every one of ``ids`` (two or more) shares from a separator on ("@example.de" of
    e-mail addresses), or "": what a narrow list can leave out of each id without losing the part that
    tells them apart."""
    if len(ids) < 2:
        return ""
    first = ids[0]
    common = 0
    while common < len(first) and all(len(i) > common and i[-1 - common] == first[-1 - common] for i in ids):
        common += 1
    ending = first[len(first) - common:] if common else ""
    cut = next((at for at, char in enumerate(ending) if char in ID_SEPARATORS), None)
    if cut is None or common == min(map(len, ids)):
        return ""  # no separator in it, or some id is all ending
    ending = ending[cut:]
    return ending if len(ending) >= SHARED_ENDING_MIN else ""


class IdDelegate(QStyledItemDelegate):
    """Draws an id too wide for its cell without the ending every listed id shares ("kunde36…"), and
    where even that is too wide, with the rest cut at its start ("…e136…"): the middle elision alone
    showed every e-mail address of a shop as "ku…de"."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: Index) -> None:  # noqa: N802 - Qt's name
        super().initStyleOption(option, index)
        ending = index.model().shared_ending
        room = option.rect.width() - CELL_PADDING
        if ending and option.text.endswith(ending) and option.fontMetrics.horizontalAdvance(option.text) > room:
            option.text = option.fontMetrics.elidedText(option.text[: -len(ending)] + "…", Qt.TextElideMode.ElideLeft,
                                                        room)


def first_page(engine: Any, search: str, order_by: str, page_size: int) -> tuple[int, list, int, str]:
    """(users matching ``search``, the first page of them in ``order_by`` order, the most events any
    has, how the workspace keeps time: "unix" or "order")."""
    most_active = engine.users_page(0, 1, search or None, "activity")
    return (engine.user_count(search or None), engine.users_page(0, page_size, search or None, order_by),
            most_active[0].events if most_active else 0, engine.time_kind())


class UserList(QWidget):
    """Search box, user count and the lazily filled user table; emits the chosen user's id."""

    user_selected = Signal(str)

    def __init__(self, run_job: Optional[Callable[..., Any]] = None, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.model = UserListModel(parent=self, run_job=run_job)
        self.search = QLineEdit(placeholderText="Search user id…")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip("Show only users whose id contains this text")
        self.count = QLabel()
        self.count.setProperty("role", "hint")
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setToolTip("Pick a user to see their behaviour, predicted interests and recommendations")
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(1, COLUMNS[1][3])
        # Shops' ids often share a prefix ("customer-0012", "customer-0013"): cut short at the end, every
        # row of the narrow list read the same, so the middle goes and the telling end stays.
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setItemDelegateForColumn(0, IdDelegate(self.table))
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setMinimumSectionSize(60)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.search)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.count)
        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(lambda: self.model.set_search(self.search.text()))
        self.search.textChanged.connect(lambda _text: self._search_timer.start())
        self.model.count_changed.connect(self._on_count_changed)
        self.model.load_failed.connect(lambda exc: show_error(self, exc, "Reading the users"))
        self.table.horizontalHeader().sortIndicatorChanged.connect(self._show_engine_direction)
        self.model.modelReset.connect(self._select_first_after_reset)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row_changed)

    def set_engine(self, engine: Any) -> None:
        self.model.set_engine(engine)

    def current_user(self) -> Optional[str]:
        return self.model.user_at(self.table.currentIndex().row())

    def _show_engine_direction(self, column: int, order: Qt.SortOrder) -> None:
        if order != COLUMNS[column][3]:
            self.table.horizontalHeader().setSortIndicator(column, COLUMNS[column][3])

    def _on_count_changed(self, total: int) -> None:
        searching = bool(self.search.text().strip())
        noun = "user" if total == 1 else "users"
        verb = (" matches" if total == 1 else " match") if searching else ""
        self.count.setText(f"{total:,} {noun}{verb}")

    def _select_first_after_reset(self) -> None:
        self._fit_columns()
        QTimer.singleShot(0, self._select_first)

    def _fit_columns(self) -> None:
        """Events as wide as the biggest count among the matches, loaded or not; every Last seen date
        is as wide as the first."""
        first = self.model.row_at(0)
        fit_column(self.table, 1, [f"{self.model.most_events:,}"])
        fit_column(self.table, 2, [format_time(first.last_seen, self.model.time_kind, date_only=True)] if first else [])
        self._hide_last_seen_if_narrow()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._hide_last_seen_if_narrow()

    def _hide_last_seen_if_narrow(self) -> None:
        """At laptop sizes the list is narrow: the ids and counts keep their room, Last seen goes
        (it is still the sort order on offer in its header once the list is widened)."""
        header = self.table.horizontalHeader()
        ids = self.table.fontMetrics().horizontalAdvance("U0000000") + 16
        needed = ids + header.sectionSize(1) + header.sectionSize(2) + self.table.verticalScrollBar().sizeHint().width() + 4
        self.table.setColumnHidden(2, self.width() < needed)

    def _select_first(self) -> None:
        if self.model.rowCount() and not self.table.currentIndex().isValid():
            self.table.setCurrentIndex(self.model.index(0, 0))

    def _on_current_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        user = self.model.user_at(current.row())
        if user is not None:
            self.user_selected.emit(user)
