"""The window's bottom line: the open workspace, its size, where models run, how far the serving run
is behind the log, a service answering from it, and a window-level job (opening, the demo, an
export) with its progress and Cancel."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPalette
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QToolButton

from studio.service_watch import describe as describe_service
from studio.workers import Job


class StudioStatusBar(QStatusBar):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.workspace_label = PathLabel("No workspace open")
        self.size_label = _label("", "Users, items and events in the workspace")
        self.device_label = _label("", "Where models train and score: the GPU's name, or CPU")
        self.read_only_label = _label("Read-only", "This workspace's file or folder cannot be written here: you can "
                                      "browse, recommend and evaluate, but not import, train or delete runs")
        self.read_only_label.setObjectName("readOnly")
        self.read_only_label.hide()
        self.lag_label = _label("", "The run recommendations come from (the active run, else the latest), and what "
                                "the log gained since it was trained")
        self.service_label = _label("", "A `nextpick serve` process answering HTTP requests from this workspace")
        self.job_label = QLabel("")
        self.job_progress = QProgressBar()
        self.job_progress.setMaximumWidth(180)
        self.job_progress.setToolTip("Progress of the running job")
        self.job_cancel = QToolButton()
        self.job_cancel.setText("Cancel")
        self.job_cancel.setToolTip("Stop the running job; nothing in the workspace changes")
        for widget in (self.read_only_label, self.service_label, self.lag_label, self.workspace_label, self.size_label,
                       self.device_label):
            self.addPermanentWidget(widget)
        for widget in self._job_widgets():
            self.addWidget(widget)
            widget.hide()
        self._tracked: list[Job] = []

    def show_workspace(self, path: Optional[str], read_only: bool) -> None:
        self.workspace_label.setText(path or "No workspace open")
        self.workspace_label.setToolTip(f"The workspace file in use: {path}" if path else "No workspace open")
        self.read_only_label.setVisible(read_only)

    def show_contents(self, status: Optional[tuple[dict[str, int], str, str]]) -> None:
        """(counts, device, lag) of the open workspace (``workspace_opening.read_status``), or None: nothing open."""
        counts, device, lag = status or (None, "", "")
        self.size_label.setText(f"{counts['users']:,} users · {counts['items']:,} items · {counts['events']:,} events"
                                if counts else "")
        self.device_label.setText(device)
        self.lag_label.setText(lag)

    def show_service(self, status) -> None:
        self.service_label.setText(describe_service(status))

    def track(self, job: Job, message: str) -> None:
        """Show ``job`` until it ends."""
        self.job_label.setText(message)
        self.job_progress.setRange(0, 0)
        self._tracked.append(job)
        self.job_cancel.setEnabled(job.can_cancel)
        self.job_cancel.clicked.connect(job.cancel)
        job.progress.connect(self._show_job_progress)
        job.finished.connect(lambda: self._untrack(job))
        for widget in self._job_widgets():
            widget.show()

    def _job_widgets(self) -> tuple:
        return self.job_label, self.job_progress, self.job_cancel

    def _show_job_progress(self, report) -> None:
        if report.total:
            self.job_progress.setRange(0, 1000)
            self.job_progress.setValue(int(1000 * (report.fraction or 0.0)))
        if report.message:
            self.job_label.setText(report.message)

    def _untrack(self, job: Job) -> None:
        self.job_cancel.clicked.disconnect(job.cancel)
        self._tracked.remove(job)
        if not self._tracked:
            for widget in self._job_widgets():
                widget.hide()


class PathLabel(QLabel):
    """A path shortened in the middle to the room it gets (the file's name stays whole), so a long
    workspace path neither widens the window past a laptop's screen nor pushes the labels beside it off."""

    SHORTEST = 120  # pixels: "…/shop.sqlite" and a little of the folder

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        whole = super().minimumSizeHint()
        return QSize(min(self.SHORTEST, whole.width()), whole.height())

    def shown_text(self) -> str:
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideMiddle, self.contentsRect().width())

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        painter.drawText(self.contentsRect(), int(self.alignment()), self.shown_text())


def _label(text: str, tip: str) -> QLabel:
    label = QLabel(text)
    label.setToolTip(tip)
    return label
