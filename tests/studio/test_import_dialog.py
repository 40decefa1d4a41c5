"""The import dialog: sniffed preview and role guesses, reading options, background import, errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from studio.dialogs.import_dialog import ImportDialog
from studio.dialogs.import_reading import DELIMITERS
from studio.dialogs.import_preview import NO_COLUMN


@pytest.fixture
def dialog(qtbot, context, engine):
    context.set_engine(engine)
    dialog = ImportDialog(context)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def semicolon_log(tmp_path) -> Path:
    rows = ["customer_id;sku;ts;action;price"]
    rows += [f"C{u};P{(u * 7 + i) % 13};2026-03-{1 + i:02d}T10:00:00;view;{i}.50" for u in range(30) for i in range(5)]
    return write(tmp_path / "shop-log.csv", "\n".join(rows) + "\n")


def test_preview_shows_the_first_rows_and_preselects_guessed_roles(dialog, tmp_path):
    dialog.set_path("events", semicolon_log(tmp_path))
    tab = dialog.file_tabs["events"]
    assert tab.sniffed.delimiter == ";"
    assert tab.model.columnCount() == 5 and tab.model.rowCount() == 20
    assert tab.model.index(0, 1).data() == "P0"
    assert tab.roles() == {"user": "customer_id", "item": "sku", "time": "ts", "event": "action", "value": "price"}
    assert "customer_id\n[user]" == tab.model.headerData(0, Qt.Orientation.Horizontal)
    assert "semicolon-separated" in tab.detected.text()
    assert dialog.import_button.isEnabled()


def test_a_gzip_packed_log_is_previewed_and_imported_as_the_text_it_holds(qtbot, dialog, tmp_path):
    plain = semicolon_log(tmp_path)
    packed = tmp_path / "shop-log.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    dialog.set_path("events", packed)
    tab = dialog.file_tabs["events"]
    assert tab.model.index(0, 1).data() == "P0" and tab.roles()["time"] == "ts"
    assert tab.detected.text().startswith("shop-log.csv.gz: gzip-packed, semicolon-separated")
    with qtbot.waitSignal(dialog.start_import().returned, timeout=30_000):
        pass
    assert dialog.context.engine.workspace.counts()["events"] == 150


def test_changing_the_delimiter_reads_the_file_again(dialog, tmp_path):
    dialog.set_path("events", semicolon_log(tmp_path))
    dialog.reading.delimiter.setCurrentText(next(name for name, d in DELIMITERS.items() if d == ","))
    tab = dialog.file_tabs["events"]
    assert tab.sniffed.delimiter == "," and tab.model.columnCount() == 1
    assert "item" in tab.missing_roles()
    assert not dialog.import_button.isEnabled()
    assert "events item" in dialog.summary_label.text()
    dialog.reading.delimiter.setCurrentIndex(0)  # back to auto-detect
    assert tab.model.columnCount() == 5 and dialog.import_button.isEnabled()


def test_a_headerless_file_gets_roles_from_its_values(dialog, tmp_path):
    rows = [f"{u}\t{100 + (u + i) % 9}\t{1_700_000_000 + 3600 * i}" for u in range(20) for i in range(4)]
    dialog.set_path("events", write(tmp_path / "ratings.dat", "\n".join(rows) + "\n"))
    tab = dialog.file_tabs["events"]
    assert not tab.sniffed.has_header and tab.sniffed.delimiter == "\t"
    assert tab.roles() == {"user": "col1", "item": "col2", "time": "col3"}
    assert tab.combos["event"].currentText() == NO_COLUMN


def test_choosing_another_column_for_a_role_is_what_gets_imported(qtbot, dialog, tmp_path):
    dialog.set_path("events", semicolon_log(tmp_path))
    tab = dialog.file_tabs["events"]
    tab.combos["item"].setCurrentText("action")
    assert tab.roles()["item"] == "action" and tab.roles()["event"] == "sku"  # the two roles swapped columns
    assert "action\n[item]" == tab.model.headerData(3, Qt.Orientation.Horizontal)
    assert dialog.options().roles["events.item"] == "action"
    with qtbot.waitSignal(dialog.start_import().returned, timeout=30_000):
        pass
    items = dialog.context.engine.workspace.items_frame()
    assert items["external_id"].tolist() == ["view"]


def test_import_runs_in_the_background_and_reports_accepted_and_rejected_rows(qtbot, dialog, tmp_path):
    text = semicolon_log(tmp_path).read_text() + "C99;;2026-03-01T10:00:00;view;1\nC98;P1;not a time;view;2\n"
    path = write(tmp_path / "with-bad-rows.csv", text)
    dialog.set_path("events", path)
    announced = []
    dialog.context.data_changed.connect(lambda: announced.append(True))
    progress = []
    job = dialog.start_import()
    job.progress.connect(progress.append)
    assert dialog.cancel_button.isVisible() and not dialog.import_button.isEnabled()
    with qtbot.waitSignal(job.finished, timeout=30_000):
        pass
    assert dialog.report.rows_accepted == 150 and dialog.report.rows_rejected == 2
    assert "150 rows imported, 2 rejected" in dialog.summary_label.text()
    assert dialog.view_rejected_button.isVisible() and dialog.export_rejected_button.isVisible()
    loaded = [p for p in progress if p.stage == "import events"]  # a later stage's report may follow (or be throttled)
    assert loaded and loaded[-1].done == 152 and "152 rows" in dialog.progress_label.text()
    assert announced == [True]
    assert dialog.context.engine.workspace.counts()["events"] == 150
    assert not dialog.import_button.isEnabled()  # the same files again would add nothing


def test_a_file_that_is_not_text_shows_an_error_and_changes_nothing(qtbot, dialog, tmp_path, error_dialogs):
    binary = tmp_path / "photo.csv"
    binary.write_bytes(bytes(range(256)) * 50)
    dialog.set_path("events", binary)
    boxes = error_dialogs(dialog)
    assert len(boxes) == 1
    assert "photo.csv" in boxes[0].text() and "Traceback" not in boxes[0].text()
    assert "binary data" in boxes[0].informativeText() and "skipped" not in boxes[0].informativeText()  # skipping cannot help
    assert dialog.file_tabs["events"].sniffed is None and not dialog.import_button.isEnabled()
    assert dialog.context.engine.workspace.counts() == {"users": 0, "items": 0, "events": 0}


def test_a_bad_row_in_strict_mode_fails_with_its_line_and_leaves_the_workspace_unchanged(
        qtbot, dialog, tmp_path, error_dialogs, imported_engine):
    workspace = imported_engine.workspace
    before = workspace.counts()
    imports_before = workspace.content_hash()
    lines = semicolon_log(tmp_path).read_text().splitlines()
    lines.insert(6, "C5;P3;yesterday-ish;view;1")  # line 7 of the file
    dialog.set_path("events", write(tmp_path / "strict.csv", "\n".join(lines) + "\n"))
    dialog.reading.strict.setChecked(True)
    job = dialog.start_import()
    with qtbot.waitSignal(job.errored, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: len(error_dialogs(dialog)) == 1)
    box = error_dialogs(dialog)[0]
    assert "strict.csv" in box.text() and "line 7" in box.text() and "'ts'" in box.text()
    assert "bad rows be skipped" in box.informativeText()
    assert "was not changed" in dialog.summary_label.text()
    assert workspace.counts() == before and workspace.content_hash() == imports_before


def test_cancel_leaves_the_workspace_unchanged(qtbot, dialog, tmp_path):
    dialog.set_path("events", semicolon_log(tmp_path))
    job = dialog.start_import()
    dialog.cancel_button.click()
    with qtbot.waitSignals([job.aborted, job.finished], timeout=30_000):
        pass
    assert "cancelled" in dialog.summary_label.text()
    assert dialog.context.engine.workspace.counts()["events"] == 0
    assert dialog.import_button.isEnabled()


def test_items_and_users_files_are_imported_with_the_events(qtbot, dialog, demo_csv):
    dialog.set_path("events", Path(demo_csv.events))
    dialog.set_path("items", Path(demo_csv.items))
    dialog.set_path("users", Path(demo_csv.users))
    assert dialog.file_tabs["items"].roles() == {"item": "item_id", "title": "title", "categories": "categories"}
    with qtbot.waitSignal(dialog.start_import().returned, timeout=30_000):
        pass
    counts = dialog.context.engine.workspace.counts()
    assert counts == {"users": 200, "items": 96, "events": demo_csv.n_events}
    assert [f.kind for f in dialog.report.files] == ["items", "users", "events"]


def test_keeping_duplicate_events_is_a_choice_and_the_summary_says_what_was_skipped(qtbot, dialog, tmp_path):
    day1 = write(tmp_path / "day1.csv", "user,item,timestamp\nu1,a,1700000000\nu2,b,1700000060\n")
    assert dialog.options().keep_duplicates is False
    dialog.reading.keep_duplicates.setChecked(True)
    assert dialog.options().keep_duplicates is True
    dialog.reading.keep_duplicates.setChecked(False)
    dialog.context.engine.import_files(day1)
    dialog.set_path("events", write(tmp_path / "day2.csv", day1.read_text() + "u3,c,1700000120\n"))
    job = dialog.start_import()
    with qtbot.waitSignal(job.finished, timeout=30_000):
        pass
    summary = dialog.summary_label.text()
    assert "1 rows imported, 0 rejected (of 3 read)." in summary
    assert "Times read as unix seconds." in summary
    assert ("2 duplicate events already in the workspace or the file skipped (“Keep duplicate events” keeps "
            "them).") in summary


def test_the_summary_says_when_the_files_order_stands_for_time(qtbot, dialog, tmp_path):
    dialog.set_path("events", write(tmp_path / "orderless.csv", "user,item\nu4,a\nu4,b\n"))
    with qtbot.waitSignal(dialog.start_import().finished, timeout=30_000):
        pass
    assert ("No time column: events kept in the file's order (choose its Time column to read one)."
            in dialog.summary_label.text())


def test_a_date_and_a_time_of_day_in_two_columns_are_offered_as_one_time_and_can_be_parted(qtbot, dialog, tmp_path):
    dialog.set_path("events", write(tmp_path / "till.csv", "date,time,customer,product\n"
                                                           "2025-03-01,10:15:00,u1,p1\n2025-03-01,9:05 AM,u1,p2\n"))
    tab = dialog.file_tabs["events"]
    assert tab.roles() == {"user": "customer", "item": "product", "time": "date", "time_of_day": "time"}
    assert "Time of day:" in [label.text() for label in tab.findChildren(QLabel)]
    assert tab.model.headerData(1, Qt.Orientation.Horizontal) == "time\n[time of day]"
    assert tab.combos["time_of_day"].findText(NO_COLUMN) >= 0  # a guessed time of day can be taken away
    with qtbot.waitSignal(dialog.start_import().finished, timeout=30_000):
        pass
    assert "Times read as ISO-8601 dates, each with its time of day from 'time'." in dialog.summary_label.text()
    tab.combos["time_of_day"].setCurrentText(NO_COLUMN)
    assert "time_of_day" not in tab.roles() and "time_of_day" not in str(dialog.options().roles)


def test_the_order_of_slashed_dates_can_be_named(qtbot, dialog, tmp_path):
    dialog.set_path("events", write(tmp_path / "week.csv", "user,item,date\nu1,a,03/05/2025\nu2,b,04/06/2025\n"))
    assert dialog.options().date_order is None
    dialog.reading.date_order.setCurrentText("Day first (31/12/2025)")
    assert dialog.options().date_order == "dmy"
    with qtbot.waitSignal(dialog.start_import().finished, timeout=30_000):
        pass
    assert "Times read as dates written DD/MM/YYYY (UTC)." in dialog.summary_label.text()


def test_a_file_without_an_event_column_can_be_given_its_type(qtbot, dialog, tmp_path):
    """A log shipped as one file per type (YooChoose's buys): its events were all "interaction"."""
    dialog.set_path("events", write(tmp_path / "buys.csv", "user,item,timestamp\nu1,a,1700000000\n"))
    assert dialog.options().event_type is None and dialog.reading.event_type.placeholderText() == "interaction"
    dialog.reading.event_type.setText(" purchase ")
    assert dialog.options().event_type == "purchase"
    with qtbot.waitSignal(dialog.start_import().finished, timeout=30_000):
        pass
    assert dialog.context.engine.workspace.user_sequence("u1")["event_type"].tolist() == ["purchase"]


def test_the_summary_says_when_an_items_file_repeats_an_id(qtbot, dialog, tmp_path):
    dialog.set_path("events", write(tmp_path / "e.csv", "user,item,timestamp\nu1,p1,1700000000\n"))
    dialog.set_path("items", write(tmp_path / "i.csv", "item_id,title\np1,First\np2,Other\np1,Second\n"))
    with qtbot.waitSignal(dialog.start_import().finished, timeout=30_000):
        pass
    assert "1 row repeats an id an earlier row gave: the last row of each id is what is kept." in dialog.summary_label.text()


def test_low_ratings_can_be_marked_as_dislikes_at_import(qtbot, dialog, tmp_path):
    assert not dialog.low_values_box.action.isEnabled()  # no file, no value column yet
    assert dialog.options().low_values.action == "keep"
    rows = ["user,item,timestamp,rating"] + [f"u{u},i{(u + k) % 9},{1_700_000_000 + 60 * k},{1 + (u + k) % 5}"
                                               for u in range(12) for k in range(5)]
    dialog.set_path("events", write(tmp_path / "ratings.csv", "\n".join(rows) + "\n"))
    assert dialog.file_tabs["events"].roles()["value"] == "rating"
    assert dialog.low_values_box.action.isEnabled() and dialog.low_values_box.threshold.value() == 2.0  # a 5-star scale
    assert not dialog.low_values_box.threshold.isEnabled()  # kept: no threshold to set
    dialog.low_values_box.action.setCurrentIndex(dialog.low_values_box.action.findData("negative"))
    assert dialog.low_values_box.threshold.isEnabled()
    low = dialog.options().low_values
    assert (low.action, low.at_most) == ("negative", 2.0)
    with qtbot.waitSignal(dialog.start_import().finished, timeout=30_000):
        pass
    low_rows = sum(1 for row in rows[1:] if int(row.rsplit(",", 1)[1]) <= 2)
    assert dialog.report.file("events").low_values == low_rows
    assert f"{low_rows} events with a low value were marked as dislikes" in dialog.summary_label.text()
    engine = dialog.context.engine
    assert engine.workspace.counts()["events"] == len(rows) - 1
    assert len(engine.sequence_data().items) == len(rows) - 1 - low_rows  # not learned from


def test_without_a_value_column_low_ratings_are_kept(dialog, tmp_path):
    dialog.set_path("events", write(tmp_path / "plain.csv", "user,item,timestamp\nu1,a,1700000000\n"))
    dialog.low_values_box.action.setCurrentIndex(dialog.low_values_box.action.findData("drop"))
    assert not dialog.low_values_box.action.isEnabled() and dialog.options().low_values.action == "keep"
    assert "no value column" in dialog.low_values_box.hint.text()


def test_the_dialog_fits_the_smallest_supported_window(dialog):
    assert dialog.minimumSizeHint().width() <= 1000 and dialog.minimumSizeHint().height() <= 680


def test_a_parquet_file_is_previewed_and_imported_like_a_csv_file(qtbot, dialog, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"customer_id": pa.array([u % 9 for u in range(40)], pa.int64()),
                      "sku": [f"P{u % 5}" for u in range(40)],
                      "ts": pa.array([1_700_000_000 + 60 * u for u in range(40)], pa.int64())})
    pq.write_table(table, tmp_path / "log.parquet")
    dialog.set_path("events", tmp_path / "log.parquet")
    tab = dialog.file_tabs["events"]
    assert tab.roles() == {"user": "customer_id", "item": "sku", "time": "ts"}
    assert tab.model.index(0, 1).data() == "P0" and "Parquet, 1 file, 3 columns, 40 rows" in tab.detected.text()
    with qtbot.waitSignal(dialog.start_import().finished, timeout=30_000):
        pass
    assert dialog.context.engine.workspace.counts() == {"users": 9, "items": 5, "events": 40}
    assert "log.parquet: 40 rows imported, 0 rejected" in dialog.summary_label.text()


@pytest.fixture
def shop_db(tmp_path):
    import sqlite3

    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE ev (who TEXT, what TEXT, ts INTEGER)")
        db.executemany("INSERT INTO ev VALUES (?, ?, ?)", [(f"u{i % 6}", f"P{i % 4}", 1_700_000_000 + i) for i in range(30)])
        db.execute("INSERT INTO ev VALUES ('u1', 'P1', 'soon')")
    return f"sqlite:///{path}"


def test_from_database_previews_the_query_and_imports_it(qtbot, dialog, shop_db):
    dialog.set_query(shop_db, "select who as user_id, what as item_id, ts from ev")
    assert dialog.sources.currentIndex() == 1 and not dialog.import_button.isEnabled()  # not previewed yet
    assert not dialog.tabs.isTabEnabled(dialog.tabs.indexOf(dialog.file_tabs["items"]))
    with qtbot.waitSignal(dialog.preview_query().finished, timeout=30_000):
        pass
    tab = dialog.file_tabs["events"]
    assert tab.roles() == {"user": "user_id", "item": "item_id", "time": "ts"} and tab.model.rowCount() == 20
    assert tab.model.index(0, 0).data() == "u0" and "Query on sqlite:///" in tab.detected.text()
    job = dialog.start_import()
    with qtbot.waitSignal(job.finished, timeout=30_000):
        pass
    assert dialog.context.engine.workspace.counts()["events"] == 30
    assert "30 rows imported, 1 rejected (of 31 read)" in dialog.summary_label.text()
    assert dialog.view_rejected_button.isVisible()
    dialog.query_edit.setPlainText("select who from ev")
    assert dialog.file_tabs["events"].sniffed is None and not dialog.import_button.isEnabled()  # preview again first


def test_a_query_the_database_refuses_shows_its_message(qtbot, dialog, shop_db, error_dialogs):
    dialog.set_query(shop_db, "select nope from ev")
    with qtbot.waitSignal(dialog.preview_query().finished, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: len(error_dialogs(dialog)) == 1)
    assert "no such column: nope" in error_dialogs(dialog)[0].text()
    assert dialog.file_tabs["events"].sniffed is None and not dialog.import_button.isEnabled()
    dialog.files_radio.setChecked(True)
    assert dialog.sources.currentIndex() == 0 and dialog.tabs.isTabEnabled(dialog.tabs.indexOf(dialog.file_tabs["items"]))
