"""Opening a workspace: readers never take the write lock, writers wait visibly, foreign files stay untouched."""

import hashlib
import sqlite3
import threading

import pytest

from core.importing import import_files
from core.store import ReadOnlyWorkspaceError, Workspace, WorkspaceBusyError, WorkspaceError
from core.store import schema
from cli_run import run


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def held(tmp_path):
    """(path, connection) of a workspace holding one user, whose write lock another connection holds
    with an uncommitted second user: an import in another window, half-way."""
    path = tmp_path / "shop.sqlite"
    with Workspace.open(path) as ws, ws.writing() as conn:
        conn.execute(schema.users.insert().values(id=1, external_id="committed"))
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO users (id, external_id) VALUES (2, 'uncommitted')")
    yield path, holder
    holder.rollback()
    holder.close()


def test_opening_and_reading_do_not_wait_for_a_writer(held):
    path, _ = held
    with Workspace.open(path, write_wait_s=0.2) as ws:  # used to block on rewriting schema_version
        assert ws.counts()["users"] == 1
        assert ws.users_frame()["external_id"].tolist() == ["committed"]


def test_a_write_says_it_waits_then_gives_up_with_a_clear_error(held, tmp_path):
    path, _ = held
    reports = []
    with Workspace.open(path, write_wait_s=0.6) as ws:
        with pytest.raises(WorkspaceBusyError, match=r"shop\.sqlite is busy: another window or command") as caught:
            ws.set_meta("active_run", "1", progress=reports.append)
        assert "\n" not in str(caught.value)
        events = tmp_path / "events.csv"
        events.write_text("user,item,time\nu1,i1,2024-01-01\n")
        with pytest.raises(WorkspaceError, match="busy"):
            import_files(ws, events=events, progress=reports.append)
    waits = [r for r in reports if r.stage == "waiting"]
    assert len(waits) == 2 and "waiting for the import" in waits[0].message and "shop.sqlite" in waits[0].message


def test_a_waiting_write_goes_ahead_when_the_other_writer_commits(held):
    path, holder = held
    reports = []
    with Workspace.open(path, write_wait_s=30) as ws:
        timer = threading.Timer(0.5, holder.commit)
        timer.start()
        ws.set_meta("active_run", "", progress=reports.append)
        timer.join()
        assert ws.counts()["users"] == 2 and ws.get_meta("active_run") == ""
    assert [r.stage for r in reports] == ["waiting"]


def test_an_unchanged_workspace_is_not_written_by_opening(tmp_path):
    path = tmp_path / "shop.sqlite"
    Workspace.open(path).close()
    before = _digest(path)
    with Workspace.open(path) as ws:
        assert ws.schema_version == schema.SCHEMA_VERSION and ws.counts()["events"] == 0
        wal = path.with_name(path.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0  # nothing written, not even the same version again
    assert _digest(path) == before


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_another_programs_database_is_refused_and_left_unchanged(tmp_path, capsys, journal):
    path = tmp_path / "other-app.sqlite"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA journal_mode={journal}")
    con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    con.execute("INSERT INTO notes (text) VALUES ('keep me')")
    con.commit()
    con.close()
    before, names = _digest(path), sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(WorkspaceError, match="another program .*no NextPick meta table.*left unchanged"):
        Workspace.open(path)
    events = tmp_path / "events.csv"
    events.write_text("user,item,time\nu1,i1,2024-01-01\n")
    for argv in (("stats", "--db", path), ("import", events, "--db", path)):
        code, out, err = run(capsys, *argv)
        message, hint = err.splitlines()
        assert code == 1 and "no NextPick meta table" in message and hint == "hint: Choose another workspace file, or create a new workspace."
    assert _digest(path) == before and sorted(p.name for p in tmp_path.iterdir()) == sorted(names + ["events.csv"])


def test_a_file_that_is_not_sqlite_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"hello, not a database\x00\x01")
    with pytest.raises(WorkspaceError, match="not an SQLite file"):
        Workspace.open(path)
    assert path.read_bytes() == b"hello, not a database\x00\x01"


def test_an_empty_file_becomes_a_workspace(tmp_path):
    path = tmp_path / "new.sqlite"
    path.touch()
    with Workspace.open(path) as ws:
        assert ws.schema_version == schema.SCHEMA_VERSION and ws.counts()["events"] == 0


@pytest.mark.parametrize("stored", ["0", "-3", "two", ""])
def test_a_schema_version_no_release_wrote_is_a_clear_error(tmp_path, stored):
    path = tmp_path / "w.sqlite"
    Workspace.open(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (stored,))
    con.commit()
    con.close()
    with pytest.raises(WorkspaceError, match=f"schema version {stored!r}, which no NextPick release wrote"):
        Workspace.open(path)


def test_a_folder_that_cannot_be_made_is_named_in_one_line_and_a_hint(tmp_path, capsys):
    blocker = tmp_path / "reports"
    blocker.write_text("a file where a folder should be")
    events = tmp_path / "events.csv"
    events.write_text("user,item,time\nu1,i1,2024-01-01\n")
    with pytest.raises(WorkspaceError, match=f"cannot create the folder {blocker}"):
        Workspace.open(blocker / "shop.sqlite")
    code, _, err = run(capsys, "import", events, "--db", blocker / "sub" / "shop.sqlite")
    message, hint = err.splitlines()
    assert code == 1 and f"folder {blocker / 'sub'}" in message and hint == "hint: Choose a folder you are allowed to write to."


def test_a_read_only_workspace_reads_and_refuses_writes_with_a_reason(tmp_path):
    path = tmp_path / "shop.sqlite"
    with Workspace.open(path) as ws, ws.writing() as conn:
        conn.execute(schema.users.insert().values(id=1, external_id="u1"))
    before = _digest(path)
    with Workspace.open(path, read_only=True) as ws:
        assert ws.read_only and ws.counts()["users"] == 1
        with pytest.raises(ReadOnlyWorkspaceError, match="read-only here"):
            ws.set_meta("active_run", "1")
    assert _digest(path) == before and not (tmp_path / "shop.sqlite-wal").exists()


def test_an_older_workspace_is_migrated_once_and_a_read_only_one_says_it_needs_upgrading(tmp_path, monkeypatch):
    from core.store import workspace as workspace_module

    path = tmp_path / "old.sqlite"
    Workspace.open(path).close()
    current = schema.SCHEMA_VERSION
    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setattr(workspace_module, "_MIGRATIONS", {current: ["ALTER TABLE runs ADD COLUMN note TEXT"]})
    with pytest.raises(ReadOnlyWorkspaceError, match=rf"older NextPick \(schema {current}\).*needs write access"):
        Workspace.open(path, read_only=True)
    with Workspace.open(path) as ws:
        assert ws.schema_version == current + 1
    with Workspace.open(path) as ws:  # nothing left to do: the step is not run again
        assert ws.schema_version == current + 1
        with ws.engine.connect() as conn:
            columns = [row[1] for row in conn.connection.dbapi_connection.execute("PRAGMA table_info(runs)")]
        assert columns.count("note") == 1


def test_a_release_2_workspace_loses_its_index_by_item_and_counts_items_the_same(tmp_path):
    """Release 2 kept an index of events by item; every posted event paid for it (issue 13's POST rate)."""
    from core.store.stats import workspace_stats

    path = tmp_path / "r2.sqlite"
    events = tmp_path / "events.csv"
    events.write_text("user,item,timestamp\nu1,a,1\nu1,b,2\nu2,a,3\nu3,a,4\nu3,c,5\n")
    with Workspace.open(path) as ws:
        import_files(ws, events=events)
        before = workspace_stats(ws)
    with sqlite3.connect(path) as raw:  # as release 2 left it
        raw.execute("CREATE INDEX ix_events_item ON events (item_id)")
        raw.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with Workspace.open(path) as ws:
        assert ws.schema_version == schema.SCHEMA_VERSION
        with ws.engine.connect() as conn:
            indexes = {row[0] for row in conn.connection.dbapi_connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")}
        after = workspace_stats(ws)
    assert indexes == {"ix_events_user_ts"}
    assert (after.items_with_events, after.item_popularity.tolist()) == (3, [3, 1, 1])
    assert after.item_popularity.tolist() == before.item_popularity.tolist()
