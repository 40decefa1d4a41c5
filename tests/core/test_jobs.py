"""Jobs in the job process: reports, endings, cancel and a process that dies, without any GUI.

One ``JobServer`` serves the module (its process imports torch once); the tests that end its
process hard come last and leave the next test a fresh one.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from core.errors import NextPickError, UserFileError
from core.jobs import JobCall, JobProcessDied, JobServer, RemoteTraceback, describe_exit
from core.progress import Cancelled, CancelToken, Progress


def count_to(engine, n, progress=None, cancel=None):
    for done in range(1, n + 1):
        cancel.raise_if_cancelled()
        progress(Progress("count", done, n, metrics={"loss": 1.0 / done}))
    return {"counted": n, "workspace": engine.workspace.path.name,
            "qt_modules": sorted(name for name in sys.modules if name.startswith("PySide6"))}


def refuse(engine, progress=None, cancel=None):
    raise UserFileError("/nowhere/events.csv", "read", FileNotFoundError(2, "No such file or directory"))


def divide_by_zero(engine, progress=None, cancel=None):
    return 1 / 0


def exit_hard(engine, code, progress=None, cancel=None):
    progress(Progress("work", message="about to go"))
    os._exit(code)


def kill_self(engine, progress=None, cancel=None):
    os.kill(os.getpid(), signal.SIGKILL)


def wait_for_cancel(engine, progress=None, cancel=None):
    progress(Progress("wait", message="waiting"))
    while True:
        cancel.raise_if_cancelled()
        time.sleep(0.01)


def ignore_cancel(engine, progress=None, cancel=None):
    progress(Progress("wait", message="not listening"))
    time.sleep(600)


@pytest.fixture(scope="module")
def server():
    server = JobServer(grace_s=1.0)
    yield server
    server.stop()


@pytest.fixture
def call(tmp_path):
    def make(function, *args, name="test", **kwargs):
        return JobCall(function, tmp_path / "workspace.sqlite", args, kwargs, name=name, text=False)
    return make


def test_reports_and_the_result_come_back_from_a_process_without_qt(server, call):
    reports = []
    result = server.run(call(count_to, 5), progress=reports.append)
    assert [r.done for r in reports] == [1, 2, 3, 4, 5] and reports[-1].metrics == {"loss": 0.2}
    assert result == {"counted": 5, "workspace": "workspace.sqlite", "qt_modules": []}
    assert server.pid != os.getpid()


def test_an_engine_error_arrives_with_its_message_and_hint(server, call):
    with pytest.raises(NextPickError) as caught:
        server.run(call(refuse))
    assert str(caught.value) == "cannot read /nowhere/events.csv: No such file or directory"
    assert caught.value.hint.startswith("Check that the file exists")


def test_a_bug_arrives_as_itself_with_the_job_process_traceback(server, call):
    with pytest.raises(ZeroDivisionError) as caught:
        server.run(call(divide_by_zero))
    assert isinstance(caught.value.__cause__, RemoteTraceback)
    assert "divide_by_zero" in str(caught.value.__cause__)


def test_cancel_reaches_the_job_and_the_process_stays(server, call):
    token, pid = CancelToken(), server.pid
    with pytest.raises(Cancelled):
        server.run(call(wait_for_cancel), progress=lambda report: token.cancel(), cancel=token)
    assert server.pid == pid and server.run(call(count_to, 1))["counted"] == 1


def test_a_job_that_ignores_cancel_is_ended_with_its_process_after_the_grace(server, call):
    token, pid = CancelToken(), server.pid
    with pytest.raises(Cancelled, match="did not stop"):
        server.run(call(ignore_cancel), progress=lambda report: token.cancel(), cancel=token)
    with pytest.raises(ProcessLookupError):  # ended and reaped; the next job starts another (below)
        os.kill(pid, 0)


def test_a_process_that_exits_hard_is_reported_and_replaced(server, call):
    with pytest.raises(JobProcessDied, match=r"the import process ended unexpectedly \(exit code 3\)"):
        server.run(call(exit_hard, 3, name="import"))
    assert server.run(call(count_to, 2))["counted"] == 2


def test_a_killed_process_reads_as_probably_out_of_memory(server, call):
    with pytest.raises(JobProcessDied) as caught:
        server.run(call(kill_self, name="training"))
    assert str(caught.value) == "the training process ended unexpectedly (exit code -9: probably out of memory)"
    assert "close other programs" in caught.value.hint and "lower the batch size" in caught.value.hint


def test_exit_codes_in_words():
    assert describe_exit(-signal.SIGSEGV) == "exit code -11: SIGSEGV"
    assert describe_exit(1) == "exit code 1"


def test_an_import_in_the_job_process_leaves_the_sequences_cached_for_the_window(tmp_path):
    """``import_and_prepare`` builds the sequence cache where the import ran; the window's engine then
    maps it instead of reading every event (called here in this process: the same function)."""
    from core.data.sequence_cache import cache_folder
    from core.demo import DemoConfig, write_demo_csv
    from core.engine import Engine
    from core.jobs import import_and_prepare
    from core.store import Workspace

    files = write_demo_csv(tmp_path / "csv", DemoConfig(n_users=30, n_items=20, n_categories=3))
    engine = Engine(Workspace.open(tmp_path / "shop.sqlite"), text=False)
    stages = []
    report = import_and_prepare(engine, files.events, items=files.items, progress=lambda r: stages.append(r.stage))
    assert report.rows_accepted and stages[-1] == "prepare"
    cached = list(cache_folder(engine.workspace.path).glob(f"sequences-{engine.workspace.content_hash()}-*"))
    assert len(cached) == 1
    engine.workspace.close()
