import sqlite3

import numpy as np
import pytest

from core.store import Workspace, WorkspaceError
from core.store import schema
from engine_data import events_in_the_file


def _seed(ws):
    with ws.engine.begin() as conn:
        conn.execute(schema.users.insert(), [{"id": 1, "external_id": "u1"}, {"id": 2, "external_id": "u2"}])
        conn.execute(
            schema.items.insert(),
            [{"id": 1, "external_id": "a", "title": "A", "categories": "Toys|Kids"}, {"id": 2, "external_id": "b", "title": None, "categories": None}],
        )
        conn.execute(
            schema.events.insert(),
            [
                {"id": 1, "user_id": 2, "item_id": 1, "ts": 5.0, "event_type": "view"},
                {"id": 2, "user_id": 1, "item_id": 2, "ts": 9.0, "event_type": "view"},
                {"id": 3, "user_id": 1, "item_id": 1, "ts": 3.0, "event_type": "purchase"},
                {"id": 4, "user_id": 1, "item_id": 2, "ts": 3.0, "event_type": "view"},
            ],
        )


def test_new_workspace_has_schema_version_wal_and_foreign_keys(tmp_path):
    ws = Workspace.open(tmp_path / "w.sqlite")
    assert ws.schema_version == schema.SCHEMA_VERSION
    with ws.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    ws.close()


def test_event_arrays_sorted_by_user_time_then_file_order(workspace):
    _seed(workspace)
    arrays = workspace.event_arrays()
    assert arrays.user_id.tolist() == [1, 1, 1, 2]
    assert arrays.event_id.tolist() == [3, 4, 2, 1]
    assert np.all(np.diff(arrays.ts[:3]) >= 0)


def test_chunked_reads_equal_one_read(workspace):
    _seed(workspace)
    whole, chunked = workspace.event_arrays(), workspace.event_arrays(chunk_rows=3)
    for name in ("user_id", "item_id", "ts", "event_id"):
        assert getattr(chunked, name).tolist() == getattr(whole, name).tolist()
    assert workspace.items_frame(chunk_rows=1).equals(workspace.items_frame())
    assert workspace.items_frame(chunk_rows=1)["external_id"].tolist() == ["a", "b"]
    assert workspace.users_frame(chunk_rows=1).equals(workspace.users_frame())
    assert len(workspace.event_arrays(chunk_rows=1)) == 4


def test_a_workspace_file_name_may_hold_characters_urls_reserve(tmp_path):
    path = tmp_path / "shop #1 (100% real)?.sqlite"  # "?" once made the file "shop #1 (100% real)"
    ws = Workspace.open(path)
    _seed(ws)
    assert ws.event_arrays().event_id.tolist() == [3, 4, 2, 1]
    ws.close()
    assert path.exists() and [p.name for p in tmp_path.iterdir() if not p.name.startswith(path.name)] == []


def test_empty_workspace_reads_empty(workspace):
    assert len(workspace.event_arrays()) == 0
    assert workspace.items_frame().empty and list(workspace.users_frame().columns)[:2] == ["id", "external_id"]


def test_user_sequence_joins_items_in_time_order(workspace):
    _seed(workspace)
    seq = workspace.user_sequence("u1")
    assert seq["item"].tolist() == ["a", "b", "b"]
    assert seq["categories"].iloc[0] == "Toys|Kids"
    assert workspace.user_sequence("nobody").empty


def test_user_items_and_item_read_what_is_stored_now(workspace):
    _seed(workspace)
    assert workspace.user_items("u1") == workspace.user_sequence("u1")["item"].tolist() == ["a", "b", "b"]
    assert workspace.user_items("nobody") == []
    # many at once, as the service reads a batch of requests: in the order asked, repeats and unknowns included
    assert workspace.users_items(["u2", "nobody", "u1", "u2"]) == [["a"], [], ["a", "b", "b"], ["a"]]
    assert workspace.item("a") == {"item": "a", "title": "A", "categories": ["Toys", "Kids"], "attributes": {}}
    assert workspace.item("b") == {"item": "b", "title": "", "categories": [], "attributes": {}}
    assert workspace.item("nothing") is None


def test_content_hash_changes_with_data(workspace):
    before = workspace.content_hash()
    _seed(workspace)
    assert workspace.content_hash() != before


def test_foreign_file_is_refused(tmp_path):
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("hello, not a database")
    with pytest.raises(WorkspaceError, match="not a NextPick workspace"):
        Workspace.open(bogus)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "w.sqlite"
    Workspace.open(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(WorkspaceError, match="newer NextPick"):
        Workspace.open(path)


def test_stored_categories_read_as_names_primary_first():
    from core.store.schema import split_categories

    assert split_categories("Dolls| Pretend play |") == ("Dolls", "Pretend play")
    assert split_categories("") == () and split_categories(None) == ()


EVENTS = 80_000  # a WAL of more pages than SQLite's automatic checkpoint waits for (1,000)


def test_an_import_commits_without_copying_the_wal_and_a_thread_copies_it_before_close(tmp_path, monkeypatch):
    from core.importing import import_files

    source = tmp_path / "e.csv"
    source.write_text("user,item,time\n" + "".join(f"u{n % 97},i{n % 13},{1_700_000_000 + n}\n" for n in range(EVENTS)))
    path = tmp_path / "w.sqlite"
    Workspace.open(path).close()  # created, and its schema in the file (the last close checkpoints)
    window = sqlite3.connect(path)  # another reader keeps the WAL alive: closing the import's connections is not the last close
    window.execute("SELECT count(*) FROM meta").fetchone()
    started = []
    monkeypatch.setattr(Workspace, "checkpoint_in_background", lambda self: started.append(self))
    ws = Workspace.open(path)
    import_files(ws, events=source)
    ws.close()
    assert len(started) == 1 and events_in_the_file(path) == 0  # the commit itself copied nothing
    assert window.execute("SELECT count(*) FROM events").fetchone()[0] == EVENTS  # committed: readers see it

    monkeypatch.undo()
    ws = Workspace.open(path)
    ws.checkpoint_in_background()
    ws.close()  # waits for the copy
    assert events_in_the_file(path) == EVENTS
    window.close()
