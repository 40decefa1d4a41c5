"""A search field over the catalogue: type words, pick one of the suggested items.

It asks ``engine.search_items`` (through the ``search`` callable it is given), so the catalogue
never has to be loaded into the window: items whose id or title holds the words come first,
then, once the ``[text]`` extra has read the catalogue, the items whose text means most nearly
them ("wooden train" finds "Deluxe Locomotive 7"). Without the extra it finds words in titles.
The what-if bar uses one to add an item to a sequence; Explore's item details, to open an item.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from PySide6.QtCore import QStringListModel, QTimer, Signal
from PySide6.QtWidgets import QCompleter, QLineEdit, QWidget

SUGGESTIONS = 20
SEARCH_DELAY_MS = 120


class ItemSearchField(QLineEdit):
    """Suggests items as one types; ``picked(row)`` (a row of ``engine.search_items``) on Enter, a
    click on a suggestion, or ``pick()``; the field is cleared after a pick."""

    picked = Signal(object)

    def __init__(self, placeholder: str, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent, placeholderText=placeholder)
        self.setClearButtonEnabled(True)
        self._search: Optional[Callable[[str, int], Sequence[Any]]] = None
        self._found: dict[str, Any] = {}
        self.suggestions = QStringListModel(self)
        completer = QCompleter(self.suggestions, self)
        # Every suggestion is shown: with the text extra, items found by meaning need not contain the words.
        completer.setCompletionMode(QCompleter.CompletionMode.UnfilteredPopupCompletion)
        completer.setMaxVisibleItems(12)
        self.setCompleter(completer)
        self._timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._timer.timeout.connect(self._refresh_suggestions)
        self.textEdited.connect(lambda _text: self._timer.start())
        self.returnPressed.connect(self.pick)
        completer.activated.connect(lambda _text: QTimer.singleShot(0, self.pick))

    def set_search(self, search: Optional[Callable[[str, int], Sequence[Any]]]) -> None:
        """``search(text, limit)`` → item rows with ``item`` and ``title``; None disables the field."""
        self._search = search
        self._found.clear()
        self.suggestions.setStringList([])
        self.setEnabled(search is not None)

    def _refresh_suggestions(self) -> None:
        text = self.text().strip()
        if self._search is None or not text:
            return
        rows = self._search(text, SUGGESTIONS)
        self._found = {suggestion_text(row): row for row in rows}
        self.suggestions.setStringList(list(self._found))
        self.completer().complete()

    def pick(self) -> None:
        """Emit the chosen suggestion, or the best match of the typed words (asked now when they were
        typed faster than the suggestions followed)."""
        text = self.text().strip()
        if text and text not in self._found and self._search is not None:
            self._found = {suggestion_text(row): row for row in self._search(text, SUGGESTIONS)}
        row = self._found.get(text) or next(iter(self._found.values()), None) if text else None
        if row is not None:
            self.picked.emit(row)
            self.clear()


def suggestion_text(row: Any) -> str:
    return f"{row.title} — {row.item}" if row.title and row.title != row.item else str(row.item)
