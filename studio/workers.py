"""Run plain ``core`` functions on a thread pool and hear about them as queued Qt signals.

The engine's long jobs know nothing about Qt: they take a ``progress`` callable and a
``CancelToken`` (core/progress.py). A ``Job`` is the translation layer: it hands the job a
callback that emits ``progress`` and a token that ``Job.cancel()`` sets, and turns the job's
ending into exactly one of ``finished(result)``, ``failed(exception)`` or ``cancelled()``,
followed by ``ended()``. The signals are emitted from the worker thread on an object that lives
in the GUI thread, so Qt queues them: slots always run in the GUI thread and the window never
waits on the job.

Usage from a page::

    job = context.run(engine.import_files, path, options=opts)   # starts on the next loop turn
    job.progress.connect(self._on_progress)     # core.progress.Progress
    job.finished.connect(self._on_imported)     # the function's return value
    job.failed.connect(lambda exc: show_error(self, exc, "Import failed"))
    cancel_button.clicked.connect(job.cancel)
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, QTimer, Signal

from core.progress import Cancelled, CancelToken, Progress

# Reports closer together than this are coalesced (latest wins) so that a job reporting every
# few microseconds cannot flood the event loop. Reports carrying metrics are never dropped:
# they are the points of the training curves.
PROGRESS_INTERVAL_S = 0.05

# Niceness of the pool threads (Linux, where nice is per thread). Measured with
# benchmarks/bench_gui.py --watchdog on 2 cores: during training the GUI thread was never
# waiting for the GIL (torch releases it in every op) but for a CPU, shared at equal priority
# with torch's intra-op threads, so repainting the live curves (~30 ms of work) took 100-230 ms.
# A niced worker still gets every idle cycle, and torch's helper threads, started from the
# worker, inherit its niceness.
WORKER_NICENESS = 10

# How often a thread holding the GIL hands it over (Python's default is 5 ms). The GUI thread
# drops the GIL in most Qt calls while it paints, and each time waits up to this long to get it
# back from a busy worker: at 5 ms a 30 ms repaint of the charts took 100-140 ms.
GIL_SWITCH_INTERVAL_S = 0.0005


def freeze_long_lived_objects() -> None:
    """Leave every object alive now out of future garbage collections.

    The modules the studio loads (Qt, pyqtgraph, pandas, torch) leave ~400k objects that each
    full collection walked while holding the GIL: 65-230 ms, whichever thread triggered it, the
    longest freezes of the window during an import (gc.callbacks around bench_gui.py). Called
    when a workspace's engine is loaded, later collections walk only what was made since. Only
    the first call freezes: frozen objects are still freed when their last reference goes, but
    a reference cycle among them never is, and by a later call they would include the workspace
    being closed.
    """
    if not gc.get_freeze_count():
        gc.freeze()


class Job(QObject):
    """One background call of a core function; lives in the GUI thread, runs in the pool."""

    progress = Signal(object)  # core.progress.Progress
    finished = Signal(object)  # the function's return value
    failed = Signal(object)  # the exception the function raised
    cancelled = Signal()  # the function raised core.progress.Cancelled
    ended = Signal()  # after any of the three above: re-enable buttons here

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
        """Ask the job to stop at its next check; it ends with ``cancelled()``."""
        self.token.cancel()

    def start(self) -> None:
        """Hand the job to the pool (once). ``JobRunner.start`` schedules this for the next
        event-loop turn, so that the caller's connections exist before any signal is emitted:
        a signal emitted before a slot is connected is never delivered to it."""
        if not self._started:
            self._started = True
            self._pool.start(_Runnable(self))

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
            self.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the GUI
            self.failed.emit(exc)
        else:
            self.finished.emit(result)
        finally:
            self._done.set()
            self.ended.emit()

    def _report(self, report: Progress) -> None:
        now = time.perf_counter()
        if report.metrics or now - self._last_emit >= PROGRESS_INTERVAL_S or _is_last(report):
            self._last_emit = now
            self.progress.emit(report)


def _is_last(report: Progress) -> bool:
    return report.total is not None and report.done >= report.total


class _Runnable(QRunnable):
    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job
        self.setAutoDelete(True)

    def run(self) -> None:
        _lower_priority_of_this_thread()
        self.job.run()


def _lower_priority_of_this_thread() -> None:
    """Let the GUI thread win the CPU over background jobs (see ``WORKER_NICENESS``)."""
    QThread.currentThread().setPriority(QThread.Priority.LowPriority)  # honoured on Windows and macOS
    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        tid = threading.get_native_id()
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < WORKER_NICENESS:
                os.setpriority(os.PRIO_PROCESS, tid, WORKER_NICENESS)
        except OSError:  # not Linux-style per-thread nice, or not allowed: run at normal priority
            pass


class JobRunner(QObject):
    """Starts jobs on a thread pool and keeps them alive until they end."""

    job_started = Signal(object)  # Job
    job_ended = Signal(object)  # Job

    def __init__(self, pool: Optional[QThreadPool] = None, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.pool = pool or QThreadPool.globalInstance()
        self._jobs: list[Job] = []
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)

    def start(
        self, fn: Callable[..., Any], *args: Any, progress: bool = True, cancel: bool = True, **kwargs: Any
    ) -> Job:
        """Run ``fn(*args, progress=..., cancel=..., **kwargs)`` in the pool and return its Job.

        Pass ``progress=False`` / ``cancel=False`` for functions that do not take them.
        The job starts on the next event-loop turn: connect to its signals before returning
        to the event loop and none is missed.
        """
        job = Job(fn, args, kwargs, progress=progress, cancel=cancel, pool=self.pool)
        self._jobs.append(job)
        job.ended.connect(self._on_job_ended)
        self.job_started.emit(job)
        QTimer.singleShot(0, job.start)
        return job

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
