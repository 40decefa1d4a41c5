"""Engine jobs in a process of their own, with ``core.progress``'s protocol carried over a pipe.

The studio's window process should only paint. An import, a training run or an evaluation in one
of its threads shares its interpreter (the GIL: the window waits for the job's every C call),
its garbage collections and its memory; a job that crashes or runs out of memory takes the
window with it. Here jobs run in a job process instead: ``JobServer`` starts it with
multiprocessing's ``spawn`` method (a fresh interpreter; forking a process with Qt's threads is
unsafe), it imports the engine's modules once (torch: 4 CPU-seconds, 13 s on a busy 2-core
machine) and then runs every job it is sent in a thread of its own, on an engine it opens on
the job's workspace. One long-lived process rather than one per job, so a job starts at once.

``JobServer.run(call, progress, cancel)`` is itself a plain core job: it sends ``call`` to the
process and hands each report to ``progress``; a cancelled token is passed on, and a job still
running ``CANCEL_GRACE_S`` later is ended with its process. It returns what the job returned,
raises what it raised (the job process's traceback as ``__cause__``), ``Cancelled``, or
``JobProcessDied`` when the process ended under the job (killed, out of memory, a crash in C).

Messages (pickled by multiprocessing, between this process and its own child only):
    to the job process     ("start", job_id, JobCall) | ("cancel", job_id)
    from the job process   (job_id, "progress", Progress) | (job_id, "returned", value)
                           | (job_id, "aborted", None) | (job_id, "errored", (exception, traceback text))
"""

from __future__ import annotations

import itertools
import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from core.errors import NextPickError
from core.progress import Cancelled, CancelToken, ProgressCallback, emit

# How long a cancelled job may take to reach its next check (a training batch, an import block)
# before its process is ended: long enough for a checkpoint or a rollback to finish.
CANCEL_GRACE_S = 15.0
_POLL_S = 0.1
_STOP_WAIT_S = 5.0
# multiprocessing's Popen.poll is not thread-safe: when the reader thread and a job's thread both
# wait for one ended process, the one whose waitpid loses the race sees it as still alive until the
# other has stored its exit code, and a new job could then be sent to the dead process. Every look
# at a job process's life goes through this lock.
_REAP_LOCK = threading.Lock()


@dataclass(frozen=True)
class JobCall:
    """``function(engine, *args, progress=..., cancel=..., **kwargs)`` in the job process, on
    ``Engine(Workspace.open(workspace), text_model, text=text)``.

    ``function`` is a module-level function of ``core`` (an ``Engine`` method such as
    ``Engine.train``, or one below), sent by name; ``name`` is how a person calls the job, for
    the message when its process dies ("the training process ended unexpectedly").
    ``progress=False`` / ``cancel=False`` for a function that does not take them.
    """

    function: Callable[..., Any]
    workspace: Path
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    text_model: Optional[str] = None
    text: bool = True
    name: str = "job"
    progress: bool = True
    cancel: bool = True


class JobProcessDied(NextPickError):
    """The job process ended while the job ran: killed, out of memory, or a crash in C code."""

    # True of every job (an import, a training run, a significance test, the demo shop's generation).
    hint = ("Nothing in the workspace was lost: an import is undone, a stopped training run can be "
            "resumed. If the computer ran out of memory, close other programs (for a training run, also "
            "lower the batch size or the model size), then start it again.")

    def __init__(self, name: str, exitcode: Optional[int]) -> None:
        super().__init__(f"the {name} process ended unexpectedly ({describe_exit(exitcode)})")
        self.exitcode = exitcode


def describe_exit(exitcode: Optional[int]) -> str:
    """A process's exit code in words: -9 (SIGKILL) is what the kernel's out-of-memory killer sends."""
    if exitcode is None:
        return "no exit code"
    if exitcode == -signal.SIGKILL:
        return f"exit code {exitcode}: probably out of memory"
    if exitcode < 0:
        try:
            return f"exit code {exitcode}: {signal.Signals(-exitcode).name}"
        except ValueError:
            pass
    return f"exit code {exitcode}"


class RemoteTraceback(Exception):
    """The job process's traceback, set as the ``__cause__`` of the exception raised here (as
    ``concurrent.futures`` does), so a bug's details show where it happened."""

    def __str__(self) -> str:
        return str(self.args[0])


class JobServer:
    """The job process, seen from the window's process: started once, restarted after it died.

    ``niceness``: the job process runs at this lower CPU priority (where the OS has ``nice``), so
    on a machine with few cores the window's thread is scheduled before a job's compute threads.
    """

    def __init__(self, niceness: int = 0, grace_s: float = CANCEL_GRACE_S) -> None:
        self.niceness = niceness
        self.grace_s = grace_s
        self._lock = threading.Lock()
        self._process = None
        self._conn = None
        self._jobs: dict[int, tuple[queue.Queue, Any]] = {}  # job id -> (its answers, its process)
        self._ids = itertools.count(1)

    def start(self) -> None:
        """Start the job process if it is not running, without waiting for it to be ready."""
        with self._lock:
            self._ensure_running()

    @property
    def pid(self) -> Optional[int]:
        return None if self._process is None else self._process.pid

    def run(self, call: JobCall, progress: Optional[ProgressCallback] = None,
            cancel: Optional[CancelToken] = None) -> Any:
        """Run ``call`` in the job process and wait for its ending (see the module's docstring)."""
        answers: queue.Queue = queue.Queue()
        with self._lock:
            self._ensure_running()
            job_id, process = next(self._ids), self._process
            self._jobs[job_id] = (answers, process)
            self._send(("start", job_id, call))
        try:
            return self._follow(job_id, call, answers, process, progress, cancel)
        finally:
            with self._lock:
                self._jobs.pop(job_id, None)

    def stop(self) -> None:
        """End the job process now (its jobs end with ``JobProcessDied``); the next job starts another."""
        with self._lock:
            process = self._process
        if process is not None:
            _end_process(process)

    def _ensure_running(self) -> None:
        if self._process is not None and _alive(self._process):
            return
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(target=serve, args=(theirs, self.niceness), name="nextpick-jobs", daemon=True)
        process.start()
        theirs.close()
        self._process, self._conn = process, ours
        threading.Thread(target=self._read, args=(process, ours), name="nextpick-jobs-reader", daemon=True).start()

    def _send(self, message: tuple) -> None:
        """Send under the lock (several jobs' threads share the pipe). A process that has just died
        is noticed by ``_read``, which ends its jobs."""
        try:
            self._conn.send(message)
        except OSError:
            pass

    def _read(self, process, conn) -> None:
        """Hand each message to its job until the process's end of the pipe closes, then tell the
        jobs it still had that it died."""
        while True:
            try:
                job_id, kind, payload = conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                answers = self._jobs.get(job_id, (None,))[0]
            if answers is not None:
                answers.put((kind, payload))
        _wait_for_end(process, _STOP_WAIT_S)
        conn.close()
        with self._lock:
            orphans = [answers for answers, owner in self._jobs.values() if owner is process]
        with _REAP_LOCK:
            exitcode = process.exitcode
        for answers in orphans:
            answers.put(("died", exitcode))

    def _follow(self, job_id: int, call: JobCall, answers: queue.Queue, process, progress, cancel) -> Any:
        cancelled_at = None
        while True:
            if cancel is not None and cancel.cancelled and cancelled_at is None:
                cancelled_at = time.monotonic()
                with self._lock:
                    self._send(("cancel", job_id))
            if cancelled_at is not None and time.monotonic() - cancelled_at > self.grace_s:
                _end_process(process)  # the job did not stop by itself: its process goes with it
                raise Cancelled(f"the {call.name} did not stop within {self.grace_s:.0f} s and was ended")
            try:
                kind, payload = answers.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if kind == "progress":
                emit(progress, payload)
            elif kind == "returned":
                return payload
            elif kind == "aborted":
                raise Cancelled("cancelled by the user")
            elif kind == "errored":
                exc, text = payload
                raise exc from RemoteTraceback(text)
            elif cancelled_at is not None:  # died while stopping
                raise Cancelled("cancelled by the user")
            else:
                raise JobProcessDied(call.name, payload)


def _end_process(process) -> None:
    process.terminate()
    if not _wait_for_end(process, _STOP_WAIT_S):
        process.kill()
        _wait_for_end(process, _STOP_WAIT_S)


def _wait_for_end(process, timeout: float) -> bool:
    """Wait up to ``timeout`` for ``process`` to end and reap it; whether it has ended. Waits on its
    sentinel outside the lock, so a second waiter is not held up for the whole timeout."""
    if multiprocessing.connection.wait([process.sentinel], timeout):
        with _REAP_LOCK:
            process.join()
    return not _alive(process)


def _alive(process) -> bool:
    with _REAP_LOCK:
        return process.is_alive()


# -- the job process ---------------------------------------------------------------------------

def serve(conn, niceness: int = 0) -> None:
    """The job process's main: run each job it is sent in a thread of its own, until the window's
    process closes the pipe (then every job still running is cancelled and given time to stop)."""
    if niceness and hasattr(os, "nice"):
        os.nice(niceness)  # before any thread starts: every thread of the process inherits it
    import core.engine  # noqa: F401  torch's seconds of import, paid before the first job rather than in it

    send_lock = threading.Lock()

    def send(message: tuple) -> None:
        with send_lock:
            conn.send(message)

    tokens: dict[int, CancelToken] = {}
    threads: list[threading.Thread] = []
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message[0] == "start":
            _, job_id, call = message
            tokens[job_id] = CancelToken()
            thread = threading.Thread(target=_run_job, args=(job_id, call, tokens, send), daemon=True)
            threads.append(thread)
            thread.start()
        elif message[0] == "cancel" and message[1] in tokens:
            tokens[message[1]].cancel()
    for token in list(tokens.values()):
        token.cancel()
    for thread in threads:
        thread.join(CANCEL_GRACE_S)


def _run_job(job_id: int, call: JobCall, tokens: dict[int, CancelToken], send: Callable[[tuple], None]) -> None:
    from core.engine import Engine
    from core.store import Workspace

    engine = None
    try:
        engine = Engine(Workspace.open(call.workspace), call.text_model, text=call.text)
        kwargs = dict(call.kwargs)
        if call.progress:
            kwargs["progress"] = lambda report: send((job_id, "progress", report))
        if call.cancel:
            kwargs["cancel"] = tokens[job_id]
        result = call.function(engine, *call.args, **kwargs)
    except Cancelled:
        send((job_id, "aborted", None))
    except BaseException as exc:  # noqa: BLE001 - every ending must reach the window
        send((job_id, "errored", (_portable(exc), traceback.format_exc())))
    else:
        try:
            send((job_id, "returned", result))
        except Exception as exc:  # noqa: BLE001 - a result that cannot cross the pipe is a bug to report
            send((job_id, "errored", (_portable(exc), traceback.format_exc())))
    finally:
        tokens.pop(job_id, None)
        if engine is not None:
            engine.workspace.close()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` when it crosses the pipe intact; otherwise the family's words (message and hint), or
    its type and text for a bug. Exceptions whose constructor takes other arguments than their
    message cannot be rebuilt from what pickle keeps of them."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any failure to cross means: send its words instead
        if isinstance(exc, NextPickError):
            return NextPickError(exc.message, exc.hint)
        return RuntimeError(f"{type(exc).__name__}: {exc}")


# -- jobs that are more than one engine call -----------------------------------------------------

def import_and_prepare(engine, events=None, items=None, users=None, options=None, progress=None, cancel=None):
    """``core.caches.import_and_prepare`` into the engine's workspace: the import, then the sequences, the
    user directory and the items' followers every page reads next, built and cached on disk, so the window's process maps
    them instead of reading every event."""
    from core.caches import import_and_prepare as import_into_workspace

    try:
        return import_into_workspace(engine.workspace, events, items, users, options, progress, cancel)
    finally:
        engine.refresh()


def prepare_demo(engine, config=None, progress=None, cancel=None) -> None:
    """The demo shop (``core.demo``, ``config`` or the default) generated and imported into the job's
    workspace unless it holds events already, then the sequences every page reads next: seconds of
    generation and import the window's process must not share."""
    from core.demo import DemoConfig, create_demo_workspace

    if not engine.workspace.counts()["events"]:
        create_demo_workspace(engine.workspace.path, config or DemoConfig(), progress, cancel).close()
    engine.sequence_data()


def data_overview(engine) -> tuple:
    """What the studio's Data page shows: ``Engine.overview()`` (one scan of every event) and the
    import history, newest first."""
    from core.importing import import_history

    return engine.overview(), import_history(engine.workspace)


def evaluate_runs(engine, run_ids: list[int], eval_mode=None, progress=None, cancel=None) -> dict[int, dict]:
    """Evaluate each run under ``eval_mode``, one after another; the reports by run (a read-only
    workspace cannot store them, so they are returned)."""
    return {run_id: engine.evaluate(run_id, progress=progress, cancel=cancel, eval_mode=eval_mode)
            for run_id in run_ids}


def embed_item_text(engine, progress=None, cancel=None) -> bool:
    """``Engine.embed_items`` without sending the index back: its vectors are cached in the
    workspace, where the window's engine reads them (``Engine.text_index``). False without the
    text extra."""
    if not engine.text_available():
        return False
    engine.embed_items(progress=progress, cancel=cancel)
    return True
