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
