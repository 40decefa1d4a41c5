"""A search field over the catalogue: type words, pick one of the suggested items.

Two searches feed it. The items whose id or title holds the words (``engine.search_by_words``)
are asked on the GUI thread: instant, shown as one types. Then, with the ``[text]`` extra, the
items whose text means most nearly the words (``engine.search_by_meaning``: "wooden train" finds
"Deluxe Locomotive 7") are asked in a worker, since the language model runs on the query
(milliseconds) and loads the first time (seconds); they join the suggestions when they arrive,
unless the words changed meanwhile. The catalogue is never loaded into the window. The what-if
bar uses one to add an item to a sequence; Explore's item details, to open an item.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from PySide6.QtCore import QStringListModel, QTimer, Signal
from PySide6.QtWidgets import QCompleter, QLineEdit, QWidget

SUGGESTIONS = 20
SEARCH_DELAY_MS = 120

Search = Callable[[str, int], Sequence[Any]]  # (text, limit) -> item rows with ``item`` and ``title``
MeaningSearch = Callable[[str, int, list], Sequence[Any]]  # (text, limit, item ids to leave out) -> rows
RunJob = Callable[..., Any]  # StudioContext.run: runs a function in a worker, returns a studio.workers.Job


class ItemSearchField(QLineEdit):
    """Suggests items as one types; ``picked(row)`` (a row of ``engine.search_by_words`` or
    ``search_by_meaning``) on Enter, a click on a suggestion, or ``pick()``; the field is cleared
    after a pick. ``meaning_arrived`` follows each answer of the worker (tests wait on it)."""

    picked = Signal(object)
    meaning_arrived = Signal(str)  # the words those items were found for

    def __init__(self, placeholder: str, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent, placeholderText=placeholder)
        self.setClearButtonEnabled(True)
        self._by_words: Optional[Search] = None
        self._by_meaning: Optional[MeaningSearch] = None
        self._run_job: Optional[RunJob] = None
        self._found: dict[str, Any] = {}
        self._found_for = ""  # the words the suggestions answer
        self._asking = ""  # the words the worker is searching by meaning for ("" = none)
        self._pick_on_arrival = False  # Enter found nothing by words while the meaning search was out
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

    def set_search(self, by_words: Optional[Search], by_meaning: Optional[MeaningSearch] = None,
                   run_job: Optional[RunJob] = None) -> None:
        """``by_words(text, limit)`` on the GUI thread; ``by_meaning(text, limit, exclude)`` through
        ``run_job`` (both or neither); ``by_words`` None disables the field."""
        self._by_words, self._by_meaning, self._run_job = by_words, by_meaning, run_job
        self._show({}, "")
        self._asking, self._pick_on_arrival = "", False
        self.setEnabled(by_words is not None)

    def _refresh_suggestions(self) -> None:
        text = self.text().strip()
        if self._by_words is None or not text:
            return
        self._search_by_words(text)
        self.completer().complete()
        self._ask_by_meaning(text)

    def _search_by_words(self, text: str) -> None:
        self._show({suggestion_text(row): row for row in self._by_words(text, SUGGESTIONS)}, text)

    def _show(self, found: dict[str, Any], text: str) -> None:
        self._found, self._found_for = found, text
        self.suggestions.setStringList(list(found))

    def _ask_by_meaning(self, text: str) -> None:
        room = SUGGESTIONS - len(self._found)
        if self._by_meaning is None or self._run_job is None or room <= 0 or text == self._asking:
            return
        self._asking = text
        taken = [row.item for row in self._found.values()]
        job = self._run_job(_found_by_meaning, self._by_meaning, text, room, taken, progress=False, cancel=False)
        job.returned.connect(self._on_meaning)  # bound methods: a deleted field hears nothing more
        job.errored.connect(self._on_meaning_failed)

    def _on_meaning_failed(self, _exc: BaseException) -> None:
        """The words in titles still serve (a model folder that cannot load is said on Explore)."""
        self._asking, self._pick_on_arrival = "", False

    def _on_meaning(self, answer: tuple[MeaningSearch, str, Sequence[Any]]) -> None:
        search, text, rows = answer
        if search is not self._by_meaning or text != self._asking:
            return  # a search replaced since (another workspace), or words typed since
        self._asking = ""
        if text != self.text().strip() or text != self._found_for:
            return  # the words changed: their own searches are under way
        found = dict(self._found)
        found.update((suggestion_text(row), row) for row in rows if suggestion_text(row) not in found)
        self._show(found, text)
        self.meaning_arrived.emit(text)
        if self._pick_on_arrival:
            self._pick_on_arrival = False
            self.pick()
        elif rows and self.hasFocus():
            self.completer().complete()

    def pick(self) -> None:
        """Emit the chosen suggestion, or the best match of the typed words (searched by words now when
        they were typed faster than the suggestions followed; when no title holds them, the pick waits
        for the search by meaning)."""
        text = self.text().strip()
        if not text or self._by_words is None:
            return
        if text not in self._found and text != self._found_for:
            self._search_by_words(text)
            self._ask_by_meaning(text)
        row = self._found.get(text) or next(iter(self._found.values()), None)
        if row is not None:
            self.picked.emit(row)
            self.clear()
            self._show({}, "")
        else:
            self._pick_on_arrival = self._asking == text


def _found_by_meaning(search: MeaningSearch, text: str, limit: int, exclude: list) -> tuple[MeaningSearch, str, list]:
    """Runs in a worker: the items found, with the search and the words they answer."""
    return search, text, list(search(text, limit, exclude))


def suggestion_text(row: Any) -> str:
    return f"{row.title} — {row.item}" if row.title and row.title != row.item else str(row.item)
