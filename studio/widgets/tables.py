"""The read-only, click-a-row tables and grey hint lines the Explore panes share."""

from __future__ import annotations

from typing import Iterable, Sequence

from PySide6.QtWidgets import (QAbstractItemView, QGroupBox, QHeaderView, QLabel, QTableView, QTableWidget,
                               QVBoxLayout, QWidget)

ROW_HEIGHT = 22
CELL_PADDING = 16  # a cell's margins and focus frame, both sides


def clickable_table(headers: Sequence[str], tooltip: str, stretch_column: int, row_height: int = ROW_HEIGHT) -> QTableWidget:
    """A table whose rows are clicked, never edited: one whole row selected, no row numbers.

    Columns fit their content except ``stretch_column``, which takes the spare width (titles).
    """
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    make_clickable(table, tooltip, stretch_column, row_height)
    return table


def make_clickable(table: QTableView, tooltip: str, stretch_column: int, row_height: int = ROW_HEIGHT) -> None:
    """Give ``table`` (a table widget or a view over a model) the clickable-rows look described above."""
    table.setToolTip(tooltip)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(row_height)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch_column, QHeaderView.ResizeMode.Stretch)


def fit_column(table: QTableView, column: int, texts: Iterable[str]) -> None:
    """Make ``column`` as wide as its header or the widest line of ``texts``, the few values known to
    decide it. Qt's fit-to-contents asks the model for every cell of up to a thousand rows, and
    only those on screen once the table is shown: ~15-40 ms per user in the Explore tables, and
    columns cut short when the rows that decide the width were scrolled out of view."""
    table.horizontalHeader().setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
    metrics = table.fontMetrics()
    widest = max((metrics.horizontalAdvance(line) for text in texts for line in text.split("\n")),
                 default=0) + CELL_PADDING
    table.setColumnWidth(column, max(table.horizontalHeader().sectionSizeHint(column), widest))


def hint_label(text: str = "") -> QLabel:
    """A wrapped line in the style sheet's hint role (what to do next, why a pane is empty)."""
    label = QLabel(text)
    label.setProperty("role", "hint")
    label.setWordWrap(True)
    return label


def group_box(title: str, *widgets: QWidget) -> QGroupBox:
    """A titled box of ``widgets`` one above the other, the last taking the height left."""
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    for index, widget in enumerate(widgets):
        layout.addWidget(widget, 1 if index == len(widgets) - 1 else 0)
    return box
