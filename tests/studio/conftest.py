"""Fixtures for the studio tests: isolated settings, small workspaces, a ready main window.

Every test gets its own QSettings ini file and XDG data folder, so nothing a test does reaches
the developer's real settings or demo workspace.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, QStandardPaths

from studio.settings import StudioSettings


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """QSettings, QStandardPaths and the XDG data folder all point into ``tmp_path``."""
    QStandardPaths.setTestModeEnabled(True)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    yield
    QStandardPaths.setTestModeEnabled(False)


@pytest.fixture(autouse=True)
def no_language_model(request, monkeypatch):
    """Studio tests run as without the [text] extra unless marked ``text_model``: reading a demo
    shop's text with the language model takes a minute on a busy CPU, and every page would wait
    for it. Tests marked ``text_model`` check what the model adds."""
    if request.node.get_closest_marker("text_model") is None:
        from core.engine import Engine

        monkeypatch.setattr(Engine, "text_available", lambda self: False)


@pytest.fixture
def studio_settings(tmp_path) -> StudioSettings:
    return StudioSettings(QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def context(qtbot):
    from studio.context import StudioContext

    ctx = StudioContext()
    yield ctx
    ctx.jobs.cancel_all()
    ctx.jobs.wait_all(timeout_s=30)
    if ctx.engine is not None:
        ctx.engine.workspace.close()


@pytest.fixture(scope="session")
def demo_csv(tmp_path_factory):
    """A small demo shop as CSV files (events, items, users): about 6,000 events, 200 users."""
    from core.demo import DemoConfig, write_demo_csv

    return write_demo_csv(tmp_path_factory.mktemp("demo-csv"), DemoConfig(n_users=200, n_items=96, n_categories=6))


@pytest.fixture
def engine(tmp_path):
    """An empty workspace's engine."""
    from core.engine import Engine

    engine = Engine.open(tmp_path / "workspace.sqlite")
    yield engine
    engine.workspace.close()


@pytest.fixture
def imported_engine(engine, demo_csv):
    """The small demo shop imported into a fresh workspace."""
    engine.import_files(demo_csv.events, items=demo_csv.items, users=demo_csv.users)
    return engine


@pytest.fixture
def window(qtbot, context, studio_settings):
    """The main window with no workspace yet; closed (and its jobs waited for) after the test."""
    from studio.main_window import MainWindow

    win = MainWindow(context, studio_settings)
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    return win


@pytest.fixture
def error_dialogs():
    """``error_dialogs(parent=None)``: the error dialogs open now (they never block, see
    studio/dialogs/errors.py); closed after the test."""
    from PySide6.QtWidgets import QApplication, QMessageBox

    def open_now(parent=None):
        return [w for w in QApplication.topLevelWidgets()
                if isinstance(w, QMessageBox) and w.objectName() == "errorDialog" and w.isVisible()
                and (parent is None or w.parent() is parent)]

    yield open_now
    for box in open_now():
        box.close()


@pytest.fixture
def wait_idle(qtbot):
    """``wait_idle(context)``: until every background job has ended and its signals were delivered."""

    def wait(context, timeout=60_000):
        qtbot.waitUntil(lambda: not context.jobs.active(), timeout=timeout)
        qtbot.wait(50)

    return wait
