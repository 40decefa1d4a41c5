"""``nextpick-studio --screenshots FOLDER``: show every page with real content and save it as a PNG.

The tour opens the given workspace (or builds the demo shop in a temporary folder), trains a
small model through the Train page when the workspace has no finished run, then, at each of
the window sizes the studio must read well at (1280×800, 1024×700, 1920×1080), visits Data,
Train, Explore and Evaluate in turn, waiting each time until no background job is left, and
grabs the window to ``FOLDER/<page>-<size>.png``; then it opens the import, export,
rejected-rows and error dialogs and grabs each as ``FOLDER/<dialog>-dialog-<size>.png``.
Run it offscreen (``QT_QPA_PLATFORM=offscreen``) or under Xvfb on a machine without a display:

    xvfb-run -a nextpick-studio --screenshots shots/
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QWidget

from studio.dialogs.errors import show_error
from studio.main_window import MainWindow
from studio.workers import Job

SETTLE_MS = 600  # after the last job ends: let charts and tables repaint before the grab
POLL_MS = 100
TOUR_TIMEOUT_S = 900.0
TOUR_EPOCHS = 3  # enough for curves with a shape; the demo shop trains this in well under a minute
WINDOW_SIZES = ((1280, 800), (1024, 700), (1920, 1080))  # a laptop, the smallest supported, a desktop


class ScreenshotTour(QObject):
    """Drives the main window through its pages; ``done(exit_code)`` when finished."""

    done = Signal(int)

    def __init__(self, window: MainWindow, folder: Path, workspace: Optional[Path] = None,
                 epochs: int = TOUR_EPOCHS) -> None:
        super().__init__(window)
        self.window = window
        self.folder = Path(folder)
        self.workspace = workspace
        self.epochs = epochs
        self.saved: list[Path] = []
        self._scratch: Optional[tempfile.TemporaryDirectory] = None
        self._deadline = time.monotonic() + TOUR_TIMEOUT_S
        self._shots = [(size, name) for size in WINDOW_SIZES
                       for name in [page.title for page in window.pages] + list(DIALOGS)]

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.window.resize(*WINDOW_SIZES[0])
        if self.workspace is not None:
            job = self.window.open_workspace(self.workspace)
        else:
            self._scratch = tempfile.TemporaryDirectory(prefix="nextpick-shots-")
            job = self.window.open_demo(Path(self._scratch.name) / "demo.sqlite")
        self._follow(job, "opening the workspace", lambda _engine: self._when_idle(self._train_if_needed))

    def _train_if_needed(self) -> None:
        """A popularity baseline, then a small Transformer: Evaluate then has two runs to compare."""
        engine = self.window.context.engine
        if any(run.status == "done" for run in engine.runs()):
            self._when_idle(self._next_page)
            return
        self.window.show_page("Train")  # the page reads the workspace's setup once seen, in a worker
        self._when_idle(self._train_baseline)

    def _train_baseline(self) -> None:
        train = self.window.page("Train")
        baseline = dataclasses.replace(train.settings.current_config(), model="pop")
        self._log("training the popularity baseline")
        self._follow(train.start_training(baseline), "training the baseline",
                     lambda _run: self._when_idle(self._train_model))

    def _train_model(self) -> None:
        train = self.window.page("Train")
        config = dataclasses.replace(train.settings.current_config(), model="sasrec", hidden=32, layers=1,
                                     epochs=self.epochs)
        train.settings.form.set_config(config)
        self._log(f"training {config.model} for {config.epochs} epochs")
        self._follow(train.start_training(config), "training", self._use_model)

    def _use_model(self, run) -> None:
        self.window.context.set_active_run(run.id)
        self._when_idle(self._next_page)

    def _next_page(self) -> None:
        if not self._shots:
            self._finish(0)
            return
        (width, height), name = self._shots[0]
        self.window.resize(width, height)
        if name in DIALOGS:
            dialog = DIALOGS[name](self.window)
            dialog.resize(min(dialog.width(), width - 80), min(dialog.height(), height - 80))
            self._when_idle(lambda: self._grab(dialog))
        else:
            self.window.show_page(name)
            self._when_idle(lambda: self._grab(self.window))

    def _grab(self, widget: QWidget) -> None:
        (width, height), name = self._shots.pop(0)
        suffix = "-dialog" if widget is not self.window else ""
        path = self.folder / f"{name.lower()}{suffix}-{width}x{height}.png"
        saved = widget.grab().save(str(path))
        if widget is not self.window:
            widget.close()
        if not saved:
            self._log(f"could not write {path}")
            self._finish(1)
            return
        self.saved.append(path)
        self._log(f"saved {path}")
        self._next_page()

    # -- waiting --------------------------------------------------------------------------

    def _follow(self, job: Optional[Job], what: str, then: Callable) -> None:
        if job is None:
            self._log(f"{what} could not start")
            self._finish(1)
            return
        job.returned.connect(then)
        job.errored.connect(lambda exc: (self._log(f"{what} failed: {exc}"), self._finish(1)))
        job.aborted.connect(lambda: (self._log(f"{what} was cancelled"), self._finish(1)))

    def _when_idle(self, then: Callable[[], None]) -> None:
        """Call ``then`` once no background job has run for ``SETTLE_MS``."""
        if time.monotonic() > self._deadline:
            self._log("timed out waiting for background jobs")
            self._finish(1)
        elif self.window.context.jobs.active():
            QTimer.singleShot(POLL_MS, lambda: self._when_idle(then))
        else:
            QTimer.singleShot(SETTLE_MS, lambda: self._then_if_still_idle(then))

    def _then_if_still_idle(self, then: Callable[[], None]) -> None:
        if self.window.context.jobs.active():  # a page started another job while settling
            self._when_idle(then)
        else:
            then()

    def _finish(self, code: int) -> None:
        self.window.close()
        if self._scratch is not None:
            self._scratch.cleanup()
        self.done.emit(code)

    @staticmethod
    def _log(line: str) -> None:
        print(f"screenshots: {line}", file=sys.stderr, flush=True)


def _rejected_rows_dialog(window: MainWindow) -> QWidget:
    from studio.dialogs.rejected_dialog import RejectedRowsDialog
    from core.importing import import_history

    events = next(entry for entry in import_history(window.context.engine.workspace) if entry["kind"] == "events")
    dialog = RejectedRowsDialog(window.context, events["id"], Path(events["source_path"]).name, window)
    dialog.open()
    return dialog


def _error_dialog(window: MainWindow) -> QWidget:
    from core.importing import RejectedRow

    example = RejectedRow(12, "timestamp", "unparseable time 'yesterday'", "").as_error(Path("events.csv"))
    return show_error(window, example, "Import")


DIALOGS: dict[str, Callable[[MainWindow], QWidget]] = {  # name -> open it over the window and return it
    "Import": lambda window: window.open_import_dialog(),
    "Export": lambda window: window.open_export_dialog(),
    "Rejected": _rejected_rows_dialog,
    "Error": _error_dialog,
}
