"""The service's event feed writes through a connection of its own and checkpoints on a thread of its own."""

import sqlite3
import time

import core.importing.live as live
from core.importing.live import EventFeed
from service_data import START, pair_shop_engine


def _events_in_the_file(path) -> int:
    """Events in the database file itself, without what is still only in its WAL."""
    connection = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return connection.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        connection.close()


def _rows(first: int, n: int) -> list[dict]:
    return [{"user": f"U{i % 7:02d}", "item": f"P{i % 40:02d}", "time": START + 10**6 + first + i} for i in range(n)]


def test_a_post_is_committed_at_once_and_copied_into_the_file_by_the_feeds_thread(tmp_path, monkeypatch):
    engine = pair_shop_engine(tmp_path / "shop.sqlite")
    path = engine.workspace.path
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stored = engine.workspace.counts()["events"]
    monkeypatch.setattr(live, "CHECKPOINT_EVERY_S", 3600.0)
    feed = EventFeed(engine.workspace, "test")
    assert feed.post(_rows(0, 100)).accepted == 100
    assert engine.workspace.counts()["events"] == stored + 100  # committed: every reader sees it
    assert _events_in_the_file(path) == stored  # the request did not wait for a checkpoint
    feed.close()  # the last checkpoint
    assert _events_in_the_file(path) == stored + 100

    monkeypatch.setattr(live, "CHECKPOINT_EVERY_S", 0.01)
    feed = EventFeed(engine.workspace, "test")
    feed.post(_rows(100, 50))
    deadline = time.monotonic() + 30
    while _events_in_the_file(path) < stored + 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _events_in_the_file(path) == stored + 150  # copied by the feed's thread while it stays open
    feed.close()
    with engine.workspace.engine.connect() as conn:  # the pool's connections keep their usual settings
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.workspace.close()
