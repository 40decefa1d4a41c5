"""The Evaluate page lists every run's metrics, charts them, tests significance and exports CSV."""

from __future__ import annotations

import csv

import pytest

from studio.pages.evaluate import EvaluatePage
from tests.studio.trained_workspace import open_trained_copy


@pytest.fixture
def page(qtbot, context, tmp_path):
    context.set_engine(open_trained_copy(tmp_path))
    page = EvaluatePage(context)
    qtbot.addWidget(page)
    page.show()
    page.page_shown()
    return page


def test_table_lists_every_run_with_metrics(qtbot, page):
    runs = [run for run in page.context.engine.runs() if run.status == "done"]
    qtbot.waitUntil(lambda: page.table.rowCount() == len(runs) and "—" not in page.table.item(0, 6).text(),
                    timeout=30_000)
    headers = page.table.headers()
    assert headers[6:] == ["HR@10", "NDCG@10", "MRR@10", "Coverage@10", "Diversity@10", "Novelty@10 (bits)"]
    assert page.segments.rowCount() == len(runs) and page.segments.columnCount() >= 2
    low, high = page.table.runs[0].metrics["intervals"]["hr@10"]  # accuracy with its 95% interval
    assert page.table.item(0, 6).text().endswith(f" ± {(high - low) / 2:.4f}")
    assert "±" not in page.table.item(0, 9).text()  # coverage: one number over all lists
    assert page.table.item(0, 6).toolTip().startswith(f"{page.table.runs[0].metrics['n_users']:,} test users")
    page.k_box.setCurrentIndex(page.k_box.findData(20))
    assert page.table.headers()[6] == "HR@20"


def test_significance_check_runs_by_itself_once_two_runs_are_chosen(qtbot, page):
    qtbot.waitUntil(lambda: page.run_a.count() >= 2, timeout=10_000)
    page.run_b.setCurrentIndex(0)
    page.run_a.setCurrentIndex(1)  # no button pressed
    qtbot.waitUntil(lambda: "p =" in page.verdict.text(), timeout=10_000)
    assert "significant" in page.verdict.text()


def test_best_values_are_highlighted_bars_carry_values_and_empty_segments_show_a_dash(qtbot, page):
    import pyqtgraph as pg

    from core import runs as core_runs

    qtbot.waitUntil(lambda: page.table.rowCount() >= 2 and "—" not in page.table.item(0, 7).text(), timeout=30_000)
    column = 6 + page.table.metric_columns.index("ndcg@10")
    best = page.table.best_rows("ndcg@10")
    values = [float(page.table.item(row, column).text().split(" ± ")[0]) for row in range(page.table.rowCount())]
    assert best and all(values[row] == max(values) for row in best)
    assert page.table.item(best[0], column).font().bold()
    assert not any(page.table.item(row, column).font().bold() for row in range(len(values)) if row not in best)
    page.metric_box.setCurrentIndex(page.metric_box.findData("ndcg@10"))
    texts = [item.toPlainText() for item in page.chart.getPlotItem().items if isinstance(item, pg.TextItem)]
    figures = [text for text in texts if text[:1].isdigit()]
    assert sorted(figures) == sorted(f"{value:.4f}" for value in values)
    names = [text for text in texts if text.startswith("#")]  # run names above the bars, not on the axis
    assert len(names) == len(values)
    qtbot.wait(50)
    assert page.chart.getPlotItem().getAxis("left").width() < page.fontMetrics().horizontalAdvance("#1 Popularity")
    run = page.table.runs[0]
    name = next(iter(run.metrics["segments"]))
    segments = {**run.metrics["segments"], name: {**run.metrics["segments"][name], "users": 0}}
    core_runs.update_run(page.context.engine.workspace, run.id, metrics={**run.metrics, "segments": segments})
    page.refresh()
    qtbot.waitUntil(lambda: page.segments.item(0, 0).text() == "—", timeout=5000)
    # the first run's count was every run's header: it now says so only where the runs agree
    assert page.segments.horizontalHeaderItem(0).text().endswith("users vary")
    others = page.segments.horizontalHeaderItem(1).text().splitlines()[-1]
    assert others == f"{run.metrics['segments'][list(run.metrics['segments'])[1]]['users']:,} users"
    tip = page.segments.item(1, 0).toolTip()
    assert tip.startswith("Over the ") and "test users of #" in tip


def test_the_chart_highlights_the_best_of_the_runs_that_have_the_metric(qtbot, page):
    """A run without the chosen figure (diversity of a catalogue without categories, an older report) has
    no bar: the best run's colour goes to the bar of the best run, not to the bar in its table row."""
    import pyqtgraph as pg

    from core import runs as core_runs
    from studio.widgets.charts import BEST

    from tests.studio.trained_workspace import tiny_config

    page.context.engine.train(tiny_config("markov"))  # three runs: two bars left to compare
    page.refresh()
    qtbot.waitUntil(lambda: page.table.rowCount() >= 3 and "—" not in page.table.item(0, 7).text(), timeout=30_000)
    first = page.table.runs[0]
    beyond = {name: value for name, value in first.metrics["beyond"].items() if name != "diversity@10"}
    core_runs.update_run(page.context.engine.workspace, first.id, metrics={**first.metrics, "beyond": beyond})
    page.refresh()
    qtbot.waitUntil(lambda: page.table.item(0, 6 + page.table.metric_columns.index("diversity@10")).text() == "—",
                    timeout=5000)
    page.metric_box.setCurrentIndex(page.metric_box.findData("diversity@10"))
    bars = next(item for item in page.chart.getPlotItem().items if isinstance(item, pg.BarGraphItem))
    values = [run.metrics["beyond"]["diversity@10"] for run in page.table.runs[1:]]
    colours = [pg.mkBrush(brush).color().name() for brush in bars.opts["brushes"]]
    assert len(colours) == len(values) >= 2
    assert [colour == pg.mkColor(BEST).name() for colour in colours] == [v == max(values) for v in values]


def test_export_writes_the_table_as_csv(qtbot, page, tmp_path):
    qtbot.waitUntil(lambda: page.table.rowCount() >= 2, timeout=10_000)
    path = tmp_path / "evaluation.csv"
    page.export_csv(path)
    rows = list(csv.reader(open(path, encoding="utf-8")))
    assert rows[0] == page.table.headers()
    assert len(rows) == page.table.rowCount() + 1
    assert rows[1][1] == page.table.item(0, 1).text()


def test_runs_without_a_report_are_evaluated_when_the_page_shows(qtbot, context, tmp_path):
    from core import runs

    engine = open_trained_copy(tmp_path)
    pop = next(run.id for run in engine.runs() if run.model == "pop")
    runs.update_run(engine.workspace, pop, metrics={})  # e.g. a run recorded by an older release
    context.set_engine(engine)
    page = EvaluatePage(context)
    qtbot.addWidget(page)
    page.show()
    page.page_shown()
    qtbot.waitUntil(lambda: engine.run(pop).metric("ndcg@10") is not None, timeout=30_000)
    qtbot.waitUntil(lambda: "—" not in [page.table.item(row, 7).text() for row in range(page.table.rowCount())],
                    timeout=5000)


def test_the_chosen_evaluation_mode_measures_every_run_and_the_significance_check(qtbot, page):
    from core.data import EvalMode

    engine = page.context.engine
    qtbot.waitUntil(lambda: page.table.rowCount() >= 2 and "—" not in page.table.item(0, 7).text(), timeout=30_000)
    assert page.eval_mode is EvalMode.NEW and page.eval_box.currentText() == "New items"
    assert page.protocol.text() == engine.run(page.table.runs[0].id).metrics["protocol"]  # one split, one line
    assert "new items" in page.protocol.text()
    page.eval_box.setCurrentIndex(page.eval_box.findData("repeat"))
    ids = [run.id for run in engine.runs() if run.status == "done"]
    qtbot.waitUntil(lambda: all(engine.run(i).report(EvalMode.REPEAT) for i in ids), timeout=30_000)
    expected = {i: engine.run(i).report(EvalMode.REPEAT)["metrics"]["ndcg@10"] for i in ids}
    # the table refreshes from the job's signal, a turn of the event loop after the job ends
    qtbot.waitUntil(lambda: {run.id: run.metric("ndcg@10") for run in page.table.runs} == expected, timeout=5000)
    assert all(engine.run(i).metrics["eval"] == "new" for i in ids)  # each run's own report is kept
    assert "repeats allowed" in page.protocol.text() and "new items" not in page.protocol.text()
    page.run_a.setCurrentIndex(0)
    page.run_b.setCurrentIndex(1)
    with qtbot.waitSignal(page.run_significance().returned, timeout=60_000):  # the latest test speaks
        pass
    qtbot.waitUntil(lambda: "p =" in page.verdict.text(), timeout=5000)
    a, b = page.run_a.currentData(), page.run_b.currentData()
    expected = engine.compare(a, b, metric=page.metric_box.currentData(), eval_mode=EvalMode.REPEAT)
    assert f"{expected['mean_a']:.4f}" in page.verdict.text() and f"{expected['mean_b']:.4f}" in page.verdict.text()


def test_the_significance_test_under_another_mode_runs_in_the_job_process_and_can_be_stopped(qtbot, page,
                                                                                          monkeypatch):
    engine = page.context.engine
    qtbot.waitUntil(lambda: page.run_a.count() >= 2 and not (page.job and page.job.running), timeout=30_000)
    here = []  # engine calls made in the window's process
    for name in ("compare", "evaluate"):
        monkeypatch.setattr(engine, name, lambda *args, _name=name, **kwargs: here.append(_name))
    page.eval_box.setCurrentIndex(page.eval_box.findData("repeat"))  # both runs are evaluated again for it
    qtbot.waitUntil(lambda: "p =" in page.verdict.text(), timeout=60_000)
    assert here == [] and page.compare_button.text() == "Test again"
    job = page.run_significance()
    assert page.compare_button.text() == "Stop test"
    with qtbot.waitSignals([job.aborted, job.finished], timeout=10_000, order="strict"):
        page.compare_button.click()  # stops it
    assert page.verdict.text().startswith("Test stopped") and page.compare_button.text() == "Test again"
    assert here == []


def test_a_test_answering_after_its_page_is_gone_is_ignored(qtbot, context, tmp_path):
    import shiboken6

    context.set_engine(open_trained_copy(tmp_path))
    page = EvaluatePage(context)  # not handed to qtbot, which would close it after the test
    page.show()
    page.page_shown()
    qtbot.waitUntil(lambda: page.run_a.count() >= 2, timeout=10_000)
    page.run_a.setCurrentIndex(0)
    page.run_b.setCurrentIndex(1)
    job = page.run_significance()
    shiboken6.delete(page)  # the window closed while the job process was still testing
    with qtbot.waitSignal(job.finished, timeout=60_000):
        pass  # an exception in a slot would fail the test (pytest-qt)


def test_a_read_only_workspace_shows_the_reports_it_could_not_store(qtbot, context, tmp_path):
    from core.data import EvalMode
    from core.engine import Engine
    from core.store import Workspace

    trained = open_trained_copy(tmp_path)
    path = trained.workspace.path
    trained.workspace.close()
    engine = Engine(Workspace.open(path, read_only=True))
    context.set_engine(engine)
    page = EvaluatePage(context)
    qtbot.addWidget(page)
    page.show()
    page.page_shown()
    page.eval_box.setCurrentIndex(page.eval_box.findData("repeat"))
    qtbot.waitUntil(lambda: page.table.rowCount() >= 2 and all(run.metric("ndcg@10") is not None
                                                               for run in page.table.runs), timeout=30_000)
    qtbot.waitUntil(lambda: not (page.job and page.job.running), timeout=5000)
    qtbot.wait(300)  # no second round of evaluations starts: the reports are kept on the page
    assert not (page.job and page.job.running)
    assert all(run.report(EvalMode.REPEAT) == {} for run in engine.runs())  # nothing was written
    assert "repeats allowed" in page.protocol.text()


def test_bars_carry_their_95_percent_intervals_as_error_bars(qtbot, page):
    import pyqtgraph as pg

    qtbot.waitUntil(lambda: page.table.rowCount() >= 2 and "—" not in page.table.item(0, 7).text(), timeout=30_000)
    page.metric_box.setCurrentIndex(page.metric_box.findData("ndcg@10"))
    items = page.chart.getPlotItem().items
    (bars,) = [item for item in items if isinstance(item, pg.ErrorBarItem)]
    runs = [run for run in page.table.runs if "ndcg@10" in run.metrics.get("metrics", {})]
    values = bars.opts["x"]
    lows = values - bars.opts["left"]
    highs = values + bars.opts["right"]
    for run, low, high in zip(runs, lows, highs):
        expected = run.metrics["intervals"]["ndcg@10"]
        assert (low, high) == pytest.approx(tuple(expected))
    page.metric_box.setCurrentIndex(page.metric_box.findData("coverage@10"))  # no interval: no whiskers
    (bars,) = [item for item in page.chart.getPlotItem().items if isinstance(item, pg.ErrorBarItem)]
    assert not bars.opts["left"].any() and not bars.opts["right"].any()


WINDOW_SIZES = ((1024, 700), (1280, 800), (1920, 1080))


def assert_fits(table, cut=()):
    """No column of ``table`` needs sideways scrolling, and only those named in ``cut`` are cut short
    (header and every cell whole: the visible width of each column, not pixels of a screenshot)."""
    shown = [column for column in range(table.columnCount()) if not table.isColumnHidden(column)]
    right = max(table.columnViewportPosition(column) + table.columnWidth(column) for column in shown)
    assert right <= table.viewport().width() and table.horizontalScrollBar().maximum() == 0
    for column in shown:
        if table.horizontalHeaderItem(column).text() not in cut:
            assert table.columnWidth(column) >= table.sizeHintForColumn(column)
            assert table.columnWidth(column) >= table.horizontalHeader().sectionSizeHint(column)


def test_run_tables_and_segments_fit_every_window_size_without_scrolling_sideways(qtbot, window, tmp_path):
    window.context.set_engine(open_trained_copy(tmp_path))
    window.show_page("Evaluate")
    page = window.page("Evaluate")
    qtbot.waitUntil(lambda: page.table.rowCount() >= 2 and "—" not in page.table.item(0, 7).text(), timeout=30_000)
    train = window.page("Train")
    for width, height in WINDOW_SIZES:
        window.resize(width, height)
        window.show_page("Evaluate")
        qtbot.wait(50)
        assert_fits(page.table, cut=["Settings"])  # every run's name and figures whole; settings elided
        assert_fits(page.segments)
        window.show_page("Train")
        qtbot.waitUntil(lambda: train.run_table.rowCount() >= 2, timeout=10_000)
        qtbot.wait(50)
        assert_fits(train.run_table, cut=["Settings", "Status"])  # a long status is elided, whole in the details
        if width >= 1920:  # a desktop has room for every column
            assert train.run_table.hidden_columns() == [] and page.table.hidden_columns() == ["Status", "Device"]
    train.run_table.select_run(page.table.runs[1].id)  # what a narrow table leaves out is in its details line
    run = train.run_table.selected_run()
    assert train.run_table.details.text().startswith(f"#{run.id} ") and run.device in train.run_table.details.text()


def test_the_runs_are_read_off_the_window_thread_and_shown_when_they_arrive(qtbot, page, monkeypatch):
    import threading

    engine = page.context.engine
    qtbot.waitUntil(lambda: page.table.rowCount() >= 2, timeout=10_000)
    threads, read = [], engine.runs

    def recorded_runs():
        threads.append(threading.current_thread())
        return [run for run in read() if run.model != "pop"]

    monkeypatch.setattr(engine, "runs", recorded_runs)
    page.context.announce_runs_changed()
    qtbot.waitUntil(lambda: all(run.model != "pop" for run in page.table.runs), timeout=5000)
    assert threads and threading.main_thread() not in threads


def test_a_run_that_tested_nobody_shows_dashes_once_and_is_not_evaluated_again(qtbot, context, tmp_path):
    """Three shoppers with one or two orders each: no user can be held out. The table showed 0.0000 (a
    model that failed every test); hiding those made the page take the run for unevaluated and
    evaluate it again, without end."""
    from core.engine import Engine
    from core.training import TrainConfig

    log = tmp_path / "orders.csv"
    log.write_text("user,item,date\nu1,a,2024-03-01\nu1,b,2024-03-02\nu2,a,2024-03-01\nu3,b,2024-03-03\n")
    engine = Engine.open(tmp_path / "shop.sqlite")
    engine.import_files(events=log)
    run = engine.train(TrainConfig.for_data(engine.sequence_data(), model="pop"))
    assert engine.run(run.id).metrics["n_users"] == 0
    context.set_engine(engine)
    page = EvaluatePage(context)
    qtbot.addWidget(page)
    page.show()
    page.page_shown()
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=10_000)
    cells = [page.table.item(0, column) for column in range(6, page.table.columnCount())]
    assert {cell.text() for cell in cells} == {"—"}
    assert cells[0].toolTip().startswith("no test user: no user has an event to hold out")
    assert page.job is None and "Evaluating" not in page.status.text()
    page._redraw()
    assert page.chart.shown_note().startswith("No test user")
