"""A workspace whose file (mode 444) and folder (555) this user cannot write: every reading command works.

Tests often run as root, whom file modes do not stop; the commands then run in a forked child
that has switched to the unprivileged user ``nobody`` (modules are loaded before the switch,
as the project's files may not be readable by that user), so the modes really bind.
"""

import io
import json
import os
import re
import shutil
import signal
import stat
import tempfile
from pathlib import Path

import pytest

import core.cli
import core.engine  # noqa: F401  (loaded before the fork: the child may not read the project's files)
import core.store.stats  # noqa: F401
import core.training  # noqa: F401
from core.engine import Engine
from core.training import TrainConfig
from engine_data import demo_workspace, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")  # a forked child must not need torch's worker threads
NOBODY = 65534
READ_ONLY_FILE, READ_ONLY_FOLDER = 0o444, 0o555


@pytest.fixture
def read_only_workspace():
    """A trained workspace in a folder everyone may read and no one but root may write."""
    folder = Path(tempfile.mkdtemp(prefix="nextpick-read-only-"))
    path = folder / "shop" / "shop.sqlite"
    path.parent.mkdir()
    engine = Engine(demo_workspace(path, 150, 60))
    engine.train(TrainConfig.for_data(engine.sequence_data(), model="pop"))
    user = engine.users_page(0, 1, order_by="activity")[0].user
    engine.workspace.close()
    shutil.rmtree(path.with_name("shop.sqlite.cache"))
    events = folder / "more.csv"
    events.write_text("user,item,time\nu1,i1,2024-01-01\n")
    for entry in [*path.parent.rglob("*"), path.parent]:
        entry.chmod(READ_ONLY_FOLDER if entry.is_dir() else READ_ONLY_FILE)
    folder.chmod(0o755)
    home = folder / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    yield path, user, events, home
    for entry in [path.parent, *path.parent.rglob("*")]:
        entry.chmod(stat.S_IRWXU)
    shutil.rmtree(folder)


def _run_as_a_user_who_cannot_write(commands: list[list[str]], home: Path) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of each command, run in a child process without root's rights."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            signal.alarm(120)  # a child that hangs ends, and the test fails instead of waiting forever
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            os.environ["HOME"] = str(home)
            results = []
            for argv in commands:
                out, err = io.StringIO(), io.StringIO()
                results.append((core.cli.main(argv, stdout=out, stderr=err), out.getvalue(), err.getvalue()))
            os.write(write_end, json.dumps(results).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return [tuple(r) for r in json.loads(data)]


def test_reading_commands_work_and_writing_ones_say_read_only(read_only_workspace):
    path, user, events, home = read_only_workspace
    before = {p: p.read_bytes() for p in path.parent.rglob("*") if p.is_file()}
    db = ["--db", str(path)]
    results = _run_as_a_user_who_cannot_write([
        ["stats", *db], ["runs", *db], ["recommend", "--user", user, "-k", "3", *db],
        ["interests", "--user", user, *db], ["evaluate", "1", *db],
        ["import", str(events), *db], ["train", "--model", "pop", *db],
        ["import", str(events), "--db", str(path.with_name("new.sqlite"))],
    ], home)
    (stats, runs, recommend, interests, evaluate, import_, train, new) = results
    for code, out, err in (stats, runs, recommend, interests, evaluate):
        assert code == 0 and all(re.match(r"\[\d+:\d\d\] ", line) for line in err.splitlines()), err  # progress only
    assert "events" in stats[1] and " done " in runs[1] and "next items for user" in recommend[1]
    assert "predicted next interests" in interests[1] and "(not stored: shop.sqlite is read-only here)" in evaluate[1]
    for code, _, err in (import_, train):
        message, hint = err.splitlines()[-2:]  # after any progress lines
        assert code == 1 and "is read-only here" in message and hint.startswith("hint: Browse it as it is")
    assert new[0] == 1 and new[2].splitlines() == [
        f"nextpick import: cannot create a workspace in {path.parent}: the folder is not writable",
        "hint: Choose a folder you are allowed to write to."]
    after = {p: p.read_bytes() for p in path.parent.rglob("*") if p.is_file()}
    assert after == before
