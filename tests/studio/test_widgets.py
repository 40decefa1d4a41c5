"""The Explore/Train/Evaluate widgets on their own: generated config form, palette, charts, helpers (the
sequence timeline's tests are in test_sequence_timeline.py)."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest
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
    # a p-value that underflowed read "p = 0." (item-kNN against popularity over 20,000 sessions)
    result.update(p_value=0.0, mean_a=0.48)
    assert significance_verdict(result, "#1 GRU", "#2 Popularity").endswith("over 500 users, p < 1e-300.")
    # two runs that tested nobody (every shopper too short to hold out) read "#1 GRU scores higher here ... 0.0000
    # vs 0.0000 over 0 users"; a tie read as one run scoring higher
    result.update(mean_b=0.48, p_value=1.0)
    assert significance_verdict(result, "#1 GRU", "#2 Popularity").startswith("No difference: the two score the same.")
    result.update(n_users=0, mean_a=0.0, mean_b=0.0)
    assert significance_verdict(result, "#1 GRU", "#2 Popularity").startswith("Nothing to compare: no user has an event to hold out")


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
    # Above popularity but not significantly (an update's 200 held-out users: 0.116 against 0.086, p 0.16)
    # is not "worse": it is flagged as not clearly better.
    tie = run(4, False)
    tie.metrics["gate"].update(mean_a=0.116, mean_b=0.086, p_value=0.16, alpha=0.05)
    table.set_runs([tie])
    assert table.item(0, 2).text() == "done · not clearly better than popularity"
    assert "no significant difference" in table.item(0, 2).toolTip()


def test_a_run_is_told_beats_tie_or_worse_against_popularity_by_its_check():
    from core.report_text import popularity_standing

    def gate(beats, a, b, p):
        return {"beats_popularity": beats, "mean_a": a, "mean_b": b, "p_value": p, "alpha": 0.05}

    assert popularity_standing(gate(True, 0.2, 0.1, 0.001)) == "beats"
    assert popularity_standing(gate(False, 0.116, 0.086, 0.16)) == "tie"
    assert popularity_standing(gate(False, 0.08, 0.09, 0.4)) == "tie"
    assert popularity_standing(gate(False, 0.05, 0.09, 0.01)) == "worse"
    assert popularity_standing({"beats_popularity": False}) == "worse"  # a check that recorded no figures
    assert popularity_standing(None) is None and popularity_standing({}) is None


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


def test_settings_read_as_a_person_writes_them():
    """An update's learning rate, a tenth of its parent's, read "lr 0.00030000000000000003" in the run table."""
    from core.runs import RunSummary
    from studio.widgets.run_table import settings_summary, settings_tooltip

    run = RunSummary(2, "gru", "done", 0.0, {"lr": 0.003 * 0.1, "dropout": 0.3, "hidden": 64, "epochs": 30}, {})
    assert "lr 0.0003 · dropout 0.3" in settings_summary(run) and "hidden 64" in settings_summary(run)
    assert "lr = 0.0003" in settings_tooltip(run).splitlines()


def test_a_stored_run_s_epochs_read_in_one_line():
    """An update that kept its starting weights read "#4 LSTM: 1 epochs, best validation NDCG@10 at epoch 0"."""
    from core.runs import RunSummary
    from studio.pages.train_monitor import epochs_text

    def run(best):
        return RunSummary(4, "lstm", "done", 0.0, {}, {"training": {"best_epoch": best}})

    assert epochs_text(run(0), 1) == ("#4 LSTM: no epoch beat the weights it started from on validation (1 epoch run): "
                                      "it kept them.")
    assert epochs_text(run(7), 12) == "#4 LSTM: 12 epochs, best validation NDCG@10 at epoch 7."
