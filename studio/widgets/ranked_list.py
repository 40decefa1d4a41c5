"""A ranked recommendation list with the one-line reason under each item's title.

The user's held-out test item (the one they really took next, hidden from training) is
highlighted wherever it appears, so a person sees at a glance where a model hits and misses.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import (
    QApplication, QHeaderView, QLabel, QStyle, QStyledItemDelegate, QStyleOptionViewItem,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

from studio.widgets.palette import category_colour, category_text, primary_category
from studio.widgets.reasons import match_text
from studio.widgets.sequence_timeline import HELD_OUT_BACKGROUND as HIT_BACKGROUND, colour_icon
from studio.widgets.tables import clickable_table, hint_label

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


class RankedList(QWidget):
    """Shows ``engine.recommend(...)`` results; emits the external id of a clicked item."""

    item_clicked = Signal(str)

    def __init__(self, title: str = "", parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.recommendations: list = []
        self.held_out: Optional[str] = None
        self.describe: Callable[[Any], str] = lambda rec: rec.reason  # the page words reasons with the user's history
        self.title = QLabel(title)
        self.title.setProperty("role", "hint")
        self.title.setVisible(bool(title))
        self.table = clickable_table(
            HEADERS, "Recommended items, best first, each with why it was picked. Highlighted: the item this user "
            "really took next (held out from training). Click an item for its details.",
            stretch_column=1, row_height=2 * QFontMetrics(self.font()).height() + 8)
        self.table.setItemDelegateForColumn(1, TitleReasonDelegate(self.table))
        self.table.setWordWrap(True)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().sectionResized.connect(self._on_section_resized)
        self.empty = hint_label("Pick a user and a model to see recommendations.")
        self.summary = hint_label()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.empty)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary)
        self.table.cellClicked.connect(lambda row, _col: self.item_clicked.emit(self.recommendations[row].item))
        self.set_recommendations([])

    def set_recommendations(self, recommendations: Sequence, held_out: Optional[str] = None,
                            empty_text: Optional[str] = None) -> None:
        self.recommendations = list(recommendations)
        self.held_out = held_out
        if empty_text:
            self.empty.setText(empty_text)
        self.empty.setVisible(not self.recommendations)
        self.table.setVisible(bool(self.recommendations))
        self.table.setRowCount(len(self.recommendations))
        for row, rec in enumerate(self.recommendations):
            self._fill_row(row, rec, rec.item == held_out)
        self.table.resizeRowsToContents()
        self.summary.setText(self._summary_text())

    def _on_section_resized(self, column: int, _old: int, _new: int) -> None:
        if column == 1:  # wrapped text needs new row heights, once the header has settled every width
            QTimer.singleShot(0, self.table.resizeRowsToContents)

    def highlighted_rows(self) -> list[int]:
        return [row for row, rec in enumerate(self.recommendations) if rec.item == self.held_out]

    def _fill_row(self, row: int, rec, hit: bool) -> None:
        category = primary_category(rec.categories)
        reason = self.describe(rec)
        cells = (
            QTableWidgetItem(str(rec.rank)),
            QTableWidgetItem(colour_icon(category_colour(category)), rec.title or rec.item),
            QTableWidgetItem(match_text(rec)),
        )
        cells[1].setData(REASON_ROLE, reason)
        cells[0].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        cells[2].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        tip = (f"{rec.title} ({rec.item})\n{category_text(rec.categories)}\n{reason}\n"
               f"Match: in the model's {match_text(rec)} of all items (model score {rec.score:.3f}, "
               "in units that differ between models)")
        if hit:
            tip += "\n★ The item this user really took next (held out from training)"
        bold = QFont()
        bold.setBold(True)
        for column, cell in enumerate(cells):
            cell.setToolTip(tip)
            if hit:
                cell.setBackground(QBrush(HIT_BACKGROUND))
                cell.setFont(bold)
            self.table.setItem(row, column, cell)

    def _summary_text(self) -> str:
        if self.held_out is None or not self.recommendations:
            return ""
        rows = self.highlighted_rows()
        if rows:
            return f"★ Hit: the user's real next item is at rank {self.recommendations[rows[0]].rank}."
        return "The user's real next item is not in this list."
