"""A ranked recommendation list with the one-line reason under each item's title.

The user's held-out test item (the one they really took next, hidden from training) is
highlighted wherever it appears, so a person sees at a glance where a model hits and misses.
"""

from __future__ import annotations

from typing import Optional, Sequence

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import (
    QApplication, QHeaderView, QLabel, QStyle, QStyledItemDelegate, QStyleOptionViewItem,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

from studio.widgets.palette import category_colour, category_text, primary_category
from studio.widgets.sequence_timeline import HELD_OUT_BACKGROUND as HIT_BACKGROUND, colour_icon
from studio.widgets.tables import clickable_table, hint_label

REASON_COLOUR = QColor("#64748b")
HEADERS = ("#", "Item · why", "Categories", "Score")
REASON_ROLE = Qt.ItemDataRole.UserRole + 1


class TitleReasonDelegate(QStyledItemDelegate):
    """Paints an item's title and, in a smaller grey line beneath, why it was recommended."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        view_option = QStyleOptionViewItem(option)
        self.initStyleOption(view_option, index)
        title, reason = view_option.text, index.data(REASON_ROLE) or ""
        view_option.text = ""
        style = view_option.widget.style() if view_option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, view_option, painter, view_option.widget)
        text_rect = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, view_option, view_option.widget)
        box = QRect(text_rect.left() + 2, option.rect.top() + 2, option.rect.right() - text_rect.left() - 4,
                    option.rect.height() - 4)
        half = box.height() // 2
        painter.save()
        painter.setFont(view_option.font)
        painter.drawText(QRect(box.left(), box.top(), box.width(), half), Qt.AlignmentFlag.AlignVCenter,
                         QFontMetrics(view_option.font).elidedText(title, Qt.TextElideMode.ElideRight, box.width()))
        small = QFont(option.font)
        small.setPointSizeF(max(option.font.pointSizeF() - 1.0, 6.0))
        painter.setFont(small)
        painter.setPen(REASON_COLOUR)
        painter.drawText(QRect(box.left(), box.top() + half, box.width(), box.height() - half),
                         Qt.AlignmentFlag.AlignVCenter,
                         QFontMetrics(small).elidedText(reason, Qt.TextElideMode.ElideRight, box.width()))
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802 - Qt's name
        return QSize(200, 2 * QFontMetrics(option.font).height() + 8)


class RankedList(QWidget):
    """Shows ``engine.recommend(...)`` results; emits the external id of a clicked item."""

    item_clicked = Signal(str)

    def __init__(self, title: str = "", parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.recommendations: list = []
        self.held_out: Optional[str] = None
        self.title = QLabel(title)
        self.title.setProperty("role", "hint")
        self.title.setVisible(bool(title))
        self.table = clickable_table(
            HEADERS, "Recommended items, best first, each with why it was picked. Highlighted: the item this user "
            "really took next (held out from training). Click an item for its details.",
            stretch_column=1, row_height=2 * QFontMetrics(self.font()).height() + 8)
        self.table.setItemDelegateForColumn(1, TitleReasonDelegate(self.table))
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Interactive)
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
        self.table.resizeColumnToContents(2)
        self.table.setColumnWidth(2, min(self.table.columnWidth(2), 120))
        self.summary.setText(self._summary_text())

    def set_compact(self, compact: bool) -> None:
        """Two lists side by side: the category shows only as the colour beside each title."""
        self.table.setColumnHidden(2, compact)

    def highlighted_rows(self) -> list[int]:
        return [row for row, rec in enumerate(self.recommendations) if rec.item == self.held_out]

    def _fill_row(self, row: int, rec, hit: bool) -> None:
        category = primary_category(rec.categories)
        cells = (
            QTableWidgetItem(str(rec.rank)),
            QTableWidgetItem(colour_icon(category_colour(category)), rec.title or rec.item),
            QTableWidgetItem(colour_icon(category_colour(category)), category_text(rec.categories)),
            QTableWidgetItem(f"{rec.score:.3f}"),
        )
        cells[1].setData(REASON_ROLE, rec.reason)
        cells[0].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        cells[3].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        tip = f"{rec.title} ({rec.item})\n{category_text(rec.categories)}\n{rec.reason}"
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
