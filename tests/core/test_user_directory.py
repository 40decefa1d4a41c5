"""The user directory: kept beside the workspace once per content, searched a chunk at a time."""

from __future__ import annotations

import numpy as np
import pytest

from core.engine import Engine
from core.store import directory
from core.store.directory import UserDirectory
from engine_data import demo_workspace


@pytest.fixture
def engine(tmp_path):
    engine = Engine(demo_workspace(tmp_path / "ws.sqlite", 120, 40))
    yield engine
    engine.workspace.close()


def test_prepare_keeps_sequences_and_users_beside_the_workspace_for_the_next_engine(engine, monkeypatch):
    assert not engine.prepared()
    engine.prepare()
    assert engine.prepared()
    first = engine.users_page(0, 200, order_by="user")
    reopened = Engine.open(engine.workspace.path)
    try:
        monkeypatch.setattr(UserDirectory, "read", lambda workspace: pytest.fail("the store was scanned again"))
        assert reopened.prepared() and reopened.users_page(0, 200, order_by="user") == first
    finally:
        reopened.workspace.close()


def test_a_cached_directory_holds_what_pages_read_in_memory(engine, tmp_path):
    """A page reads its users scattered over the ids, counts and times, on the GUI thread as the list
    scrolls, and a slice of an order: mapped, each part not yet in memory was a disk read there. The
    lowered ids, scanned by a search's worker, stay mapped."""
    names = ["u3", "U1", "u2"]
    UserDirectory.from_columns(names, np.array([5, 0, 7]), np.array([30.0, np.nan, 10.0])).save(tmp_path / "users")
    cached = UserDirectory.cached(tmp_path / "users")
    read_by_pages = (cached.ids, cached.events, cached.last_seen, *cached.orders.values())
    assert not any(isinstance(column, np.memmap) for column in read_by_pages)
    assert isinstance(cached.lowered, np.memmap)
    assert [(row.user, row.events, row.last_seen) for row in cached.page(0, 3, None, "activity")] == [
        ("u2", 7, 10.0), ("u3", 5, 30.0), ("U1", 0, None)]
    assert [row.user for row in cached.page(1, 5, "u", "user")] == ["u2", "u3"]


def test_a_workspace_without_its_items_followers_counted_is_not_prepared(engine):
    """Caches of an older release (sequences and users only) are prepared again, in the job process."""
    import shutil

    engine.prepare()
    folder = engine.workspace.path.with_name(engine.workspace.path.name + ".cache")
    shutil.rmtree(next(folder.glob("successors-*")))
    reopened = Engine.open(engine.workspace.path)
    try:
        assert not reopened.prepared()
        reopened.prepare()
        assert reopened.prepared()
    finally:
        reopened.workspace.close()


def test_a_search_scanned_in_chunks_finds_what_one_scan_finds(monkeypatch):
    names = [f"Shopper-{i:04d}" for i in range(1000)] + ["ÉLODIE-42"]
    events = np.arange(len(names), dtype=np.int64) % 7
    users = UserDirectory.from_columns(names, events, np.arange(len(names), dtype=float))
    monkeypatch.setattr(directory, "SEARCH_CHUNK", 64)
    for text in ("per-01", "R-099", "élodie", "nobody"):
        wanted = [name for name in names if text.lower() in name.lower()]
        found = users.page(0, 2000, text, "user")
        assert [row.user for row in found] == sorted(wanted) and users.count(text) == len(wanted)
    busiest = users.page(0, 3, "shopper", "activity")
    assert [row.events for row in busiest] == [6, 6, 6]


def test_the_next_pages_of_a_search_reuse_its_matches(monkeypatch):
    names = [f"user-{i}" for i in range(500)]
    users = UserDirectory.from_columns(names, np.ones(len(names), dtype=np.int64), np.zeros(len(names)))
    scans = []
    scan = users._matches
    monkeypatch.setattr(users, "_matches", lambda needle: scans.append(needle) or scan(needle))
    pages = [users.page(offset, 20, "1", "activity") for offset in range(0, 100, 20)]
    assert len({row.user for page in pages for row in page}) == 100 and users.count("1") == 176
    assert scans == [b"1"]


def test_ids_read_back_exactly_whatever_their_characters_and_a_search_lowers_them_as_python_does():
    names = ["İstanbul-7", "", "u1", "ß" * 5, "SHOPPER"]
    users = UserDirectory.from_columns(names, np.arange(len(names), dtype=np.int64), np.zeros(len(names)))
    assert sorted(row.user for row in users.page(0, 10, None, "user")) == sorted(names)
    assert [row.user for row in users.page(0, 10, "İSTANBUL", "user")] == ["İstanbul-7"]
    assert [row.user for row in users.page(0, 10, "Shop", "user")] == ["SHOPPER"]
    ascii_only = UserDirectory.from_columns(["Ab", "aB", "x"], np.ones(3, dtype=np.int64), np.zeros(3))
    assert [row.user for row in ascii_only.page(0, 10, "ab", "user")] == ["Ab", "aB"]
