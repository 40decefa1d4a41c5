"""The item search field: words in titles at once on the GUI thread, items found by meaning from a worker."""

from __future__ import annotations

import threading
from collections import namedtuple

import pytest
from PySide6.QtCore import Qt

from studio.widgets.item_search import SUGGESTIONS, ItemSearchField

Row = namedtuple("Row", "item title")
TRAIN, LOCOMOTIVE, BEAR = Row("t1", "Wooden Train Set"), Row("t7", "Deluxe Locomotive 7"), Row("t3", "Plush Bear")


class SlowMeaning:
    """A search by meaning that holds its answer until ``release`` (the language model's seconds)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.asked: list[tuple[int, str, int, list]] = []  # (thread, text, limit, exclude)

    def __call__(self, text: str, limit: int, exclude: list) -> list[Row]:
        self.asked.append((threading.get_ident(), text, limit, list(exclude)))
        self.release.wait(5)
        return [LOCOMOTIVE] if "train" in text or "engine" in text else [BEAR]


def by_words(text: str, limit: int) -> list[Row]:
    return [row for row in (TRAIN, LOCOMOTIVE, BEAR) if text.lower() in row.title.lower()][:limit]


@pytest.fixture
def field(qtbot, context):
    field = ItemSearchField("Find an item…")
    qtbot.addWidget(field)
    field.meaning = SlowMeaning()
    field.set_search(by_words, field.meaning, context.run)
    field.show()
    return field


def test_titles_holding_the_words_show_at_once_and_items_found_by_meaning_follow_from_a_worker(qtbot, field):
    qtbot.keyClicks(field, "wooden train")
    qtbot.waitUntil(lambda: field.suggestions.stringList() == ["Wooden Train Set — t1"], timeout=3000)
    qtbot.waitUntil(lambda: bool(field.meaning.asked), timeout=3000)  # asked while the window keeps going
    thread, *question = field.meaning.asked[0]
    assert thread != threading.get_ident() and question == ["wooden train", SUGGESTIONS - 1, ["t1"]]
    with qtbot.waitSignal(field.meaning_arrived, timeout=5000):
        field.meaning.release.set()
    assert field.suggestions.stringList() == ["Wooden Train Set — t1", "Deluxe Locomotive 7 — t7"]


def test_items_found_by_meaning_for_words_since_changed_are_dropped(qtbot, field):
    qtbot.keyClicks(field, "train")
    qtbot.waitUntil(lambda: bool(field.meaning.asked), timeout=3000)
    field.clear()
    qtbot.keyClicks(field, "bear")
    qtbot.waitUntil(lambda: len(field.meaning.asked) == 2, timeout=3000)
    with qtbot.waitSignal(field.meaning_arrived, timeout=5000) as arrived:
        field.meaning.release.set()
    assert arrived.args == ["bear"] and field.suggestions.stringList() == ["Plush Bear — t3"]


def test_enter_on_words_no_title_holds_picks_the_first_item_found_by_meaning(qtbot, field):
    field.setText("steam engine")
    with qtbot.assertNotEmitted(field.picked, wait=100):
        qtbot.keyClick(field, Qt.Key.Key_Return)  # nothing yet: no title holds the words
    with qtbot.waitSignal(field.picked, timeout=5000) as picked:
        field.meaning.release.set()
    assert picked.args == [LOCOMOTIVE] and field.text() == ""


def test_without_the_text_extra_only_words_in_titles_are_searched(qtbot, context):
    field = ItemSearchField("Find an item…")
    qtbot.addWidget(field)
    field.set_search(by_words)
    qtbot.keyClicks(field, "plush")
    qtbot.waitUntil(lambda: field.suggestions.stringList() == ["Plush Bear — t3"], timeout=3000)
    with qtbot.waitSignal(field.picked, timeout=1000) as picked:
        qtbot.keyClick(field, Qt.Key.Key_Return)
    assert picked.args == [BEAR]
