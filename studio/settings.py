"""What the studio remembers between launches, as typed properties over ``QSettings``.

Keys are spelled once, here; the rest of the studio reads ``settings.last_workspace`` instead
of looking strings up. Tests point QSettings at an ini file in a temporary folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QByteArray, QSettings

ORGANISATION = "NextPick"
APPLICATION = "Studio"
RECENT_LIMIT = 8


class StudioSettings:
    """Window geometry, the last workspace, the recent-workspaces list and the item-text model."""

    def __init__(self, store: Optional[QSettings] = None) -> None:
        self.store = store or QSettings(ORGANISATION, APPLICATION)

    @property
    def geometry(self) -> Optional[QByteArray]:
        value = self.store.value("window/geometry")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    @geometry.setter
    def geometry(self, value: QByteArray) -> None:
        self.store.setValue("window/geometry", value)

    @property
    def last_workspace(self) -> Optional[Path]:
        value = self.store.value("workspace/last", "")
        return Path(value) if value else None

    @last_workspace.setter
    def last_workspace(self, path: Optional[Path]) -> None:
        self.store.setValue("workspace/last", str(path) if path else "")

    @property
    def text_model(self) -> Optional[str]:
        """The sentence-transformers folder item text is read with; None = the packaged model."""
        return self.store.value("text/model", "") or None

    @text_model.setter
    def text_model(self, folder: Optional[str]) -> None:
        self.store.setValue("text/model", folder or "")

    def recent_workspaces(self) -> list[Path]:
        """Most recent first; files that no longer exist are left out."""
        value = self.store.value("workspace/recent", [])
        names = [value] if isinstance(value, str) else list(value or [])
        return [Path(name) for name in names if name and Path(name).exists()]

    def remember_workspace(self, path: Path) -> None:
        """Make ``path`` the last workspace and the head of the recent list."""
        path = Path(path)
        self.last_workspace = path
        recent = [p for p in self.recent_workspaces() if p != path]
        self.store.setValue("workspace/recent", [str(p) for p in [path, *recent][:RECENT_LIMIT]])

    def sync(self) -> None:
        self.store.sync()
