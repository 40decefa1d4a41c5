"""Explore on a tiny trained workspace: sequence, interests, ranked list, what-if, compare (its item details:
test_item_details.py)."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from studio.pages.explore import ExplorePage
from studio.pages.explore_queries import ExploreQuery, answer_query, before_item
from studio.widgets.ranked_list import REASON_ROLE
from studio.widgets.reasons import reason_in_words
from studio.widgets.tables import CELL_PADDING
from studio.widgets.what_if import interest_moves
from tests.studio.trained_workspace import explore_page, open_trained_copy, wait_for_fresh_answer  # noqa: F401 (the page fixture)


def runs_by_model(engine):
    return {run.model: run.id for run in engine.runs() if run.status == "done"}


def test_answers_reaching_a_page_in_the_background_are_painted_when_it_is_shown(qtbot, page):
    painted = page.timeline.events
    page.hide()  # another page in front
    other = page.users.model.user_at(1)
    page.show_user(other)
    wait_for_fresh_answer(qtbot, page)
    assert page.answer.query.user == other and page.sequence != painted
    assert page.timeline.events == painted  # nobody saw it: nothing was painted
    page.show()
    assert page.timeline.events == page.sequence
    assert page.ranked.recommendations == page.answer.recommendations


def test_a_users_sequence_arrives_read_so_the_window_only_looks_its_facts_up(page):
    from studio.widgets.timeline_events import kept_facts

    assert page.sequence and set(kept_facts()) <= set(vars(page.sequence))  # found in the worker
    assert page.timeline.events is page.sequence is page.effective_sequence()


def test_first_user_shows_sequence_interests_and_ranked_list(page):
    engine = page.context.engine
    user = page.users.model.user_at(0)
    assert page.user == user
    assert page.timeline.table.model().rowCount() == len(engine.user_history(user)) > 0
    assert page.interest_bars.interests and 0 < sum(i.probability for i in page.interest_bars.interests) <= 1.0001
    ranked = page.ranked.recommendations
    assert [rec.rank for rec in ranked] == list(range(1, page.controls.k_box.value() + 1))
    assert page.ranked.table.model().index(0, 1).data(REASON_ROLE) == reason_in_words(ranked[0], page.sequence) != ""


def test_changing_user_and_controls_repaints_only_the_latest(qtbot, page):
    page.users.table.selectRow(1)
    page.controls.k_box.setValue(5)
    page.controls.k_box.setValue(7)
    wait_for_fresh_answer(qtbot, page)
    assert page.answer.query.user == page.users.model.user_at(1)
    assert page.ranked.table.model().rowCount() == 7


def test_a_late_answer_for_the_previous_user_is_dropped_and_answers_are_made_off_the_gui_thread(qtbot, page,
                                                                                                 monkeypatch):
    import studio.pages.explore as explore

    asked_on_gui_thread, painted = [], []

    def answer(engine, query):
        asked_on_gui_thread.append(threading.current_thread() is threading.main_thread())
        return answer_query(engine, query)

    monkeypatch.setattr(explore, "answer_query", answer)
    paint = page._paint_answer
    monkeypatch.setattr(page, "_paint_answer", lambda result: painted.append(result.query.user) or paint(result))
    first, second = page.users.model.user_at(2), page.users.model.user_at(3)
    page.show_user(first)
    page.show_user(second)  # before the first user's answer arrives
    wait_for_fresh_answer(qtbot, page)
    qtbot.wait(200)
    assert page.answer.query.user == second and painted == [second]
    assert asked_on_gui_thread and not any(asked_on_gui_thread)


def test_a_users_lists_come_from_the_events_read_for_their_sequence(page, monkeypatch):
    """Showing a user reads their events once: the sequence shown is the history the lists are made from."""
    engine = page.context.engine
    query = ExploreQuery(page.users.model.user_at(1), page.controls.run, None, 5, 0.0, True, None, True)
    expected = answer_query(engine, replace(query, load_sequence=False))
    monkeypatch.setattr(engine, "user_items", lambda user: pytest.fail("the user's events were read twice"))
    answer = answer_query(engine, query)
    assert answer.sequence and answer.recommendations == expected.recommendations
    assert answer.interests == expected.interests


def test_what_if_changes_interests_and_recommendations_without_retraining(qtbot, page):
    before = [rec.item for rec in page.ranked.recommendations]
    runs_before = len(page.context.engine.runs())
    seen = {event.item for event in page.sequence}
    rows = page.context.engine.search_items("e", 50)
    added = next(row for row in rows if row.item not in seen and row.item not in before)
    page.what_if.add_item.emit(added)
    wait_for_fresh_answer(qtbot, page)
    assert page.timeline.events[-1].item == added.item and page.timeline.events[-1].what_if
    assert page.answer.query.history[-1] == added.item
    after = [rec.item for rec in page.ranked.recommendations]
    assert after != before and added.item not in after
    page.what_if.drop_last.emit(1)
    page.what_if.drop_last.emit(2)
    wait_for_fresh_answer(qtbot, page)
    assert len(page.timeline.events) == len(page.sequence) - 2  # the added item went first
    page.what_if.reset.emit()
    wait_for_fresh_answer(qtbot, page)
    assert page.answer.query.history is None
    assert [rec.item for rec in page.ranked.recommendations] == before
    page.what_if.drop_last.emit(1)
    last = page.context.engine.search_items(page.sequence[-1].item, 1)[0]
    assert last.item == page.sequence[-1].item
    page.what_if.add_item.emit(last)
    wait_for_fresh_answer(qtbot, page)  # the edited sequence equals the stored one again
    assert [rec.item for rec in page.ranked.recommendations] == before
    assert len(page.context.engine.runs()) == runs_before


def test_compare_mode_highlights_the_held_out_item(qtbot, page):
    engine = page.context.engine
    runs = runs_by_model(engine)
    page.controls.k_box.setValue(20)
    user, run = find_hit(engine, runs, k=20)
    page.users.search.setText(user)
    qtbot.waitUntil(lambda: page.user == user, timeout=5000)
    page.controls.model_box.setCurrentIndex(page.controls.model_box.findData(runs["sasrec"]))
    page.controls.compare_box.setChecked(True)
    page.controls.compare_model_box.setCurrentIndex(page.controls.compare_model_box.findData(run))
    wait_for_fresh_answer(qtbot, page)
    assert page.compared.isVisible()
    held_out = engine.held_out_item(user)
    assert page.compared.highlighted_rows() == [i for i, rec in enumerate(page.compared.recommendations)
                                                if rec.item == held_out] != []
    row = page.compared.highlighted_rows()[0]
    assert page.compared.table.model().index(row, 1).data(Qt.ItemDataRole.FontRole).bold()
    assert "rank" in page.compared.summary.text()
    shaded = page.timeline.held_out_rows
    assert shaded and all(page.timeline.events[row].item == held_out for row in shaded)
    assert max(shaded) == len(page.timeline.events) - 1
    page.controls.compare_box.setChecked(False)
    wait_for_fresh_answer(qtbot, page)
    assert page.timeline.held_out_rows == [] and page.compared.highlighted_rows() == []


def find_hit(engine, runs, k):
    """A user whose held-out item the popularity baseline ranks in its top ``k`` from the history before it."""
    for row in engine.users_page(0, engine.user_count(None), None, "activity"):
        held_out = engine.held_out_item(row.user)
        if held_out is None:
            continue
        history = before_item([str(item) for item in engine.user_history(row.user)["item"]], held_out)
        if held_out in [r.item for r in engine.recommend(runs["pop"], row.user, k=k, history=history)]:
            return row.user, runs["pop"]
    pytest.fail("the popularity baseline ranks no user's held-out item in its top list")


def test_a_what_if_edit_says_which_interests_moved(qtbot, page):
    seen = {event.item for event in page.sequence}
    added = next(row for row in page.context.engine.search_items("e", 50) if row.item not in seen)
    page.what_if.add_item.emit(added)
    wait_for_fresh_answer(qtbot, page)
    assert page.what_if.state.text().endswith(f"after adding {added.title}")
    assert "points" in page.what_if.state.text() or "no interest moved" in page.what_if.state.text()


def test_profile_line_and_diversity_value_are_shown(qtbot, page):
    assert f"{len(page.sequence):,} events" in page.profile_label.text()
    page.controls.diversity.setValue(30)
    assert page.controls.diversity_value.text() == "0.30"


def test_empty_states_say_what_to_do(qtbot, context):
    page = ExplorePage(context)
    qtbot.addWidget(page)
    assert "Open a workspace" in page.heading.text()
    assert "No workspace" in page.ranked.empty.text()


def test_what_if_search_suggests_catalogue_titles_and_adds_the_pick(qtbot, page):
    engine = page.context.engine
    wanted = engine.search_items("puzzle", 1)[0]
    qtbot.keyClicks(page.what_if.search, "puzzle")
    qtbot.waitUntil(lambda: page.what_if.search.suggestions.rowCount() > 0, timeout=3000)
    suggestions = page.what_if.search.suggestions.stringList()
    by_words = [text for text in suggestions if "puzzle" in text.lower()]
    assert by_words and suggestions[:len(by_words)] == by_words  # items found by meaning (text extra) follow
    with qtbot.waitSignal(page.what_if.add_item) as added:
        page.what_if.add_button.click()
    assert added.args[0].item == wanted.item
    wait_for_fresh_answer(qtbot, page)
    assert page.answer.query.history[-1] == wanted.item


def test_a_run_that_cannot_answer_keeps_the_sequence_and_says_why_once(qtbot, context, tmp_path):
    from core import runs

    engine = open_trained_copy(tmp_path)
    broken = runs_by_model(engine)["sasrec"]
    runs.update_run(engine.workspace, broken, bundle_path=str(tmp_path / "deleted-bundle"))  # its files are gone
    engine.set_active_run(broken)
    context.set_engine(engine)
    page = ExplorePage(context)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: page.answer is not None, timeout=10_000)
    assert page.answer.error is not None and page.timeline.table.model().rowCount() > 0
    assert "could not answer" in page.ranked.empty.text() and page.ranked.table.model().rowCount() == 0
    page.users.table.selectRow(2)
    wait_for_fresh_answer(qtbot, page)
    assert len(page.findChildren(QMessageBox, "errorDialog")) == 1
    page.controls.model_box.setCurrentIndex(page.controls.model_box.findData(runs_by_model(engine)["pop"]))
    wait_for_fresh_answer(qtbot, page)
    assert page.answer.error is None and page.ranked.recommendations


def test_interest_moves_name_the_biggest_changes_in_points():
    from core.serving import Interest

    before = [Interest("Drama", 0.20), Interest("Comedy", 0.50), Interest("Horror", 0.30)]
    after = [Interest("Drama", 0.37), Interest("Comedy", 0.41), Interest("Horror", 0.22)]
    assert interest_moves(before, after, "adding Star Wars") == "Drama +17 points, Comedy −9 points after adding Star Wars"
    assert interest_moves(before, before, "adding X") == "no interest moved a point after adding X"


@pytest.mark.parametrize("size", [(1280, 800), (1024, 700)])
def test_item_titles_get_readable_width_at_laptop_sizes(qtbot, wait_idle, window, tmp_path, size):
    window.context.set_engine(open_trained_copy(tmp_path))
    window.resize(*size)
    window.show_page("Explore")
    page = window.page("Explore")
    qtbot.waitUntil(lambda: page.answer is not None and bool(page.ranked.recommendations), timeout=10_000)
    wait_idle(window.context)
    metrics = page.fontMetrics()
    twenty_chars = metrics.horizontalAdvance("Happy Brick Set Saga")
    sequence = page.timeline.table
    assert sequence.columnWidth(2) >= twenty_chars
    # Two lines of title per row (word-wrapped, the time and the event's value on their own second
    # lines): at least 28 characters of a title readable beside its colour swatch.
    title_room = sequence.columnWidth(2) - sequence.iconSize().width() - CELL_PADDING
    assert sequence.wordWrap() and sequence.rowHeight(0) >= 2 * sequence.fontMetrics().lineSpacing()
    assert 2 * title_room >= metrics.horizontalAdvance("Galaxy Card Game Deluxe Set 1")
    assert page.ranked.table.columnWidth(1) >= twenty_chars
    timeline = page.timeline
    shown = {timeline.rows.text(event, 1) for event in timeline.events}
    assert all(timeline.table.columnWidth(1) > metrics.horizontalAdvance(line)  # "purchase 18.85" whole
               for text in shown for line in text.split("\n"))
    legend = timeline.legend
    assert all(point.x() + 14 + legend.fontMetrics().horizontalAdvance(name) <= legend.width()
               for name, _, point in legend.entries())  # the what-if entry is not clipped
    timeline.table.clicked.emit(timeline.rows.index(len(timeline.events) - 1, 0))
    qtbot.waitUntil(lambda: page.details.table.isVisibleTo(page), timeout=10_000)
    details = page.details.table
    assert details.columnCount() == 2  # titles, not "Pirate…": 28 characters and the swatch
    assert details.columnWidth(0) >= metrics.horizontalAdvance("Galaxy Card Game Deluxe Set 1") + details.iconSize().width()
    assert details.columnWidth(0) + details.columnWidth(1) <= details.viewport().width()  # "Times" in view
    assert page.ranked.table.horizontalHeader().count() == 3  # no category column beside the colour swatch
    reason = page.ranked.table.model().index(0, 1).data(REASON_ROLE)
    assert page.ranked.table.rowHeight(0) >= 2 * page.fontMetrics().height()  # title and the whole reason
    assert reason and "…" not in reason


def test_events_another_process_stores_reach_the_open_user_without_a_reload(qtbot, page):
    from core.engine import Engine
    from core.importing.live import EventFeed

    engine, user = page.context.engine, page.user
    taken = page.ranked.recommendations[0].item  # exclude-seen is on: once taken it leaves the list
    before = len(page.sequence)
    other = Engine.open(engine.workspace.path)  # a service's or another window's own connections
    latest = float(engine.user_history(user)["ts"].max())
    EventFeed(other.workspace, "service").post([{"user": user, "item": taken, "time": latest + 60}])
    qtbot.waitUntil(lambda: len(page.timeline.events) == before + 1, timeout=10_000)
    wait_for_fresh_answer(qtbot, page)
    assert page.user == user and page.timeline.events[-1].item == taken
    assert taken not in [rec.item for rec in page.ranked.recommendations]
    other.workspace.close()


def test_without_an_active_run_the_lists_come_from_the_run_the_cli_would_answer_from(qtbot, page):
    """A session log's Explore showed "#1 Popularity" beside a Transformer that beat it, while the status
    bar, `nextpick recommend` and the service answered from the Transformer (``Engine.serving_run``)."""
    engine = page.context.engine
    assert engine.active_run() is None and engine.serving_run() != engine.runs()[0].id
    qtbot.waitUntil(lambda: page.controls.model_box.count() >= 2, timeout=10_000)
    assert page.controls.model_box.currentData() == engine.serving_run()
    assert page.controls.compare_model_box.currentData() != engine.serving_run()


def test_the_model_boxes_are_filled_from_runs_read_off_the_window_thread(qtbot, page, monkeypatch):
    import threading

    engine = page.context.engine
    qtbot.waitUntil(lambda: page.controls.model_box.count() >= 2, timeout=10_000)
    threads, read = [], engine.runs

    def recorded_runs():
        threads.append(threading.current_thread())
        return [run for run in read() if run.model != "pop"]

    wanted = len([run for run in read() if run.model != "pop" and run.status == "done"])
    monkeypatch.setattr(engine, "runs", recorded_runs)
    page.context.announce_runs_changed()
    qtbot.waitUntil(lambda: page.controls.model_box.count() == wanted, timeout=5000)
    assert threads and threading.main_thread() not in threads
