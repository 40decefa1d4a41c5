"""The Explore/Train/Evaluate widgets on their own: generated config form, palette, charts, helpers."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pandas as pd
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPen

from core.progress import Progress
from core.serving import Interest
from core.settings import settings_of
from core.training import TrainConfig
from studio.pages.evaluate import significance_verdict
from studio.pages.train_monitor import progress_line, worth_logging
from studio.widgets import palette
from studio.widgets.config_form import ConfigForm
from studio.widgets.interest_bars import InterestBars
from studio.widgets.charts import Axis, ChartWidget, DateAxis, opaque_over_white
from studio.widgets.sequence_timeline import SequenceTimeline
from studio.widgets.timeline_events import TimelineEvent, after_held_out, events_from_frame, held_out_rows
from studio.widgets.training_charts import REDRAW_MS, TrainingCharts
from studio.widgets.run_table import format_duration, metric_title


def test_config_form_round_trips_a_config_and_shows_help_as_tooltips(qtbot):
    config = dataclasses.replace(TrainConfig(), hidden=48, dropout=0.25, loss="sampled", bf16=True)
    form = ConfigForm(config, skip=("model", "device"))
    qtbot.addWidget(form)
    assert "model" not in form.editors and "device" not in form.editors
    info = {info.name: info for info in settings_of(TrainConfig)}
    assert info["lr"].help[1:] in form.editors["lr"].toolTip() and "learning rate" in info["lr"].help
    assert form.labels["lr"].text() == "Learning rate" and form.labels["hidden"].text() == "Model width"
    assert all(editor.toolTip() for editor in form.editors.values())
    form.editors["layers"].setValue(3)
    edited = form.config(model="gru", device="cpu")
    assert edited == dataclasses.replace(config, layers=3, model="gru", device="cpu")


def test_config_form_takes_choices_and_help_from_typed_metadata_without_sources(qtbot, monkeypatch):
    def no_sources(*args, **kwargs):
        raise OSError("could not get source code")  # as in a wheel installed without .py files

    monkeypatch.setattr(inspect, "getsource", no_sources)
    form = ConfigForm(TrainConfig(), skip=("model",))
    qtbot.addWidget(form)
    loss, device = form.editors["loss"], form.editors["device"]
    assert [loss.itemText(i) for i in range(loss.count())] == list(typing.get_args(
        typing.get_type_hints(TrainConfig)["loss"]))
    assert [device.itemText(i) for i in range(device.count())] == ["auto", "cpu", "cuda"]
    budget = form.editors["time_budget"]
    assert budget.text() == "automatic" and "Minutes the whole run may take" in budget.toolTip()
    assert form.config(model="sasrec").time_budget is None
    budget.setValue(2.5)
    assert form.config(model="sasrec").time_budget == 2.5
    budget.setValue(0)
    assert form.config(model="sasrec").time_budget == 0
    assert form.editors["batch_size"].minimum() == 1 and form.editors["dropout"].maximum() == 0.95  # typed ranges


def test_config_form_greys_out_settings_that_do_not_apply_and_reports_edits(qtbot):
    form = ConfigForm(TrainConfig(), skip=("model", "device"))
    qtbot.addWidget(form)
    form.show_applicable({"model": "gru", "trains_on": "cpu", "has_categories": True})
    negatives = form.editors["n_negatives"]
    assert not negatives.isEnabled() and "Only with the sampled objective" in negatives.toolTip()
    assert not form.editors["bf16"].isEnabled() and not form.editors["heads"].isEnabled()
    assert not form.editors["interest_clusters"].isEnabled() and form.editors["dropout"].isEnabled()
    with qtbot.waitSignal(form.changed, timeout=1000):
        form.editors["loss"].setCurrentText("sampled")
    form.show_applicable({"model": "sasrec", "trains_on": "cuda", "has_categories": True})
    assert negatives.isEnabled() and form.editors["bf16"].isEnabled() and form.editors["heads"].isEnabled()
    only = ConfigForm(TrainConfig(), only=("time_budget",))
    qtbot.addWidget(only)
    assert list(only.editors) == ["time_budget"] and only.values() == {"time_budget": None}


def test_palette_gives_each_category_one_colour_everywhere():
    palette.assign(["Puzzles", "Dolls", "(none)"])
    assert palette.category_colour("Dolls") != palette.category_colour("Puzzles")
    assert palette.category_colour("Dolls") == palette.category_colour("Dolls")
    assert palette.category_colour("") == palette.category_colour("(none)")
    assert palette.primary_category(("Puzzles", "Books")) == "Puzzles" and palette.primary_category(()) == ""
    assert palette.category_text(("Puzzles", "Books")) == "Puzzles, Books"


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


def test_chart_grid_lines_are_opaque_and_drawn_behind_the_data(qtbot):
    chart = ChartWidget("Events", "day", "events")
    qtbot.addWidget(chart)
    chart.show_line([0, 1, 2], [1, 3, 2])
    plot = chart.getPlotItem()
    assert all(isinstance(plot.getAxis(name), Axis) for name in ("left", "bottom"))
    assert plot.getViewBox().zValue() > plot.getAxis("left").zValue()
    chart.use_date_axis(True)
    assert isinstance(plot.getAxis("bottom"), DateAxis)
    epochs = Axis("bottom", whole_numbers=True)
    assert [spacing for spacing, _ in epochs.tickSpacing(1.0, 3.0, 800)] == [1.0]  # not 1, 1.5, 2, ...
    assert Axis("bottom").tickSpacing(1.0, 3.0, 800)[0][0] < 1.0
    mixed = opaque_over_white(QPen(QColor(15, 23, 42, 51))).color()  # 20% slate over white
    assert mixed.alpha() == 255
    assert all(abs(got - want) <= 1 for got, want in zip(mixed.getRgb()[:3], (207, 209, 212)))


def test_every_bar_name_above_its_bar_is_inside_the_chart(qtbot):
    chart = ChartWidget("NDCG@10 by run")
    qtbot.addWidget(chart)
    chart.resize(190, 280)  # the Evaluate page's chart at 1024x700
    chart.show()
    chart.show_labelled_bars(["#1 Popularity", "#2 Transformer (SASRec)"], [0.1174, 0.1364], horizontal=True,
                             value_format="{:.4f}", names_on_bars=True)
    view = chart.getPlotItem().getViewBox()
    names = [item for item in view.addedItems if getattr(item, "toPlainText", lambda: "")().startswith("#")]
    assert len(names) == 2

    def inside() -> bool:  # once the layout has settled (later on a busy machine)
        return all(view.sceneBoundingRect().contains(name.sceneBoundingRect()) for name in names)

    qtbot.waitUntil(inside, timeout=5000)


@pytest.mark.parametrize("values, intervals", [
    ([0.0102], [[0.0022, 0.0183]]),  # one small log's run: its interval starts near zero
    ([0.0102, 0.0150], [[0.0022, 0.0183], [0.0140, 0.0160]]),
    ([0.1174, 0.1364], [[0.1100, 0.1250], [0.1290, 0.1440]]),  # narrow intervals: values inside the bars
])
def test_every_bar_value_is_inside_the_chart_and_off_its_whisker(qtbot, values, intervals):
    chart = ChartWidget("NDCG@10 by run")
    qtbot.addWidget(chart)
    chart.resize(270, 280)  # the Evaluate page's chart at 1280x800
    chart.show()
    chart.show_labelled_bars([f"#{n}" for n in range(len(values))], values, horizontal=True, value_format="{:.4f}",
                             intervals=intervals, names_on_bars=True)
    view = chart.getPlotItem().getViewBox()
    labels = [item for item in view.addedItems if getattr(item, "toPlainText", lambda: "")().startswith("0.")]
    assert len(labels) == len(values)

    def placed() -> bool:  # once the layout has settled
        if not all(view.sceneBoundingRect().contains(label.sceneBoundingRect()) for label in labels):
            return False
        for label, (low, high) in zip(labels, intervals):
            left, right = (view.mapSceneToView(label.sceneBoundingRect().topLeft()).x(),
                           view.mapSceneToView(label.sceneBoundingRect().topRight()).x())
            if not (right <= low or left >= high):
                return False
        return True

    qtbot.waitUntil(placed, timeout=5000)


def test_training_charts_plot_steps_and_validated_epochs(qtbot):
    charts = TrainingCharts()
    qtbot.addWidget(charts)
    charts.add_report({"epoch": 1, "step": 5, "loss": 7.0})
    charts.add_report({"epoch": 1, "step": 10, "loss": 6.5, "valid_ndcg10": 0.05, "valid_hr10": 0.1})
    charts.add_report({"rows": 3})  # not a training report: ignored
    qtbot.waitUntil(lambda: charts.step_curve.getData()[1] is not None, timeout=2000)  # drawn together
    assert charts.step_curve.getData()[1].tolist() == [7.0]
    assert charts.ndcg_curve.getData()[1].tolist() == [0.05]
    assert charts.hr_curve.getData()[0].tolist() == [1]
    assert not charts.baseline_line.isVisible()
    charts.add_report({"popularity_valid_ndcg10": 0.04})  # the run's own popularity, before its epochs
    assert charts.baseline_line.isVisible() and charts.baseline_line.value() == 0.04
    for plot in (charts.loss_plot, charts.valid_plot):  # readable over noisy curves that leave no corner free
        assert plot.getPlotItem().legend.brush().color().alpha() >= 200


def test_training_reports_arriving_together_are_drawn_once(qtbot, monkeypatch):
    charts = TrainingCharts()
    qtbot.addWidget(charts)
    drawn = []
    monkeypatch.setattr(charts.step_curve, "setData", lambda x, y: drawn.append(list(y)))
    for step in range(1, 41):
        charts.add_report({"epoch": 1, "step": step, "loss": 10.0 / step})
    qtbot.waitUntil(lambda: bool(drawn), timeout=2000)
    qtbot.wait(REDRAW_MS)
    assert len(drawn) == 1 and len(drawn[0]) == 40


def test_progress_line_and_durations_read_like_sentences():
    report = Progress("train", 10, 100, 5.0, 18.0, "", {"epoch": 2, "seqs_per_s": 1234.4})
    assert progress_line(report, 75) == "epoch 2 · 1,234 sequences/s · at most 18.0 s left · 1 min 15 s so far"
    assert format_duration(7300) == "2 h 01 min"
    assert metric_title("ndcg@10") == "NDCG@10" and metric_title("coverage@10") == "Coverage@10"


def test_significance_verdict_says_whether_the_difference_is_real():
    result = {"metric": "ndcg@10", "n_users": 500, "mean_a": 0.21, "mean_b": 0.12, "p_value": 0.001}
    assert significance_verdict(result, "#1 GRU", "#2 Popularity").startswith("#1 GRU is better than #2 Popularity")
    result.update(p_value=0.4, mean_a=0.11)
    assert significance_verdict(result, "#1 GRU", "#2 Popularity").startswith("No significant difference: #2 Popularity")


def test_log_keeps_epochs_and_stage_boundaries_only():
    epoch = Progress("train", 5, 50, metrics={"epoch": 1, "loss": 6.0, "valid_ndcg10": 0.1, "valid_hr10": 0.2})
    step = Progress("train", 6, 50, metrics={"epoch": 2, "loss": 5.9})
    assert worth_logging(epoch, "train") and not worth_logging(step, "train")
    assert worth_logging(Progress("evaluate", 256, 1000), "train")
    assert not worth_logging(Progress("evaluate", 512, 1000), "evaluate")
    assert worth_logging(Progress("evaluate", 1000, 1000), "evaluate")


def test_interest_bars_label_each_interest_with_its_probability(qtbot):
    bars = InterestBars()
    qtbot.addWidget(bars)
    bars.set_interests([Interest("Puzzles", 0.62), Interest("Dolls", 0.3), Interest("Kites", 0.004)])
    ticks = bars.plot.getPlotItem().getAxis("left")._tickLevels[0]
    assert [label for _, label in ticks] == ["Kites  <1%", "Dolls  30%", "Puzzles  62%"]  # most probable on top


def test_run_table_flags_a_run_worse_than_popularity(qtbot):
    from core.runs import RunSummary
    from studio.widgets.run_table import RunTable

    def run(run_id, beats):
        gate = {} if beats is None else {"gate": {"beats_popularity": beats}}
        return RunSummary(run_id, "gru", "done", 0.0, {"epochs": 1}, {"metrics": {"ndcg@10": 0.1}, **gate})

    table = RunTable()  # the Train page's run history and the Evaluate page's comparison both use it
    qtbot.addWidget(table)
    table.set_runs([run(1, True), run(2, False), run(3, None)])
    assert [table.item(row, 2).text() for row in range(3)] == ["done", "done · worse than popularity", "done"]
    assert "popularity" in table.item(1, 2).toolTip()
    # The Evaluate page's table leaves the Status column out to fit a laptop: the flag went with it.
    compared = RunTable(hidden=("Status", "Device"))
    qtbot.addWidget(compared)
    compared.set_runs([run(1, True), run(2, False)])
    assert [compared.item(row, 0).text() for row in range(2)] == ["#1", "#2  ⚠"]
    assert "popularity" in compared.item(1, 0).toolTip() and "popularity" in compared.item(1, 1).toolTip()
    compared.selectRow(1)
    assert "worse than popularity" in compared.details.text()


def test_a_run_table_off_screen_measures_its_columns_when_it_shows(qtbot, monkeypatch):
    from core.runs import RunSummary
    from studio.widgets.run_table import RunTable

    table = RunTable()
    qtbot.addWidget(table)
    measured = []
    natural = RunTable._natural_width
    monkeypatch.setattr(RunTable, "_natural_width", lambda self, column: measured.append(column) or natural(self, column))
    table.set_runs([RunSummary(1, "gru", "done", 0.0, {"epochs": 1}, {"metrics": {"ndcg@10": 0.1}})])
    assert measured == [] and table.rowCount() == 1  # filled, not measured, while nobody sees it
    table.show()
    qtbot.waitUntil(lambda: bool(measured))
    assert table.columnWidth(0) >= table.sizeHintForColumn(0)


def test_a_page_off_screen_paints_once_it_shows(qtbot, context):
    from studio.pages import StudioPage

    page = StudioPage(context)
    qtbot.addWidget(page)
    painted = []

    def paint():
        painted.append(len(painted))

    page.paint_when_seen(paint)
    page.paint_when_seen(paint)  # asked twice while hidden: painted once, when seen
    assert painted == []
    page.show()
    qtbot.waitUntil(lambda: painted == [0])
    page.paint_when_seen(paint)  # on screen: at once
    assert painted == [0, 1]


def test_a_finished_run_says_when_the_time_budget_cut_it_short():
    from core.runs import RunSummary
    from studio.pages.train_monitor import finish_note

    def run(training):
        return RunSummary(1, "gru", "done", 0.0, {}, {"training": training})

    assert finish_note(run({"budget_cut": True, "estimate": {"budget_s": 600.0}})) == \
        ", cut short by the 10 min 00 s time budget"
    assert finish_note(run({"budget_cut": False, "estimate": {"budget_s": 600.0}})) == ""
    assert finish_note(run({})) == ""


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


def test_a_long_workspace_path_is_shortened_in_the_middle_keeping_the_file_name(qtbot):
    from studio.widgets.status_bar import PathLabel

    label = PathLabel("/home/analyst/projects/2026/shops/a-very-long-folder-name/spring-campaign/shop.sqlite")
    qtbot.addWidget(label)
    assert label.minimumSizeHint().width() <= PathLabel.SHORTEST  # it never widens the window much
    label.resize(200, 20)
    label.show()
    shown = label.shown_text()
    assert shown.endswith("/shop.sqlite") and "…" in shown
    assert label.fontMetrics().horizontalAdvance(shown) <= label.contentsRect().width()
