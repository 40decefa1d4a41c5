"""The what-if bar: add an item to the user's sequence or drop the latest events.

Nothing is retrained: the page asks the engine for interests and recommendations given the
edited sequence (``history=``), which is the real-time adaptation a sequence model promises.
The item to add is found with an ``ItemSearchField`` (by title, and by meaning with the text extra).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from studio.widgets.item_search import ItemSearchField, MeaningSearch, RunJob, Search


class WhatIfBar(QWidget):
    """Emits ``add_item(item_row)``, ``drop_last(n)`` and ``reset()``; knows nothing of users."""

    add_item = Signal(object)  # one row of engine.search_items
    drop_last = Signal(int)
    reset = Signal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.search = ItemSearchField("What if they took… (type a title or what the item is)")
        self.search.setToolTip("Search the catalogue by title or id, pick an item, and press Add to append it "
                               "to this user's sequence as if they had just taken it")
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
        self.search.picked.connect(self.add_item.emit)
        self.add_button.clicked.connect(self.search.pick)
        self.drop_button.clicked.connect(lambda: self.drop_last.emit(self.drop_count.value()))
        self.reset_button.clicked.connect(self.reset.emit)

    def set_search(self, by_words: Optional[Search], by_meaning: Optional[MeaningSearch] = None,
                   run_job: Optional[RunJob] = None) -> None:
        """As ``ItemSearchField.set_search``; ``by_words`` None disables the bar."""
        self.search.set_search(by_words, by_meaning, run_job)
        self.setEnabled(by_words is not None)


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
