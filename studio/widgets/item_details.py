"""One item's details and the items people most often take right after it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QTableWidgetItem, QVBoxLayout, QWidget,
)

from studio.widgets.palette import category_colour, category_text, primary_category
from studio.widgets.sequence_timeline import colour_icon
from studio.widgets.tables import clickable_table, hint_label


@dataclass(frozen=True)
class ItemFacts:
    """What the details pane shows about an item; the page fills it from the engine."""

    item: str
    title: str
    categories: tuple[str, ...]  # names, primary first, as in core.serving


class ItemDetails(QWidget):
    """Title, id and categories of the clicked item, then its most common successors."""

    item_clicked = Signal(str)  # a successor was clicked: show its details in turn

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.followers: list[tuple[ItemFacts, int]] = []
        self.heading = hint_label("Click an item in the sequence or a list to see its details.")
        self.facts = QLabel()
        self.facts.setWordWrap(True)
        self.facts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.caption = QLabel("Most often taken next")
        self.caption.setProperty("role", "hint")
        self.table = clickable_table(("Item", "Category", "Times"), "Items that users took right after this one in "
                                     "the whole log, most frequent first. Click one to see its details.",
                                     stretch_column=0)
        about = QVBoxLayout()
        about.addWidget(self.heading)
        about.addWidget(self.facts)
        about.addStretch(1)
        successors = QVBoxLayout()
        successors.addWidget(self.caption)
        successors.addWidget(self.table, 1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(about, 2)
        layout.addLayout(successors, 3)
        self.table.cellClicked.connect(lambda row, _col: self.item_clicked.emit(self.followers[row][0].item))
        self.clear()

    def clear(self) -> None:
        self.followers = []
        self.heading.setProperty("role", "hint")
        self.heading.setText("Click an item in the sequence or a list to see its details.")
        for widget in (self.facts, self.caption, self.table):
            widget.hide()

    def show_item(self, facts: ItemFacts, followers: Sequence[tuple[ItemFacts, int]]) -> None:
        self.followers = list(followers)
        self.heading.setProperty("role", "heading")
        self.heading.style().unpolish(self.heading)
        self.heading.style().polish(self.heading)
        self.heading.setText(facts.title or facts.item)
        self.facts.setText(f"Item id: {facts.item}<br>Categories: {category_text(facts.categories) or '(none)'}")
        self.caption.setText("Most often taken next" if self.followers else "No user took anything right after this item.")
        self.table.setRowCount(len(self.followers))
        for row, (follower, count) in enumerate(self.followers):
            category = primary_category(follower.categories)
            cells = (
                QTableWidgetItem(follower.title or follower.item),
                QTableWidgetItem(colour_icon(category_colour(category)), category),
                QTableWidgetItem(f"{count:,}"),
            )
            cells[2].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            for column, cell in enumerate(cells):
                cell.setToolTip(f"{follower.title} ({follower.item})")
                self.table.setItem(row, column, cell)
        for widget in (self.facts, self.caption):
            widget.show()
        self.table.setVisible(bool(self.followers))
