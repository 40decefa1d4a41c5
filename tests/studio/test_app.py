"""The main window: four pages, the status bar, menus and shortcuts, settings, dropped files."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QKeySequence
from PySide6.QtWidgets import QAbstractButton, QComboBox, QLineEdit, QMessageBox

from studio.app import choose_start, parse_args
from studio.context import StudioContext
from studio.main_window import MainWindow
from studio.dialogs.import_dialog import ImportDialog


def open_and_wait(qtbot, wait_idle, window, path) -> None:
    with qtbot.waitSignal(window.context.workspace_changed, timeout=30_000):
        window.open_workspace(path)
    wait_idle(window.context)


def test_window_opens_a_workspace_with_four_pages_and_a_status_bar(qtbot, wait_idle, window, imported_engine):
    path = imported_engine.workspace.path
    imported_engine.workspace.close()
    open_and_wait(qtbot, wait_idle, window, path)

    assert [window.sidebar.item(i).text() for i in range(window.sidebar.count())] == ["Data", "Train", "Explore", "Evaluate"]
    assert [type(page).__name__ for page in window.pages] == ["DataPage", "TrainPage", "ExplorePage", "EvaluatePage"]
    assert window.status.workspace_label.text() == str(path)
    events = window.context.engine.workspace.counts()["events"]
    assert events > 3000 and window.status.size_label.text() == f"200 users · 96 items · {events:,} events"
    assert window.status.device_label.text() == window.context.engine.device_name()
    assert path.name in window.windowTitle()
    assert window.import_action.isEnabled() and window.export_action.isEnabled()


def test_a_workspace_that_cannot_be_opened_shows_an_error_and_keeps_the_current_one(
        qtbot, window, imported_engine, tmp_path, error_dialogs):
    window.context.set_engine(imported_engine)
    not_a_workspace = tmp_path / "notes.sqlite"
    not_a_workspace.write_text("these are my notes, not a database")
    job = window.open_workspace(not_a_workspace)
    with qtbot.waitSignal(job.errored, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: len(error_dialogs(window)) == 1)
    box = error_dialogs(window)[0]
    assert "not a NextPick workspace" in box.text() and "create a new workspace" in box.informativeText()
    assert "Traceback" not in box.text() + box.informativeText()
    assert window.context.engine is imported_engine


def test_go_shortcuts_switch_pages(qtbot, window):
    go_actions = {a.text(): a for a in window.menuBar().actions()[1].menu().actions()}
    assert [a.shortcut().toString() for a in go_actions.values()] == ["Ctrl+1", "Ctrl+2", "Ctrl+3", "Ctrl+4"]
    go_actions["Explore"].trigger()
    assert window.stack.currentWidget() is window.page("Explore") and window.sidebar.currentRow() == 2
    shortcuts = {window.new_action.shortcut(), window.open_action.shortcut(), window.import_action.shortcut(),
                 window.export_action.shortcut()}
    assert shortcuts == {QKeySequence("Ctrl+N"), QKeySequence("Ctrl+O"), QKeySequence("Ctrl+I"), QKeySequence("Ctrl+E")}


def test_settings_remember_the_workspace_the_recent_list_and_the_geometry(qtbot, wait_idle, window, imported_engine, tmp_path):
    path = imported_engine.workspace.path
    imported_engine.workspace.close()
    open_and_wait(qtbot, wait_idle, window, path)
    other = tmp_path / "other.sqlite"
    open_and_wait(qtbot, wait_idle, window, other)
    window.resize(window.minimumSizeHint())
    qtbot.wait(20)
    closed_size = window.size()
    assert closed_size.height() < 800  # the default size of a window without saved geometry
    window.close()
    settings = window.settings
    assert settings.last_workspace == other
    assert settings.recent_workspaces() == [other, path]
    again = MainWindow(StudioContext(), settings)
    qtbot.addWidget(again)
    assert again.height() == closed_size.height()  # the width is clamped to the 800-pixel offscreen screen


def test_start_choice_follows_arguments_and_the_last_workspace(studio_settings, tmp_path):
    assert choose_start(parse_args([]), studio_settings) is None  # first launch: the demo shop
    studio_settings.remember_workspace(tmp_path / "gone.sqlite")
    assert choose_start(parse_args([]), studio_settings) is None  # last one was deleted: the demo again
    last = tmp_path / "shop.sqlite"
    last.touch()
    studio_settings.remember_workspace(last)
    assert choose_start(parse_args([]), studio_settings) == last
    assert choose_start(parse_args(["--demo"]), studio_settings) is None
    assert choose_start(parse_args([str(tmp_path / "given.sqlite")]), studio_settings) == tmp_path / "given.sqlite"


def test_first_launch_builds_the_demo_shop_in_the_background(qtbot, wait_idle, window, tmp_path):
    demo = tmp_path / "demo.sqlite"
    with qtbot.waitSignal(window.context.workspace_changed, timeout=120_000):
        job = window.open_demo(demo)
        assert window.status.job_progress.isVisible()  # the window is up and shows the job at once
    engine = window.context.engine
    assert engine.workspace.path == demo.resolve()
    counts = engine.workspace.counts()
    assert counts["users"] == 3000 and counts["events"] > 50_000
    wait_idle(window.context)
    assert not job.running and not window.status.job_progress.isVisible()


def test_dropping_a_csv_opens_the_import_dialog_with_the_file(qtbot, window, imported_engine, demo_csv):
    window.context.set_engine(imported_engine)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(demo_csv.events))])
    event = QDropEvent(QPointF(100, 100), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    dialogs = window.findChildren(ImportDialog)
    assert len(dialogs) == 1
    dialog = dialogs[0]
    assert dialog.path("events") == Path(demo_csv.events)
    assert dialog.file_tabs["events"].roles()["user"] == "user_id"
    dialog.close()


def test_dropping_a_parquet_file_opens_the_import_dialog_with_it(qtbot, window, engine, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    window.context.set_engine(engine)
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user_id": ["u1"], "item_id": ["a"], "timestamp": [1_700_000_000]}), path)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    window.dropEvent(QDropEvent(QPointF(100, 100), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier))
    dialog = window.findChildren(ImportDialog)[0]
    assert dialog.path("events") == path and dialog.file_tabs["events"].roles()["time"] == "timestamp"
    dialog.close()


def test_every_control_of_the_window_and_the_data_page_has_a_tooltip(window):
    controls = window.page("Data").findChildren(QAbstractButton) + window.page("Data").findChildren(QComboBox)
    controls += window.page("Data").findChildren(QLineEdit)
    assert controls
    controls = [c for c in controls if not c.objectName().startswith("qt_")]  # Qt's own parts (table corner)
    assert [c.objectName() or c.text() for c in controls if not c.toolTip()] == []
    actions = [a for menu in window.menuBar().actions() for a in menu.menu().actions() if not a.isSeparator()]
    assert [a.text() for a in actions if not a.toolTip() and a.menu() is None] == []


def test_another_workspace_is_not_opened_under_a_running_import(qtbot, window, engine, demo_csv, tmp_path):
    window.context.set_engine(engine)
    release = threading.Event()
    job = window.context.run(lambda progress=None, cancel=None: release.wait(10))  # stands for a long import
    assert window.open_workspace(tmp_path / "other.sqlite") is None
    busy = window.findChild(QMessageBox, "busyDialog")
    assert busy is not None and busy.isVisible()
    assert window.context.engine is engine
    release.set()
    with qtbot.waitSignal(job.finished, timeout=10_000):
        pass
    busy.close()


def test_every_page_fits_the_smallest_supported_window(qtbot, wait_idle, window, tmp_path):
    from tests.studio.trained_workspace import open_trained_copy

    window.context.set_engine(open_trained_copy(tmp_path))
    for page in window.pages:  # each page with its content: long texts must wrap, not widen the window
        window.show_page(page.title)
        wait_idle(window.context)
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 700
    window.resize(1024, 700)
    assert (window.width(), window.height()) == (1024, 700)


def test_the_launcher_imports_no_qt_at_its_top():
    """``nextpick-studio`` imports ``studio.app``, and the job process (multiprocessing's spawn)
    runs the launching script's imports again: they must not load Qt there."""
    script = ("import sys, studio.app\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph')))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
