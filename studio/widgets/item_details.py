"""One item's details, the items people most often take right after it, and the items most
similar to it by text (the language model of the ``[text]`` extra)."""

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
    """Title, id and categories of the clicked item, its most common successors and its nearest
    items by text."""

    item_clicked = Signal(str)  # a successor was clicked: show its details in turn

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.followers: list[tuple[ItemFacts, int]] = []
        self.similar: list[tuple[ItemFacts, float]] = []
        self.no_text_reason = ""  # why there are no similar items by text (the extra is missing), or ""
        self.heading = hint_label("Click an item in the sequence or a list to see its details.")
        self.facts = QLabel()
        self.facts.setProperty("role", "hint")
        self.facts.setWordWrap(True)
        self.facts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.caption = QLabel("Most often taken next")
        self.caption.setProperty("role", "hint")
        self.table = clickable_table(("Item", "Times"), "Items that users took right after this one in the whole "
                                     "log, most frequent first; the swatch is the item's category. Click one to see "
                                     "its details.", stretch_column=0)
        self.similar_caption = QLabel("Most similar by text")
        self.similar_caption.setProperty("role", "hint")
        self.similar_caption.setWordWrap(True)
        self.similar_table = clickable_table(("Item", "Similarity"), "Items whose title, categories and "
                                             "attributes mean most nearly the same, as read by the language model; "
                                             "the swatch is the item's category. Click one to see its details.",
                                             stretch_column=0)
        # The item's name and facts across the top, the two lists side by side below with the whole
        # width between them: beside a column of facts they were a few characters wide ("Pirate…").
        successors = QVBoxLayout()
        successors.addWidget(self.caption)
        successors.addWidget(self.table, 1)
        similar = QVBoxLayout()
        similar.addWidget(self.similar_caption)
        similar.addWidget(self.similar_table, 1)
        lists = QHBoxLayout()
        lists.addLayout(successors, 1)
        lists.addLayout(similar, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.heading)
        layout.addWidget(self.facts)
        layout.addLayout(lists, 1)
        self.table.cellClicked.connect(lambda row, _col: self.item_clicked.emit(self.followers[row][0].item))
        self.similar_table.cellClicked.connect(lambda row, _col: self.item_clicked.emit(self.similar[row][0].item))
        self.clear()

    def clear(self) -> None:
        self.followers, self.similar = [], []
        self.heading.setProperty("role", "hint")
        self.heading.setText("Click an item in the sequence or a list to see its details.")
        for widget in (self.facts, self.caption, self.table, self.similar_caption, self.similar_table):
            widget.hide()

    def show_item(self, facts: ItemFacts, followers: Sequence[tuple[ItemFacts, int]],
                  similar: Sequence[tuple[ItemFacts, float]] = ()) -> None:
        self.followers, self.similar = list(followers), list(similar)
        self.heading.setProperty("role", "heading")
        self.heading.style().unpolish(self.heading)
        self.heading.style().polish(self.heading)
        self.heading.setText(facts.title or facts.item)
        self.facts.setText(f"Item id: {facts.item} · Categories: {category_text(facts.categories) or '(none)'}")
        self.caption.setText("Most often taken next" if self.followers else "No item followed this one more than once in the log.")
        _fill(self.table, [(f, f"{count:,}") for f, count in self.followers])
        _fill(self.similar_table, [(f, f"{similarity:.2f}") for f, similarity in self.similar])
        self.similar_caption.setText("Most similar by text" if self.similar else
                                     self.no_text_reason or "No similar items by text yet: the catalogue's text "
                                                            "is being read, or this item has none.")
        for widget in (self.facts, self.caption, self.similar_caption):
            widget.show()
        self.table.setVisible(bool(self.followers))
        self.similar_table.setVisible(bool(self.similar))


def _fill(table, rows: Sequence[tuple[ItemFacts, str]]) -> None:
    """One row per item: its title beside its primary category's colour swatch, and a right-aligned figure."""
    table.setRowCount(len(rows))
    for row, (facts, figure) in enumerate(rows):
        category = primary_category(facts.categories)
        cells = (QTableWidgetItem(colour_icon(category_colour(category)), facts.title or facts.item),
                 QTableWidgetItem(figure))
        cells[1].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        for column, cell in enumerate(cells):
            cell.setToolTip(f"{facts.title} ({facts.item})\n{category_text(facts.categories) or '(no category)'}")
            table.setItem(row, column, cell)
