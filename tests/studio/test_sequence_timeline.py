"""The sequence timeline: the user's events in order, values and years, the held-out step, the strip with
its time axis and legend, and what the panes read from a user's sequence (what-if events, dislikes).
Moved as they were from test_widgets.py."""

from __future__ import annotations

import pandas as pd
from PySide6.QtCore import Qt

from studio.widgets.sequence_timeline import SequenceTimeline
from studio.widgets.timeline_events import TimelineEvent, after_held_out, events_from_frame, held_out_rows


def test_timeline_lists_events_in_order_and_reports_clicked_items(qtbot):
    frame = pd.DataFrame({"ts": [1.7e9, 1.7e9 + 60], "event_type": ["view", "purchase"], "item": ["a", "b"],
                          "title": ["Kite", "Doll"], "categories": ["Outdoor play", "Dolls|Pretend play"]})
    timeline = SequenceTimeline()
    qtbot.addWidget(timeline)
    timeline.set_events(events_from_frame(frame))
    assert timeline.events[1].categories == ("Dolls", "Pretend play")
    rows = timeline.table.model()
    assert rows.rowCount() == 2
    assert rows.index(1, 2).data() == "Doll"
    assert rows.columnCount() == 3 and rows.index(1, 2).data(Qt.ItemDataRole.DecorationRole) is not None  # the swatch
    assert "Dolls, Pretend play" in rows.index(1, 0).data(Qt.ItemDataRole.ToolTipRole)
    with qtbot.waitSignal(timeline.item_clicked) as clicked:
        timeline.table.clicked.emit(rows.index(1, 0))
    assert clicked.args == ["b"]
    timeline.mark_held_out("b")
    assert timeline.held_out_rows == [1] and rows.index(1, 2).data(Qt.ItemDataRole.BackgroundRole) is not None
    assert rows.index(0, 2).data(Qt.ItemDataRole.BackgroundRole) is None
    timeline.set_events([], "No events.")
    assert timeline.empty.text() == "No events." and not timeline.table.isVisibleTo(timeline)


def test_event_values_show_and_times_carry_the_year_when_the_sequence_spans_years(qtbot):
    year = 365 * 86_400
    frame = pd.DataFrame({"ts": [1.7e9, 1.7e9 + year], "event_type": ["rating", "rating"], "item": ["a", "b"],
                          "title": ["Kite", "Doll"], "categories": ["Toys", "Toys"], "value": [4.0, None]})
    timeline = SequenceTimeline()
    qtbot.addWidget(timeline)
    timeline.set_events(events_from_frame(frame))
    rows = timeline.table.model()
    assert rows.index(0, 1).data() == "rating\n4" and rows.index(1, 1).data() == "rating"
    assert rows.index(0, 0).data().startswith("14 Nov 2023") and rows.index(1, 0).data().startswith("13 Nov 2024")
    timeline.set_events(events_from_frame(frame.assign(ts=[1.7e9, 1.7e9 + 60])))
    assert "2023" not in rows.index(0, 0).data()


def test_a_held_out_step_mid_sequence_is_shaded_and_later_events_greyed(qtbot):
    items = ["a", "a", "b", "c", "c", "d"]  # steps a, b, c, d: a time split's model saw a and b
    events = [TimelineEvent(item, item.upper(), ("Dolls",), "view", 1.7e9 + 60 * n) for n, item in enumerate(items)]
    assert held_out_rows(events, "c", 2) == [3, 4]
    assert held_out_rows(events, "d", None) == [5]  # leave-one-out: the trailing step
    assert held_out_rows(events, "d", 2) == [5]  # the step is not on the item (a what-if moved it): trailing
    assert held_out_rows(events, None, 2) == []
    timeline = SequenceTimeline()
    qtbot.addWidget(timeline)
    timeline.set_events(events)
    timeline.mark_held_out("c", 2)
    rows = timeline.table.model()
    assert timeline.held_out_rows == [3, 4] and rows.index(3, 2).data(Qt.ItemDataRole.BackgroundRole) is not None
    assert rows.index(5, 2).data(Qt.ItemDataRole.ForegroundRole) is not None
    assert "had not seen" in rows.index(5, 2).data(Qt.ItemDataRole.ToolTipRole)
    assert rows.index(2, 2).data(Qt.ItemDataRole.ForegroundRole) is None
    assert timeline.strip.held_out == [3, 4]  # the strip marks them too, and greys what follows
    assert [after_held_out(timeline.strip.held_out, row) for row in (2, 4, 5)] == [False, False, True]
    timeline.mark_held_out(None)
    assert timeline.held_out_rows == [] and rows.index(5, 2).data(Qt.ItemDataRole.ForegroundRole) is None
    assert timeline.strip.held_out == [] and not after_held_out(timeline.strip.held_out, 5)


def test_timeline_columns_fit_values_scrolled_out_of_view(qtbot):
    events = [TimelineEvent(f"i{n}", f"Item {n}", ("Dolls",), "view", 1.7e9 + 60 * n) for n in range(300)]
    events.append(TimelineEvent("last", "Last", ("Dolls",), "purchase", 1.7e9 + 60 * 300))
    timeline = SequenceTimeline()
    qtbot.addWidget(timeline)
    timeline.resize(500, 300)
    timeline.show()
    timeline.set_events(events)
    metrics = timeline.table.fontMetrics()
    assert timeline.table.columnWidth(1) > metrics.horizontalAdvance("purchase")
    assert all(timeline.table.columnWidth(0) > metrics.horizontalAdvance(line)
               for line in timeline.rows.text(events[-1], 0).split("\n"))


def test_timeline_event_column_is_sized_from_one_event_per_kind_not_every_event(qtbot, monkeypatch):
    """A heavy user's prices make most texts distinct: measuring each held the window ~100 ms."""
    events = [TimelineEvent(f"i{n}", f"Item {n}", ("Dolls",), "purchase", 1.7e9 + 60 * n, value=1 + n / 100)
              for n in range(2000)]
    events.append(TimelineEvent("x", "X", ("Dolls",), "rating", 1.8e9, value=1, negative=True))
    timeline = SequenceTimeline()
    qtbot.addWidget(timeline)
    timeline.resize(500, 300)
    measured = []
    real_text = timeline.rows.text
    monkeypatch.setattr(timeline.rows, "text", lambda event, column: measured.append(column) or real_text(event, column))
    timeline.set_events(events)
    assert measured.count(1) <= 6  # purchases priced in 1 to 5 characters ("1" to "20.99"), the dislike
    metrics = timeline.table.fontMetrics()
    assert timeline.table.columnWidth(1) > max(metrics.horizontalAdvance("20.99"), metrics.horizontalAdvance("(dislike)"))


def test_timeline_rows_hold_time_and_value_on_two_lines_leaving_the_width_to_titles(qtbot):
    event = TimelineEvent("i1", "Galaxy Card Game Deluxe", ("Card games",), "purchase", 1.7e9, value=18.85)
    timeline = SequenceTimeline()
    qtbot.addWidget(timeline)
    timeline.resize(400, 300)
    timeline.show()
    timeline.set_events([event])
    assert timeline.rows.text(event, 1) == "purchase\n18.85" and timeline.rows.text(event, 0).count("\n") == 1
    metrics = timeline.table.fontMetrics()
    assert timeline.table.columnWidth(1) > metrics.horizontalAdvance("purchase")  # "purchase 18.85" is not cut
    assert timeline.table.rowHeight(0) >= 2 * metrics.lineSpacing()


def test_a_700_event_sequence_scrolls_and_zooms_with_a_time_axis_and_a_legend(qtbot):
    import pytest

    from studio.widgets.timeline_strip import _MARK, MARK_SPACING, axis_label

    day = 86_400
    kinds = ["view", "view", "cart", "purchase", "rating"]
    events = [TimelineEvent(f"i{n}", f"Item {n}", ("Toys",), kinds[n % 5], 1.7e9 + n * day) for n in range(700)]
    timeline = SequenceTimeline()
    qtbot.addWidget(timeline)
    timeline.resize(400, 400)
    timeline.show()
    timeline.set_events(events)
    strip = timeline.strip
    assert strip.x_of(1) - strip.x_of(0) == MARK_SPACING >= 2 * _MARK * 1.2  # marks never overlap
    assert strip.width() >= 699 * MARK_SPACING > timeline.strip_area.viewport().width()
    qtbot.waitUntil(lambda: timeline.strip_area.horizontalScrollBar().value() > 0)  # the latest events in view
    assert timeline.legend.types == ["rating", "view", "cart", "purchase"]
    assert strip.span == 699 * day
    assert axis_label(events[0], strip.span, "unix") == "Nov 2023"  # a span of years: months with their year
    timeline.zoom_out.click()
    assert strip.spacing == pytest.approx(MARK_SPACING / 1.5)
    timeline.fit()
    assert strip.content_width() <= timeline.strip_area.viewport().width()


def test_the_timeline_legend_wraps_rather_than_cutting_an_entry_off(qtbot):
    from studio.widgets.timeline_strip import TimelineLegend

    legend = TimelineLegend()
    qtbot.addWidget(legend)
    legend.show()
    legend.resize(400, legend.height())
    legend.set_types(["view", "cart", "purchase"])
    metrics = legend.fontMetrics()

    def all_inside():
        return all(point.x() + 14 + metrics.horizontalAdvance(name) <= legend.width()
                   for name, _, point in legend.entries())

    assert all_inside() and legend.height() == legend.LINE_HEIGHT
    legend.resize(150, legend.height())  # a narrow pane: the what-if entry moves to a line of its own
    assert all_inside() and legend.height() >= 2 * legend.LINE_HEIGHT
    assert legend.entries()[-1][0] == "what-if" and legend.entries()[-1][2].y() > legend.LINE_HEIGHT


def test_a_user_sequence_finds_what_the_panes_read_once_what_if_events_aside():
    from studio.widgets.timeline_events import UserSequence, as_user_sequence, kept_facts

    year = 366 * 86_400
    sequence = UserSequence([TimelineEvent("a", "A", ("Dolls",), "view", 1.7e9),
                             TimelineEvent("b", "B", ("Dolls",), "purchase", 1.7e9 + 60, value=12.5),
                             TimelineEvent("a", "A", ("Dolls",), "cart", 1.7e9 + 120),
                             TimelineEvent("c", "C", ("Cars",), "rating", 1.7e9 + year, value=1.0, negative=True),
                             TimelineEvent("d", "D", ("Cars",), "what-if", None, what_if=True)])
    assert sequence.read_all() is sequence and set(kept_facts()) <= set(vars(sequence))  # all found at once
    assert sequence.items == ("a", "b", "a", "d")  # the dislike is no step
    assert sequence.latest["a"].event_type == "cart" and sequence.latest["d"].what_if
    assert sequence.event_types == {"view", "purchase", "cart", "rating"}
    assert (sequence.stored_count, sequence.last_time, sequence.time_span) == (4, 1.7e9 + year, year)
    assert sequence.spans_years and not UserSequence(sequence[:3]).spans_years
    assert sequence.values_by_type == {"purchase": [12.5], "rating": [1.0]}
    assert [event.event_type for event in sequence.width_deciders] == ["view", "purchase", "cart", "rating", "what-if"]
    assert as_user_sequence(sequence) is sequence and as_user_sequence(list(sequence)) == sequence


def test_dislikes_show_in_the_sequence_but_are_no_steps_and_no_history():
    from studio.widgets.timeline_events import interactions

    day = 86_400.0
    events = [TimelineEvent("a", "A", (), "rating", 0.0, value=5.0),
              TimelineEvent("b", "B", (), "rating", day, value=1.0, negative=True),
              TimelineEvent("c", "C", (), "rating", 2 * day, value=4.0),
              TimelineEvent("d", "D", (), "rating", 3 * day, value=2.0, negative=True)]
    assert events[1].action == "rating 1 (dislike)" and events[0].action == "rating 5"
    assert interactions(events) == ["a", "c"]  # what a what-if is scored from
    assert held_out_rows(events, "c", 1) == [2]  # the model saw one step (a), the dislike b is none
    assert held_out_rows(events, "c", None) == [2]  # the trailing interaction, past the trailing dislike
