"""Run plain ``core`` functions in the background and hear about them as queued Qt signals.

The engine's long jobs know nothing about Qt: they take a ``progress`` callable and a
``CancelToken`` (core/progress.py). A ``Job`` is the translation layer: it hands the job a
callback that emits ``progress`` and a token that ``Job.cancel()`` sets, and says how the job
ended as Qt's and napari's workers do: exactly one of ``returned(result)``, ``errored(exception)``
or ``aborted()``, then ``finished()``, always. The signals are emitted from a pool thread on an
object that lives in the GUI thread, so Qt queues them: slots always run in the GUI thread and
the window never waits on the job.

Long jobs (import, training, evaluation, reading item text) run in the job process
(``core.jobs``): the pool thread only relays its reports, so the window's process keeps its
interpreter for painting. Short reads (a user's answer, the overview) run in the pool itself.

Usage from a page::

    job = context.run_in_process(Engine.import_files, path, name="import", options=opts)
    job.progress.connect(self._on_progress)     # core.progress.Progress
    job.returned.connect(self._on_imported)     # the function's return value
    job.errored.connect(lambda exc: show_error(self, exc, "Import failed"))
    cancel_button.clicked.connect(job.cancel)
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent, QObject, QRunnable, Qt, QThreadPool, Signal

from core.jobs import JobCall, JobServer
from core.progress import Cancelled, CancelToken, Progress

# Reports closer together than this are coalesced (latest wins) so that a job reporting every
# few microseconds cannot flood the event loop. Reports carrying metrics are never dropped:
# they are the points of the training curves.
PROGRESS_INTERVAL_S = 0.05

# The job process's niceness (where the OS has one): on 2 cores the window's thread otherwise
# waits for a CPU, shared at equal priority with training's compute threads, and repainting the
# live curves (~30 ms of work) took 100-230 ms. A niced job still gets every idle cycle.
JOB_NICENESS = 10

RELAY_THREADS = 16  # jobs of the job process relayed at once; the rest wait for a relay thread

_START = QEvent.Type(QEvent.registerEventType())  # a Job's own event: start now (see ``JobRunner._launch``)


class Job(QObject):
    """One background call of a core function; lives in the GUI thread, runs in the pool."""

    progress = Signal(object)  # core.progress.Progress
    returned = Signal(object)  # the function's return value
    errored = Signal(object)  # the exception the function raised
    aborted = Signal()  # the function raised core.progress.Cancelled
    finished = Signal()  # after any of the three above, always: re-enable buttons here

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple = (),
        kwargs: Optional[dict] = None,
        *,
        progress: bool = True,
        cancel: bool = True,
        pool: Optional[QThreadPool] = None,
    ) -> None:
        super().__init__()
        self.fn = fn
        self.name = "background job"  # how a person calls it ("training"), for messages about it
        self.args = args
        self.kwargs = dict(kwargs or {})
        self.token = CancelToken()
        self._pass_progress = progress
        self._pass_cancel = cancel
        self._last_emit = 0.0
        self._pool = pool or QThreadPool.globalInstance()
        self._started = False
        self._done = threading.Event()

    @property
    def can_cancel(self) -> bool:
        """Whether the function was handed the token, i.e. ``cancel()`` can stop it."""
        return self._pass_cancel

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def cancel(self) -> None:
        """Ask the job to stop at its next check; it ends with ``aborted()``."""
        self.token.cancel()

    def start(self) -> None:
        """Hand the job to the pool (once). ``JobRunner`` posts this for a later event-loop turn
        (``_launch``), so that the caller's connections exist before any signal is emitted: a
        signal emitted before a slot is connected is never delivered to it."""
        if not self._started:
            self._started = True
            self._pool.start(_Runnable(self))

    def event(self, event: QEvent) -> bool:
        if event.type() == _START:
            self.start()
            return True
        return super().event(event)

    def wait(self, timeout_s: Optional[float] = None) -> bool:
        """Block until the function returned (not until the queued signals were delivered)."""
        self.start()
        return self._done.wait(timeout_s)

    def run(self) -> None:
        """Call the function in the current thread; the pool calls this."""
        kwargs = dict(self.kwargs)
        if self._pass_progress:
            kwargs["progress"] = self._report
        if self._pass_cancel:
            kwargs["cancel"] = self.token
        try:
            self.token.raise_if_cancelled()  # cancelled before it ever started
            result = self.fn(*self.args, **kwargs)
        except Cancelled:
            self._emit(self.aborted)
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the GUI
            self._emit(self.errored, exc)
        else:
            self._emit(self.returned, result)
        finally:
            self._done.set()
            self._emit(self.finished)

    def _report(self, report: Progress) -> None:
        now = time.perf_counter()
        if report.metrics or now - self._last_emit >= PROGRESS_INTERVAL_S or _is_last(report):
            self._last_emit = now
            self._emit(self.progress, report)

    def _emit(self, signal, *args) -> None:
        """Emit, unless the window closed under a running job: Qt then deletes the Job's C++ side
        while the pool thread still holds it, and emitting raised "Signal source has been
        deleted" in that thread. Nobody is left to hear the job, so the news is dropped."""
        try:
            signal.emit(*args)
        except RuntimeError:
            if shiboken6.isValid(self):
                raise


def _is_last(report: Progress) -> bool:
    return report.total is not None and report.done >= report.total


class _Runnable(QRunnable):
    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job
        self.setAutoDelete(True)

    def run(self) -> None:
        self.job.run()


class JobRunner(QObject):
    """Starts jobs on a thread pool and keeps them alive until they end."""

    job_started = Signal(object)  # Job
    job_ended = Signal(object)  # Job

    def __init__(self, pool: Optional[QThreadPool] = None, parent: Optional[QObject] = None,
                 server: Optional[JobServer] = None) -> None:
        super().__init__(parent)
        self.pool = pool or QThreadPool.globalInstance()
        # Relays only wait on the job process's pipe; in the pool (as many threads as cores) two of
        # them (an import and the Data page's overview) left a user's answer queued behind them.
        self.relays = QThreadPool(self)
        self.relays.setMaxThreadCount(RELAY_THREADS)
        self.server = server or default_job_server()
        self._jobs: list[Job] = []

    def start(
        self, fn: Callable[..., Any], *args: Any, progress: bool = True, cancel: bool = True, **kwargs: Any
    ) -> Job:
        """Run ``fn(*args, progress=..., cancel=..., **kwargs)`` in the pool and return its Job.

        Pass ``progress=False`` / ``cancel=False`` for functions that do not take them.
        The job starts on the next event-loop turn: connect to its signals before returning
        to the event loop and none is missed.
        """
        return self._launch(Job(fn, args, kwargs, progress=progress, cancel=cancel, pool=self.pool))

    def _launch(self, job: Job) -> Job:
        """Keep ``job`` and start it once the window has painted what is pending: its start is posted
        at the low priority Qt posts repaints at, so it comes after them. Started first, a worker's Python
        shared the interpreter lock with the paint (an Explore answer's panes) and doubled its stall."""
        self._jobs.append(job)
        job.finished.connect(self._on_job_ended)
        self.job_started.emit(job)
        QCoreApplication.postEvent(job, QEvent(_START), Qt.EventPriority.LowEventPriority.value)
        return job

    def start_in_process(self, call: JobCall) -> Job:
        """Run ``call`` in the job process (``core.jobs``); a thread of ``relays`` relays its reports and
        ending. Only a call that takes a cancel token can be cancelled (``Job.can_cancel``)."""
        job = Job(self.server.run, (call,), cancel=call.cancel, pool=self.relays)
        job.name = call.name
        return self._launch(job)

    def warm_up(self) -> None:
        """Start the job process now, so that its seconds of import are over before the first job."""
        self.server.start()

    def active(self) -> list[Job]:
        """Jobs not yet over: still running, or their ending signals not yet delivered."""
        return list(self._jobs)

    def cancel_all(self) -> None:
        for job in self._jobs:
            job.cancel()

    def wait_all(self, timeout_s: Optional[float] = None) -> bool:
        """Block until every running job returned; used when the window closes."""
        deadline = None if timeout_s is None else time.perf_counter() + timeout_s
        for job in list(self._jobs):
            left = None if deadline is None else max(0.0, deadline - time.perf_counter())
            if not job.wait(left):
                return False
        return True

    def _on_job_ended(self) -> None:
        # The runner keeps a Python reference until here so a job nobody holds is not collected
        # mid-run; afterwards whoever still holds the Job may keep reading it.
        job = self.sender()
        if job in self._jobs:
            self._jobs.remove(job)
        self.job_ended.emit(job)


def run_in_thread(fn: Callable[..., Any], *args: Any, progress: bool = True, cancel: bool = True, **kwargs: Any) -> Job:
    """Start ``fn`` on the global pool through a process-wide runner (see ``JobRunner.start``)."""
    return _default_runner().start(fn, *args, progress=progress, cancel=cancel, **kwargs)


_DEFAULT: list[JobRunner] = []


def _default_runner() -> JobRunner:
    if not _DEFAULT:
        _DEFAULT.append(JobRunner())
    return _DEFAULT[0]


_SERVER: list[JobServer] = []


def default_job_server() -> JobServer:
    """The studio's one job process (started on first use or by ``JobRunner.warm_up``)."""
    if not _SERVER:
        _SERVER.append(JobServer(niceness=JOB_NICENESS))
    return _SERVER[0]
