"""Background jobs: progress reaches the GUI thread, cancel stops the job, errors become signals."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest
from PySide6.QtCore import QThread

from core.progress import Progress, RateMeter
from studio.workers import WORKER_NICENESS, JobRunner


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


def test_cancel_stops_the_job_and_emits_cancelled_not_finished(qtbot, runner):
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


def test_a_job_cancelled_before_it_started_never_runs(qtbot, runner):
    calls = []
    job = runner.start(lambda progress=None, cancel=None: calls.append(1))
    job.cancel()
    with qtbot.waitSignal(job.aborted, timeout=5000):
        pass
    assert calls == []


def thread_niceness(progress=None, cancel=None) -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is a Linux feature")
def test_jobs_run_at_a_lower_priority_than_the_gui_thread(qtbot, runner):
    job = runner.start(thread_niceness)
    with qtbot.waitSignal(job.returned, timeout=5000) as finished:
        pass
    gui_niceness = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert finished.args[0] >= max(WORKER_NICENESS, gui_niceness)  # a niced test run starts above it
