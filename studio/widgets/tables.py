"""The read-only, click-a-row tables and grey hint lines the Explore panes share."""

from __future__ import annotations

from typing import Sequence

from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableWidget

ROW_HEIGHT = 22


def clickable_table(headers: Sequence[str], tooltip: str, stretch_column: int, row_height: int = ROW_HEIGHT) -> QTableWidget:
    """A table whose rows are clicked, never edited: one whole row selected, no row numbers.

    Columns fit their content except ``stretch_column``, which takes the spare width (titles).
    """
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.setToolTip(tooltip)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(row_height)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch_column, QHeaderView.ResizeMode.Stretch)
    return table


def hint_label(text: str = "") -> QLabel:
    """A wrapped line in the style sheet's hint role (what to do next, why a pane is empty)."""
    label = QLabel(text)
    label.setProperty("role", "hint")
    label.setWordWrap(True)
    return label
