"""One item's details, the items people most often take right after it, and the items most
similar to it by text (the language model of the ``[text]`` extra)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QTabWidget, QTableWidgetItem, QVBoxLayout, QWidget

from studio.widgets.palette import category_colour, category_text, primary_category
from studio.widgets.timeline_strip import colour_icon
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
        self.facts = hint_label()
        self.facts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.caption = hint_label("")  # why the list is empty, when it is
        self.table = clickable_table(("Item", "Times"), "Items that users took right after this one in the whole "
                                     "log, most frequent first; the swatch is the item's category. Click one to see "
                                     "its details.", stretch_column=0)
        self.similar_caption = hint_label("")
        self.similar_table = clickable_table(("Item", "Similarity"), "Items whose title, categories and "
                                             "attributes mean most nearly the same, as read by the language model; "
                                             "the swatch is the item's category. Click one to see its details.",
                                             stretch_column=0)
        # The item's name and facts across the top, the two lists below as tabs, each with the pane's
        # whole width: side by side (or beside a column of facts) a laptop left each title a few
        # characters ("Pirate…").
        self.lists = QTabWidget()
        self.lists.setDocumentMode(True)
        for caption, table, title in ((self.caption, self.table, "Most often taken next"),
                                      (self.similar_caption, self.similar_table, "Most similar by text")):
            tab = QWidget()
            tab_layout = QVBoxLayout(tab)
            tab_layout.setContentsMargins(0, 4, 0, 0)
            tab_layout.addWidget(caption)
            tab_layout.addWidget(table, 1)
            self.lists.addTab(tab, title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.heading)
        layout.addWidget(self.facts)
        layout.addWidget(self.lists, 1)
        self.table.cellClicked.connect(lambda row, _col: self.item_clicked.emit(self.followers[row][0].item))
        self.similar_table.cellClicked.connect(lambda row, _col: self.item_clicked.emit(self.similar[row][0].item))
        self.clear()

    def clear(self) -> None:
        self.followers, self.similar = [], []
        self.heading.setProperty("role", "hint")
        self.heading.setText("Click an item in the sequence or a list to see its details.")
        for widget in (self.facts, self.lists):
            widget.hide()

    def show_item(self, facts: ItemFacts, followers: Sequence[tuple[ItemFacts, int]],
                  similar: Sequence[tuple[ItemFacts, float]] = ()) -> None:
        self.followers, self.similar = list(followers), list(similar)
        self.heading.setProperty("role", "heading")
        self.heading.style().unpolish(self.heading)
        self.heading.style().polish(self.heading)
        self.heading.setText(facts.title or facts.item)
        self.facts.setText(f"Item id: {facts.item} · Categories: {category_text(facts.categories) or '(none)'}")
        _fill(self.table, [(f, f"{count:,}") for f, count in self.followers])
        _fill(self.similar_table, [(f, f"{similarity:.2f}") for f, similarity in self.similar])
        self.caption.setText("" if self.followers else "No item followed this one more than once in the log.")
        self.similar_caption.setText("" if self.similar else
                                     self.no_text_reason or "No similar items by text yet: the catalogue's text "
                                                            "is being read, or this item has none.")
        self.lists.setTabText(0, f"Most often taken next ({len(self.followers)})")
        self.lists.setTabText(1, f"Most similar by text ({len(self.similar)})" if self.similar else
                              "Most similar by text")
        for widget in (self.facts, self.lists):
            widget.show()
        for caption, table in ((self.caption, self.table), (self.similar_caption, self.similar_table)):
            caption.setVisible(not table.rowCount())
            table.setVisible(bool(table.rowCount()))


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
