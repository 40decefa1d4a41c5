"""A ranked recommendation list with the one-line reason under each item's title.

The user's held-out test item (the one they really took next, hidden from training) is
highlighted wherever it appears, so a person sees at a glance where a model hits and misses.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QIcon, QPainter
from PySide6.QtWidgets import (
    QApplication, QLabel, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QTableView, QVBoxLayout, QWidget,
)

from studio.widgets.palette import category_colour, category_text, primary_category
from studio.widgets.reasons import match_text
from studio.widgets.timeline_strip import HELD_OUT_BACKGROUND as HIT_BACKGROUND, colour_icon
from studio.widgets.tables import fit_column, hint_label, make_clickable

REASON_COLOUR = QColor("#64748b")
HEADERS = ("#", "Item · why", "Match")  # the category is the colour swatch beside the title
REASON_ROLE = Qt.ItemDataRole.UserRole + 1
TITLE_LINES = 2  # a long title wraps to this many lines before it is cut
TEXT_FLAGS = Qt.TextFlag.TextWordWrap | Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop


class TitleReasonDelegate(QStyledItemDelegate):
    """Paints an item's title (wrapped to two lines) and beneath it, in smaller grey text, the
    whole reason it was recommended, wrapped: nothing that explains the list is cut off."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        view_option = QStyleOptionViewItem(option)
        self.initStyleOption(view_option, index)
        title, reason = view_option.text, index.data(REASON_ROLE) or ""
        view_option.text = ""
        style = view_option.widget.style() if view_option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, view_option, painter, view_option.widget)
        text_rect = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, view_option, view_option.widget)
        width = option.rect.right() - text_rect.left() - 4
        title_box = self._title_rect(view_option.font, title, width)
        painter.save()
        painter.setFont(view_option.font)
        painter.drawText(title_box.translated(text_rect.left() + 2, option.rect.top() + 3), TEXT_FLAGS,
                         self._fitted_title(view_option.font, title, width))
        small = _small(option.font)
        painter.setFont(small)
        painter.setPen(REASON_COLOUR)
        reason_box = QRect(text_rect.left() + 2, option.rect.top() + 3 + title_box.height(), width,
                           option.rect.height() - title_box.height() - 4)
        painter.drawText(reason_box, TEXT_FLAGS, reason)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802 - Qt's name
        """Tall enough for the wrapped title and reason at the column's current width."""
        table = self.parent()
        width = max(table.columnWidth(index.column()) - 28, 60)  # the swatch and the padding
        title = self._title_rect(option.font, index.data() or "", width)
        reason = QFontMetrics(_small(option.font)).boundingRect(QRect(0, 0, width, 10_000), TEXT_FLAGS,
                                                                index.data(REASON_ROLE) or "")
        return QSize(width, title.height() + reason.height() + 8)

    @staticmethod
    def _title_rect(font: QFont, title: str, width: int) -> QRect:
        metrics = QFontMetrics(font)
        needed = metrics.boundingRect(QRect(0, 0, width, 10_000), TEXT_FLAGS, title)
        return QRect(0, 0, width, min(needed.height(), TITLE_LINES * metrics.lineSpacing()))

    @staticmethod
    def _fitted_title(font: QFont, title: str, width: int) -> str:
        """The title, cut with "…" only when it needs more than two lines."""
        metrics = QFontMetrics(font)
        return metrics.elidedText(title, Qt.TextElideMode.ElideRight, width * TITLE_LINES - metrics.averageCharWidth() * 4) \
            if metrics.horizontalAdvance(title) > width * TITLE_LINES else title


def _small(font: QFont) -> QFont:
    small = QFont(font)
    small.setPointSizeF(max(font.pointSizeF() - 1.0, 6.0))
    return small


class RankedRows(QAbstractTableModel):
    """The list as table rows, each cell made when the view asks for it.

    A table of items cost ~30 ms of the window's time per user switch in the Explore page (each
    item set one by one, each re-fitting its columns); a model answers for the rows at once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.recommendations: list = []
        self.held_out: Optional[str] = None
        self.reasons: list[str] = []
        self._bold = QFont()
        self._bold.setBold(True)
        self._swatches: dict[str, QIcon] = {}

    def set_rows(self, recommendations: list, held_out: Optional[str], reasons: list[str]) -> None:
        self.beginResetModel()
        self.recommendations, self.held_out, self.reasons = recommendations, held_out, reasons
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt's name
        return 0 if parent.isValid() else len(self.recommendations)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return HEADERS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        rec, column = self.recommendations[index.row()], index.column()
        hit = rec.item == self.held_out
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(rec, column)
        if role == REASON_ROLE and column == 1:
            return self.reasons[index.row()]
        if role == Qt.ItemDataRole.DecorationRole and column == 1:
            return self._swatch(primary_category(rec.categories))
        if role == Qt.ItemDataRole.TextAlignmentRole and column != 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(rec, self.reasons[index.row()], hit)
        if role == Qt.ItemDataRole.BackgroundRole and hit:
            return QBrush(HIT_BACKGROUND)
        if role == Qt.ItemDataRole.FontRole and hit:
            return self._bold
        return None

    @staticmethod
    def text(rec, column: int) -> str:
        return (str(rec.rank), rec.title or rec.item, match_text(rec))[column]

    @staticmethod
    def _tooltip(rec, reason: str, hit: bool) -> str:
        tip = (f"{rec.title} ({rec.item})\n{category_text(rec.categories)}\n{reason}\n"
               f"Match: in the model's {match_text(rec)} of all items (model score {rec.score:.3f}, "
               "in units that differ between models)")
        return tip + "\n★ The item this user really took next (held out from training)" if hit else tip

    def _swatch(self, category: str) -> QIcon:
        if category not in self._swatches:
            self._swatches[category] = colour_icon(category_colour(category))
        return self._swatches[category]


class RankedList(QWidget):
    """Shows ``engine.recommend(...)`` results; emits the external id of a clicked item."""

    item_clicked = Signal(str)

    def __init__(self, title: str = "", parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        # the reasons of a whole list at once; the page words them with the user's history
        self.describe: Callable[[list], list[str]] = lambda recs: [rec.reason for rec in recs]
        self.title = QLabel(title)
        self.title.setProperty("role", "hint")
        self.title.setVisible(bool(title))
        self.rows = RankedRows()
        self.table = QTableView()
        self.table.setModel(self.rows)
        make_clickable(self.table, "Recommended items, best first, each with why it was picked. Highlighted: the item "
                       "this user really took next (held out from training). Click an item for its details.",
                       stretch_column=1, row_height=2 * QFontMetrics(self.font()).height() + 8)
        self.table.setItemDelegateForColumn(1, TitleReasonDelegate(self.table))
        self.table.setWordWrap(True)
        self.table.horizontalHeader().sectionResized.connect(self._on_section_resized)
        self.empty = hint_label("Pick a user and a model to see recommendations.")
        self.summary = hint_label()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.empty)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary)
        self.table.clicked.connect(lambda index: self.item_clicked.emit(self.recommendations[index.row()].item))
        self.set_recommendations([])

    @property
    def recommendations(self) -> list:
        return self.rows.recommendations

    @property
    def held_out(self) -> Optional[str]:
        return self.rows.held_out

    def set_recommendations(self, recommendations: Sequence, held_out: Optional[str] = None,
                            empty_text: Optional[str] = None) -> None:
        recommendations = list(recommendations)
        self.rows.set_rows(recommendations, held_out, self.describe(recommendations))
        if empty_text:
            self.empty.setText(empty_text)
        self.empty.setVisible(not recommendations)
        self.table.setVisible(bool(recommendations))
        for column in (0, 2):  # ranks and match shares: the few values decide the width
            fit_column(self.table, column, [self.rows.text(rec, column) for rec in recommendations])
        self.table.resizeRowsToContents()
        self.summary.setText(self._summary_text())

    def _on_section_resized(self, column: int, _old: int, _new: int) -> None:
        if column == 1:  # wrapped text needs new row heights, once the header has settled every width
            QTimer.singleShot(0, self.table.resizeRowsToContents)

    def highlighted_rows(self) -> list[int]:
        return [row for row, rec in enumerate(self.recommendations) if rec.item == self.held_out]

    def _summary_text(self) -> str:
        if self.held_out is None or not self.recommendations:
            return ""
        rows = self.highlighted_rows()
        if rows:
            return f"★ Hit: the user's real next item is at rank {self.recommendations[rows[0]].rank}."
        return "The user's real next item is not in this list."
