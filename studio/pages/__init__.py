"""The pages of the main window and the one interface they share.

A page is a ``StudioPage`` subclass constructed as ``Page(context)`` with a
``studio.context.StudioContext``. The main window puts pages in its sidebar in the order Data,
Train, Explore, Evaluate, using each class's ``title`` and ``tooltip``.

What a page does
    * Reads the engine from ``context.engine`` (may be None: show an empty state then) and never
      keeps it past a ``workspace_changed`` signal.
    * Connects to the context's signals and refreshes what it shows; it never calls another page.
    * Announces what it changed: ``context.announce_data_changed()`` after an import,
      ``context.announce_runs_changed()`` after a run ends or is deleted,
      ``context.set_active_run(run_id)`` when the user picks the active model.
    * Runs long jobs (import, training, evaluation, export) in the job process through
      ``context.run_in_process(function, *args, name=...)`` and short reads of many rows or a model
      through ``context.run(fn, *args, ...)`` (studio/workers.py); shows failures with
      ``studio.dialogs.errors.show_error(self, exc)``.
    * Fills itself with real content once the workspace has data, without clicks (Explore selects
      the first user, Evaluate lists the runs): ``--screenshots`` and first launches rely on it.
    * Sets a tooltip on every control it adds.

``page_shown()`` is called by the main window each time the page becomes the visible one; pages
that defer expensive refreshes until seen override it. ``paint_when_seen(paint)`` paints now when
the page is on screen, else when it next shows.
"""

from __future__ import annotations

from typing import Callable, Optional

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from studio.context import StudioContext


class StudioPage(QWidget):
    """Base of every page: a titled widget that follows a ``StudioContext``."""

    title: str = ""  # sidebar label, e.g. "Data"
    tooltip: str = ""  # sidebar tooltip: what the page is for, in one line

    def __init__(self, context: StudioContext, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.context = context
        self.setObjectName(f"{type(self).__name__}")
        self._unseen_paints: dict[str, Callable[[], None]] = {}

    def lay_out_side_by_side(self, side: QWidget, main: QWidget, widths: tuple[int, int]) -> None:
        """A narrow ``side`` pane left of the ``main`` one, which takes any extra width; both resizable."""
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(side)
        splitter.addWidget(main)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes(list(widths))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.addWidget(splitter)

    def answers_now(self, job: object, latest: object) -> bool:
        """Only the latest read or test may change the page, and not once the page is gone: a worker
        or the job process can answer after another one started, or after the window closed."""
        return job is latest and shiboken6.isValid(self)

    def page_shown(self) -> None:
        """The page just became visible; the default needs nothing."""

    def paint_when_seen(self, paint: Callable[[], None]) -> None:
        """Call ``paint`` now if the page is on screen, else once it shows (the latest call of each
        ``paint`` only). Filling a page nobody sees cost the window as much as filling one in front:
        at 25M events the Evaluate page's chart behind the Explore page held it 0.3-0.5 s as a
        workspace opened."""
        if self.isVisible():
            paint()
        else:
            self._unseen_paints[getattr(paint, "__name__", repr(paint))] = paint

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        paints, self._unseen_paints = self._unseen_paints, {}
        for paint in paints.values():
            paint()
