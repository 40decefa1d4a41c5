"""The what-if bar: add an item to the user's sequence or drop the latest events.

Nothing is retrained: the page asks the engine for interests and recommendations given the
edited sequence (``history=``), which is the real-time adaptation a sequence model promises.
Item search goes through ``engine.search_items`` so the catalogue never has to be loaded
into the window; once the catalogue's text is embedded it finds items by meaning too.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from PySide6.QtCore import QStringListModel, QTimer, Signal
from PySide6.QtWidgets import QCompleter, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget

SUGGESTIONS = 20
SEARCH_DELAY_MS = 120


class WhatIfBar(QWidget):
    """Emits ``add_item(item_row)``, ``drop_last(n)`` and ``reset()``; knows nothing of users."""

    add_item = Signal(object)  # one row of engine.search_items
    drop_last = Signal(int)
    reset = Signal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._search: Optional[Callable[[str, int], Sequence[Any]]] = None
        self._found: dict[str, Any] = {}
        self.search = QLineEdit(placeholderText="What if they took… (type a title or what the item is)")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip("Search the catalogue by title or id, pick an item, and press Add to append it "
                               "to this user's sequence as if they had just taken it")
        self.suggestions = QStringListModel(self)
        self.completer = QCompleter(self.suggestions, self)
        # Every suggestion is shown: with the text extra, items found by meaning need not contain the words.
        self.completer.setCompletionMode(QCompleter.CompletionMode.UnfilteredPopupCompletion)
        self.completer.setMaxVisibleItems(12)
        self.search.setCompleter(self.completer)
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip("Append the chosen item to the sequence and update the predictions at once")
        self.drop_count = QSpinBox(minimum=1, maximum=50, value=1)
        self.drop_count.setToolTip("How many of the latest events to drop")
        self.drop_button = QPushButton("Drop last")
        self.drop_button.setToolTip("Remove the latest events from the sequence, as if they had not happened yet")
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Back to the user's real sequence")
        self.state = QLabel()
        self.state.setProperty("role", "hint")
        search_row = QHBoxLayout()
        search_row.addWidget(self.search, 1)
        search_row.addWidget(self.add_button)
        edit_row = QHBoxLayout()
        edit_row.addWidget(self.drop_button)
        edit_row.addWidget(self.drop_count)
        edit_row.addWidget(self.reset_button)
        edit_row.addWidget(self.state, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(search_row)
        layout.addLayout(edit_row)
        self._timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._timer.timeout.connect(self._refresh_suggestions)
        self.search.textEdited.connect(lambda _text: self._timer.start())
        self.search.returnPressed.connect(self._on_add)
        self.completer.activated.connect(lambda _text: QTimer.singleShot(0, self._on_add))
        self.add_button.clicked.connect(self._on_add)
        self.drop_button.clicked.connect(lambda: self.drop_last.emit(self.drop_count.value()))
        self.reset_button.clicked.connect(self.reset.emit)

    def set_search(self, search: Optional[Callable[[str, int], Sequence[Any]]]) -> None:
        """``search(text, limit)`` → item rows with ``item`` and ``title``; None disables the bar."""
        self._search = search
        self._found.clear()
        self.suggestions.setStringList([])
        self.setEnabled(search is not None)

    def _refresh_suggestions(self) -> None:
        text = self.search.text().strip()
        if self._search is None or not text:
            return
        rows = self._search(text, SUGGESTIONS)
        self._found = {suggestion_text(row): row for row in rows}
        self.suggestions.setStringList(list(self._found))
        self.completer.complete()

    def _on_add(self) -> None:
        text = self.search.text().strip()
        if text and text not in self._found and self._search is not None:
            self._found.update({suggestion_text(row): row for row in self._search(text, SUGGESTIONS)})
        row = self._found.get(text) or next(iter(self._found.values()), None) if text else None
        if row is not None:
            self.add_item.emit(row)
            self.search.clear()


def suggestion_text(row: Any) -> str:
    return f"{row.title} — {row.item}" if row.title and row.title != row.item else str(row.item)


def interest_moves(before: Sequence[Any], after: Sequence[Any], change: str, shown: int = 2) -> str:
    """What a what-if edit moved: "Drama +17 points, Comedy −9 points after adding Star Wars".

    ``before`` and ``after`` are the interests (name, probability) without and with the edit;
    moves under one percentage point are noise and are not named.
    """
    old = {interest.name: interest.probability for interest in before}
    names = list(dict.fromkeys([*old, *(interest.name for interest in after)]))
    new = {interest.name: interest.probability for interest in after}
    deltas = sorted(((100 * (new.get(name, 0.0) - old.get(name, 0.0)), name) for name in names),
                    key=lambda pair: -abs(pair[0]))
    moved = [(delta, name) for delta, name in deltas if abs(delta) >= 1][:shown]
    if not moved:
        return f"no interest moved a point after {change}"
    return ", ".join(f"{name} {delta:+.0f} points".replace("-", "−") for delta, name in moved) + f" after {change}"
