"""Whether a ``nextpick serve`` process is running on the open workspace, polled from its status file.

Reading the small status file beside the workspace costs a file read, no database access,
so it is done on the GUI thread every couple of seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject, QTimer, Signal

from core.service.status import HEARTBEAT_S, ServiceStatus, read_status


class ServiceWatcher(QObject):
    """Emits ``changed(status or None)`` when a service on the watched workspace starts, stops
    or reports more events received."""

    changed = Signal(object)

    def __init__(self, parent: Optional[QObject] = None, interval_ms: int = int(HEARTBEAT_S * 1000)) -> None:
        super().__init__(parent)
        self._path: Optional[Path] = None
        self._last: Optional[tuple] = None
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.poll)

    def watch(self, workspace_path: Optional[Path]) -> None:
        """Follow the service of ``workspace_path`` (None: none)."""
        self._path, self._last = workspace_path, None
        if workspace_path is None:
            self._timer.stop()
            self.changed.emit(None)
            return
        self._timer.start()
        self.poll()

    def poll(self) -> None:
        status = read_status(self._path) if self._path is not None else None
        key = None if status is None else (status.pid, status.url, status.run, status.events_received)
        if key != self._last:
            self._last = key
            self.changed.emit(status)


def describe(status: Optional[ServiceStatus]) -> str:
    """The status bar's words for a service, "" when none runs."""
    if status is None:
        return ""
    received = status.events_received
    return f"Serving run #{status.run} on {status.url} · {received:,} event{'' if received == 1 else 's'} received"
