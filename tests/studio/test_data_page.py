"""The Data page: overview numbers and charts from the engine, import history and rejected rows."""

from __future__ import annotations

import csv

import pyqtgraph as pg
import pytest
from PySide6.QtWidgets import QFileDialog, QMessageBox

from studio.dialogs.rejected_dialog import RejectedRowsDialog
from studio.pages.data import DataPage


@pytest.fixture
def page(qtbot, context):
    page = DataPage(context)
    qtbot.addWidget(page)
    page.resize(1200, 800)
    page.show()
    return page


def show_engine(qtbot, wait_idle, page, engine) -> None:
    page.context.set_engine(engine)
    wait_idle(page.context)
    qtbot.waitUntil(lambda: not page._chart_steps)  # charts are drawn one per timer turn after the job


def test_an_empty_state_without_a_workspace(page):
    assert page.users_card.value.text() == "–" and page.hint.text() == "No workspace open"
    assert page.history_model.rowCount() == 0
    assert not page.view_rejected_button.isEnabled()


def test_overview_numbers_and_charts_follow_the_workspace(qtbot, wait_idle, page, imported_engine, demo_csv):
    show_engine(qtbot, wait_idle, page, imported_engine)
    stats = imported_engine.overview()
    assert page.users_card.value.text() == "200" and page.items_card.value.text() == "96"
    assert page.events_card.value.text() == f"{demo_csv.n_events:,}"
    assert page.span_card.value.text() == "2026-01-01 – 2026-06-30"
    assert page.types_card.value.text().startswith("view ")
    bars = [i for i in page.events_chart.getPlotItem().items if isinstance(i, pg.BarGraphItem)]
    assert len(bars) == 1 and bars[0].opts["height"].sum() == stats.events
    length_bars = [i for i in page.lengths_chart.getPlotItem().items if isinstance(i, pg.BarGraphItem)]
    assert length_bars[0].opts["height"].sum() == stats.users_with_events
    curve = page.popularity_chart.getPlotItem().listDataItems()[0]
    assert curve.yData[0] == stats.item_popularity.max() and page.popularity_chart.getPlotItem().ctrl.logYCheck.isChecked()
    category_bars = [i for i in page.categories_chart.getPlotItem().items if isinstance(i, pg.BarGraphItem)]
    assert category_bars[0].opts["width"].sum() == sum(c.events for c in stats.categories)
    files = [page.history_model.item(row, 0).text() for row in range(page.history_model.rowCount())]
    assert files == ["events.csv", "users.csv", "items.csv"]  # newest first


def drawn_labels(chart, axis: str) -> list[str]:
    """The tick labels drawn on ``axis`` now (``labels_apart`` leaves out those that would touch)."""
    from PySide6.QtGui import QImage, QPainter

    from studio.widgets.charts import labels_apart

    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        _, _, texts = chart.getPlotItem().getAxis(axis).generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for *_, text in labels_apart(texts)]


def test_the_categories_chart_shows_as_many_categories_as_it_can_label(qtbot, wait_idle, page, imported_engine):
    """At 1024x700 seven categories and "others" lost every other label, "others" its own."""
    show_engine(qtbot, wait_idle, page, imported_engine)
    total = sum(c.events for c in imported_engine.overview().categories)
    for width, height in ((870, 560), (870, 620), (1200, 800)):  # a short chart, then roomier ones
        page.resize(width, height)
        qtbot.wait(100)
        (bars,) = [i for i in page.categories_chart.getPlotItem().items if isinstance(i, pg.BarGraphItem)]
        assert len(drawn_labels(page.categories_chart, "left")) == len(bars.opts["width"])  # each bar named
        assert bars.opts["width"].sum() == total  # "others" sums the categories left out
    assert len(bars.opts["width"]) == 6  # room for the demo's six categories, none folded


def test_a_log_without_categories_says_so_instead_of_one_none_bar(qtbot, wait_idle, page, engine, demo_csv):
    engine.import_files(demo_csv.events)  # events only: no items file, so no categories
    show_engine(qtbot, wait_idle, page, engine)
    plot = page.categories_chart.getPlotItem()
    assert not [item for item in plot.items if isinstance(item, pg.BarGraphItem)]
    notes = [item.toPlainText() for item in plot.items if isinstance(item, pg.TextItem)]
    assert notes == ["No categories: import an items file\nwith a categories column"]


def test_an_import_refreshes_the_page(qtbot, wait_idle, page, engine, demo_csv):
    show_engine(qtbot, wait_idle, page, engine)
    assert page.events_card.value.text() == "0"
    engine.import_files(demo_csv.events)
    page.context.announce_data_changed()
    wait_idle(page.context)
    assert page.events_card.value.text() == f"{demo_csv.n_events:,}"
    assert page.history_model.rowCount() == 1


def test_rejected_rows_can_be_viewed_and_exported(qtbot, wait_idle, page, engine, tmp_path, monkeypatch):
    log = tmp_path / "log.csv"
    log.write_text("user,item,time\nu1,i1,1700000000\nu1,,1700000100\nu2,i2,1700000200\nu2,i3,soon\n")
    engine.import_files(log)
    show_engine(qtbot, wait_idle, page, engine)
    assert page.history_model.item(0, 4).text() == "2"
    page.history_view.selectRow(0)
    assert page.view_rejected_button.isEnabled() and page.export_rejected_button.isEnabled()

    page.view_rejected_button.click()
    dialog = page.findChild(RejectedRowsDialog)
    qtbot.waitUntil(lambda: dialog.model.rowCount() == 2)
    assert [dialog.model.item(r, 0).text() for r in range(2)] == ["3", "5"]
    assert dialog.model.item(1, 1).text() == "time" and "soon" in dialog.model.item(1, 3).text()
    assert "2 rejected rows of log.csv" in dialog.caption.text()
    dialog.close()

    target = tmp_path / "rejected.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "CSV files (*.csv)"))
    told = []
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: told.append(a[2]))
    page.export_rejected_button.click()
    qtbot.waitUntil(lambda: bool(told))
    assert "Wrote 2 rejected rows" in told[0]
    with open(target, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["line"] for row in rows] == ["3", "5"] and rows[1]["raw"] == "u2,i3,soon"


def test_quality_notes_show_what_may_mislead_a_model(qtbot, wait_idle, page, imported_engine):
    with imported_engine.workspace.engine.begin() as conn:  # every event a rating of 1 to 5
        conn.exec_driver_sql("UPDATE events SET value = 1 + id % 5")
    show_engine(qtbot, wait_idle, page, imported_engine)
    assert page.notes.isVisible()
    assert "ratings of 2 or less count as interactions" in page.notes.text()
    page.context.set_engine(None)
    assert not page.notes.isVisible()


def test_bar_labels_never_overlap_on_a_narrow_chart(qtbot, page):
    from PySide6.QtGui import QPainter, QPixmap

    from studio.widgets.charts import labels_apart

    chart = page.lengths_chart
    labels = ["1", "2", "3-4", "5-9", "10-19", "20-49", "50-99", "100-199", "200-499", "500-999", "1000-1999"]
    chart.show_labelled_bars(labels, list(range(len(labels))))
    chart.resize(300, 200)
    qtbot.wait(20)
    axis = chart.getPlotItem().getAxis("bottom")
    canvas = QPixmap(400, 100)
    painter = QPainter(canvas)
    specs = axis.generateDrawSpecs(painter)[2]
    painter.end()
    kept = labels_apart(specs)
    assert 1 < len(kept) < len(specs)
    rects = [spec[0] for spec in kept]
    assert all(a.right() < b.left() for a, b in zip(rects, rects[1:]))
