"""Background jobs: progress reaches the GUI thread, cancel stops the job, errors become signals;
the same for jobs in the job process, including one whose process dies."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QThread, QThreadPool
from PySide6.QtWidgets import QWidget

from core.jobs import JobCall, JobProcessDied
from core.progress import Progress, RateMeter
from studio.dialogs.errors import describe_error
from studio.workers import JobRunner


def count_to(n, pause_s=0.0, progress=None, cancel=None):
    meter = RateMeter(n)
    for done in range(1, n + 1):
        cancel.raise_if_cancelled()
        time.sleep(pause_s)
        progress(meter.report("count", done, f"{done} of {n}", loss=1.0 / done))
    return n


@pytest.fixture
def runner(qtbot):
    runner = JobRunner()
    yield runner
    runner.cancel_all()
    runner.wait_all(timeout_s=10)


def test_progress_and_result_arrive_in_the_gui_thread(qtbot, runner):
    gui_thread = QThread.currentThread()
    seen_threads, reports = [], []
    job = runner.start(count_to, 5, 0.01)
    job.progress.connect(lambda report: (reports.append(report), seen_threads.append(QThread.currentThread())))
    results = []
    job.returned.connect(results.append)
    with qtbot.waitSignal(job.finished, timeout=5000):
        pass
    assert results == [5]
    assert [r.done for r in reports] == [1, 2, 3, 4, 5]  # reports with metrics are never coalesced
    assert all(isinstance(r, Progress) and r.metrics["loss"] == pytest.approx(1 / r.done) for r in reports)
    assert len(seen_threads) == 5 and all(t == gui_thread for t in seen_threads)
    assert runner.active() == []


def test_a_job_starts_after_the_window_has_painted_what_was_pending(qtbot):
    """Started before the repaint, a worker's Python shared the interpreter lock with the paint."""
    order = []

    class Painted(QWidget):
        def paintEvent(self, event):  # noqa: N802 - Qt's name
            order.append("painted")

    class Pool(QThreadPool):
        def start(self, runnable, priority=0):
            order.append("started")
            super().start(runnable, priority)

    widget = Painted()
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.wait(50)
    runner = JobRunner(pool=Pool())
    order.clear()
    widget.update()
    job = runner.start(lambda: None, progress=False, cancel=False)
    with qtbot.waitSignal(job.finished, timeout=5000):
        pass
    assert order[:2] == ["painted", "started"]


def test_frequent_reports_without_metrics_are_coalesced_but_the_last_one_arrives(qtbot, runner):
    def chatty(progress=None, cancel=None):
        for done in range(1, 20_001):
            progress(Progress("scan", done, 20_000))

    reports = []
    job = runner.start(chatty)
    job.progress.connect(reports.append)
    with qtbot.waitSignal(job.finished, timeout=10_000):
        pass
    assert 1 <= len(reports) < 2000
    assert reports[-1].done == 20_000


def test_cancel_stops_the_job_and_emits_aborted_not_returned(qtbot, runner):
    started = threading.Event()

    def wait_for_cancel(progress=None, cancel=None):
        started.set()
        while True:
            cancel.raise_if_cancelled()
            time.sleep(0.005)

    finished = []
    job = runner.start(wait_for_cancel)
    job.returned.connect(finished.append)
    qtbot.waitUntil(started.is_set, timeout=5000)
    with qtbot.waitSignals([job.aborted, job.finished], timeout=5000, order="strict"):
        job.cancel()
    assert not job.running and finished == []


def test_an_exception_becomes_the_failed_signal(qtbot, runner):
    def broken(path, progress=None, cancel=None):
        raise FileNotFoundError(2, "No such file", path)

    job = runner.start(broken, "/nowhere/events.csv")
    with qtbot.waitSignal(job.errored, timeout=5000) as failed:
        pass
    exc = failed.args[0]
    assert isinstance(exc, FileNotFoundError) and exc.filename == "/nowhere/events.csv"


def test_functions_without_progress_or_cancel_parameters_run_plain(qtbot, runner):
    job = runner.start(sorted, [3, 1, 2], progress=False, cancel=False, reverse=True)
    assert not job.can_cancel
    with qtbot.waitSignal(job.returned, timeout=5000) as finished:
        pass
    assert finished.args == [[3, 2, 1]]


def test_a_job_whose_window_closed_under_it_ends_quietly():
    import shiboken6

    from studio.workers import Job

    job = Job(lambda progress: progress(Progress("step", 1, 2)) or 42, cancel=False)
    shiboken6.delete(job)  # what closing the window does to a Job its pool thread still holds
    job.run()  # emitting on it raised "Signal source has been deleted" in the pool thread
    assert not job.running


def test_a_job_cancelled_before_it_started_never_runs(qtbot, runner):
    calls = []
    job = runner.start(lambda progress=None, cancel=None: calls.append(1))
    job.cancel()
    with qtbot.waitSignal(job.aborted, timeout=5000):
        pass
    assert calls == []


# -- jobs in the job process: functions of the job process take the engine first ----------------

def count_in_process(engine, n, progress=None, cancel=None):
    for done in range(1, n + 1):
        progress(Progress("count", done, n, f"{done} of {n}", metrics={"loss": 1.0 / done}))
    return os.getpid()


def refuse_in_process(engine, progress=None, cancel=None):
    from core.errors import UsageError

    raise UsageError("run #7 was started on a time split", "Start a new run for another split.")


def exit_in_process(engine, progress=None, cancel=None):
    os._exit(5)


def wait_in_process(engine, progress=None, cancel=None):
    progress(Progress("wait", message="waiting"))
    while True:
        cancel.raise_if_cancelled()
        time.sleep(0.01)


@pytest.fixture
def in_process(qtbot, tmp_path):
    runner = JobRunner()  # with the studio's job process, shared with the other studio tests

    def start(function, *args, name="test"):
        return runner.start_in_process(JobCall(function, tmp_path / "workspace.sqlite", args, name=name, text=False))
    yield start
    runner.cancel_all()
    runner.wait_all(timeout_s=30)


def test_a_process_job_reports_to_the_gui_thread_and_returns(qtbot, in_process):
    gui_thread, seen = QThread.currentThread(), []
    job = in_process(count_in_process, 3)
    job.progress.connect(lambda report: seen.append((report.done, QThread.currentThread() == gui_thread)))
    returned = []
    job.returned.connect(returned.append)
    with qtbot.waitSignals([job.returned, job.finished], timeout=120_000, order="strict"):
        pass
    assert seen == [(1, True), (2, True), (3, True)]
    assert len(returned) == 1 and returned[0] != os.getpid()  # it ran in another process


def test_a_process_job_that_raises_is_errored_with_its_message_and_hint(qtbot, in_process):
    job = in_process(refuse_in_process)
    errors = []
    job.errored.connect(errors.append)
    with qtbot.waitSignals([job.errored, job.finished], timeout=120_000, order="strict"):
        pass
    text = describe_error(errors[0], "Training")
    assert (text.what, text.next_step, text.details) == (
        "Run #7 was started on a time split.", "Start a new run for another split.", "")


def test_a_process_that_dies_is_errored_and_the_next_job_runs(qtbot, in_process):
    job = in_process(exit_in_process, name="training")
    errors = []
    job.errored.connect(errors.append)
    with qtbot.waitSignals([job.errored, job.finished], timeout=120_000, order="strict"):
        pass
    exc, = errors
    assert isinstance(exc, JobProcessDied)
    assert describe_error(exc, "Training").what == "The training process ended unexpectedly (exit code 5)."
    again = in_process(count_in_process, 3)
    with qtbot.waitSignal(again.returned, timeout=120_000):
        pass


def test_cancel_stops_a_process_job_with_aborted(qtbot, in_process):
    job = in_process(wait_in_process)
    returned = []
    job.returned.connect(returned.append)
    job.progress.connect(lambda report: job.cancel())
    with qtbot.waitSignals([job.aborted, job.finished], timeout=120_000, order="strict"):
        pass
    assert returned == [] and not job.running


class WaitingServer:
    """A job process stand-in whose jobs run until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def run(self, call, progress=None, cancel=None):
        self.release.wait(10)
        return call


def test_jobs_of_the_job_process_leave_the_pool_to_the_window_s_reads(qtbot):
    pool = QThreadPool()
    pool.setMaxThreadCount(1)
    server = WaitingServer()
    runner = JobRunner(pool=pool, server=server)
    relayed = [runner.start_in_process(JobCall(count_to, Path("shop.sqlite"), name=name)) for name in ("import", "overview")]
    read = runner.start(lambda: "answer", progress=False, cancel=False)
    with qtbot.waitSignal(read.returned, timeout=5000) as answer:
        pass
    assert answer.args == ["answer"] and all(job.running for job in relayed)
    server.release.set()
    qtbot.waitUntil(lambda: not runner.active(), timeout=5000)
