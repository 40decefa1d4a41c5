"""The first-launch welcome screen and the Help menu."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

import core
from studio.app import is_first_launch, parse_args
from studio.dialogs.import_dialog import ImportDialog
from studio.dialogs.welcome import TOUR, WelcomeDialog


def test_only_a_first_launch_without_arguments_is_welcomed(studio_settings, tmp_path):
    assert is_first_launch(parse_args([]), studio_settings)
    assert not is_first_launch(parse_args(["--demo"]), studio_settings)
    assert not is_first_launch(parse_args([str(tmp_path / "shop.sqlite")]), studio_settings)
    studio_settings.remember_workspace(tmp_path / "shop.sqlite")
    assert not is_first_launch(parse_args([]), studio_settings)


def test_welcome_offers_three_ways_in_and_tours_the_four_pages(qtbot, window):
    dialog = window.show_welcome()
    assert isinstance(dialog, WelcomeDialog) and dialog.isVisible()
    assert [page for page, _ in TOUR] == [page.title for page in window.pages]
    opened = []
    window.open_demo = lambda path=None: opened.append("demo")
    dialog.demo_button.click()
    assert opened == ["demo"] and not dialog.isVisible()


def test_the_demo_is_generated_in_the_job_process_and_opened_with_its_progress_shown(
        qtbot, wait_idle, window, monkeypatch, tmp_path):
    import core.demo
    from core.demo import DemoConfig

    def not_here(*args, **kwargs):
        raise AssertionError("the demo was generated in the window's process")

    monkeypatch.setattr(core.demo, "create_demo_workspace", not_here)
    reports = []
    job = window.open_demo(tmp_path / "demo.sqlite", DemoConfig(n_users=120, n_items=60, n_categories=4))
    job.progress.connect(reports.append)
    assert job.can_cancel and window.status.job_cancel.isEnabled()  # the status bar can stop it
    with qtbot.waitSignal(job.returned, timeout=60_000):
        pass
    wait_idle(window.context)
    assert window.context.engine.workspace.path == (tmp_path / "demo.sqlite").resolve()
    assert window.context.engine.workspace.counts()["users"] == 120
    assert reports and window.status.job_label.isHidden()


def test_opening_another_workspace_during_the_demo_preparation_names_that_job(qtbot, window, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    from core.demo import DemoConfig

    job = window.open_demo(tmp_path / "demo.sqlite", DemoConfig(n_users=120, n_items=60, n_categories=4))
    assert window.open_workspace(tmp_path / "other.sqlite") is None
    busy = window.findChild(QMessageBox, "busyDialog")
    assert busy.text().startswith("The demo shop preparation is still working on this workspace.")
    busy.close()
    job.cancel()
    with qtbot.waitSignal(job.finished, timeout=60_000):
        pass


def test_import_from_the_welcome_opens_the_default_workspace_then_the_import_dialog(
        qtbot, wait_idle, window, monkeypatch, tmp_path):
    monkeypatch.setattr("studio.main_window.default_workspace_path", lambda: tmp_path / "shop.sqlite")
    window.show_welcome().import_button.click()
    wait_idle(window.context)
    qtbot.waitUntil(lambda: bool(window.findChildren(ImportDialog)), timeout=30_000)
    assert window.context.engine.workspace.path == (tmp_path / "shop.sqlite").resolve()
    window.findChildren(ImportDialog)[0].close()


def _help_action(window, text):
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    return next(a for a in help_menu.actions() if a.text().replace("&", "").startswith(text))


def _open_box(window, name):
    boxes = [b for b in window.findChildren(QMessageBox) if b.objectName() == name and b.isVisible()]
    assert len(boxes) == 1
    return boxes[0]


def test_help_lists_the_real_shortcuts_and_about_names_versions_and_device(qtbot, window):
    _help_action(window, "Keyboard shortcuts").trigger()
    shortcuts = _open_box(window, "shortcutsDialog").text()
    assert "Import CSV" in shortcuts and "Ctrl+I" in shortcuts and "Ctrl+4" in shortcuts
    _help_action(window, "About").trigger()
    about = _open_box(window, "aboutDialog").text()
    import torch

    assert core.__version__ in about and torch.__version__ in about and "CPU (" in about
    _help_action(window, "Short guide").trigger()
    assert "Import CSV" in _open_box(window, "guideDialog").text()
    for name in ("shortcutsDialog", "aboutDialog", "guideDialog"):
        _open_box(window, name).close()
