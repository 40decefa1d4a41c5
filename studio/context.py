"""What every page shares: the open engine, the job runner, and change signals.

Pages follow the model (napari-style): they read ``context.engine`` and connect to the signals
below; the engine never calls a widget. Whoever changes the workspace announces it here (the
main window after opening a workspace, the Data page after an import, the Train page after a
run ends or is deleted), and every page that shows that state refreshes itself.

Signals
    workspace_changed()        another workspace (or none) is open. Implies that data, runs and
                               the active run changed too: those signals are NOT emitted as well,
                               so pages refresh everything on this one (and ``read_only``, which
                               pages that write check to disable their buttons).
    data_changed()             events/items/users changed in the open workspace (an import).
    runs_changed()             a run was added, finished, or deleted.
    active_run_changed(object) the active run id (int), or None when there is none.
    events_added()             the log of the open workspace grew, here or in another process (a
                               ``nextpick serve``, an import in another window): noticed by a poll
                               (``LOG_POLL_MS``); pages that show stored histories read them again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from PySide6.QtCore import QObject, QTimer, Signal

from studio.workers import Job, JobRunner

if TYPE_CHECKING:  # the engine module is heavy (torch); pages get it through the context
    from core.engine import Engine

LOG_POLL_MS = 1000  # how often the studio looks whether another process added events


class StudioContext(QObject):
    """The shared state handed to every page as ``Page(context)``."""

    workspace_changed = Signal()
    data_changed = Signal()
    runs_changed = Signal()
    active_run_changed = Signal(object)
    events_added = Signal()

    def __init__(self, jobs: Optional[JobRunner] = None, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.jobs = jobs or JobRunner(parent=self)
        self._engine: Optional["Engine"] = None
        self.trash: list = []  # runs deleted this session (``core.runs.trash.TrashedRun``), newest last: Undo restores them
        self._log_watch = None  # core.store.connections.ChangeWatch of the open workspace
        self._log_position = None
        self._log_timer = QTimer(self)
        self._log_timer.setInterval(LOG_POLL_MS)
        self._log_timer.timeout.connect(self.poll_log)

    @property
    def engine(self) -> Optional["Engine"]:
        """The open workspace's engine, or None while no workspace is open."""
        return self._engine

    @property
    def read_only(self) -> bool:
        """The open workspace cannot be written here: pages browse it and disable what writes."""
        return self._engine is not None and self._engine.workspace.read_only

    def set_engine(self, engine: Optional["Engine"]) -> None:
        """Switch to another workspace (closing the previous one) and tell every page."""
        if engine is not self._engine:
            self.empty_trash()
        previous, self._engine = self._engine, engine
        self._watch_log(engine)
        if previous is not None and previous is not engine:
            previous.workspace.close()
        self.workspace_changed.emit()

    def _watch_log(self, engine: Optional["Engine"]) -> None:
        if self._log_watch is not None:
            self._log_watch.close()
        self._log_watch = engine.workspace.change_watch() if engine is not None else None
        self._log_position = engine.log_position() if engine is not None else None
        if engine is None:
            self._log_timer.stop()
        else:
            self._log_timer.start()

    def poll_log(self) -> None:
        """Announce ``events_added`` when the log's end moved. On the GUI thread: SQLite's data
        version (``ChangeWatch``) costs microseconds and reads no table; only after a commit is the
        log's end read, two indexed max() lookups."""
        if self._log_watch is None or not self._log_watch.changed():
            return
        position = self._engine.log_position()
        if position != self._log_position:
            self._log_position = position
            self.events_added.emit()

    def run(self, fn: Callable[..., Any], *args: Any, progress: bool = True, cancel: bool = True, **kwargs: Any) -> Job:
        """Start ``fn`` in the background; see ``studio.workers.JobRunner.start``."""
        return self.jobs.start(fn, *args, progress=progress, cancel=cancel, **kwargs)

    def run_in_process(self, function: Callable[..., Any], *args: Any, name: str, progress: bool = True,
                       cancel: bool = True, **kwargs: Any) -> Job:
        """Run ``function(engine, *args, progress=, cancel=, **kwargs)`` in the job process on the open
        workspace, with this engine's item-text setting (``core.jobs.JobCall``); ``name`` says what
        the job is to a person ("training") when its process dies."""
        from core.jobs import JobCall

        engine = self.engine
        call = JobCall(function, engine.workspace.path, args, kwargs, engine.text_model.path,
                       engine.text_available(), name, progress, cancel)
        return self.jobs.start_in_process(call)

    def announce_data_changed(self) -> None:
        """Another process (the job process) changed the data: the engine forgets what it read, then
        every page re-reads."""
        if self._engine is not None:
            self._engine.refresh()
        self.data_changed.emit()

    def announce_runs_changed(self) -> None:
        self.runs_changed.emit()

    def empty_trash(self) -> None:
        """Delete the trashed runs for good: the studio closes, or another workspace opens.
        What a crashed studio left in the workspace's trash goes too."""
        while self.trash and self._engine is not None:
            self._engine.empty_trash(self.trash.pop())
        self.trash.clear()
        if self._engine is not None:
            self._engine.sweep_trash()

    def set_active_run(self, run_id: Optional[int]) -> Optional[Job]:
        """Make ``run_id`` the workspace's active model, stored by the engine in a worker (the write
        may wait for another window's import: never on the window's thread), and tell every page
        once it is stored. Returns the Job, whose ``errored`` says why it was not (None: nothing to
        store, pages are told at once)."""
        engine = self._engine
        if engine is None or run_id is None:
            self.active_run_changed.emit(run_id)
            return None
        job = self.run(engine.set_active_run, run_id, progress=False, cancel=False)
        job.returned.connect(lambda _none: self._announce_active_run(engine, run_id))
        return job

    def _announce_active_run(self, engine: "Engine", run_id: int) -> None:
        if engine is self._engine:  # not after another workspace was opened meanwhile
            self.active_run_changed.emit(run_id)

