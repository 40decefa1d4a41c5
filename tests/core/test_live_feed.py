"""The service's event feed writes through a connection of its own and checkpoints on a thread of its own."""

import sqlite3
import threading
import time

import core.importing.feed_writer as feed_writer
import core.importing.live as live
from core.importing.live import EventFeed
from core.importing.posted_rows import text_cells
from engine_data import events_in_the_file
from service_data import START, pair_shop_engine


def _rows(first: int, n: int) -> list[dict]:
    return [{"user": f"U{i % 7:02d}", "item": f"P{i % 40:02d}", "time": START + 10**6 + first + i} for i in range(n)]


def test_a_post_is_committed_at_once_and_copied_into_the_file_by_the_feeds_thread(tmp_path, monkeypatch):
    engine = pair_shop_engine(tmp_path / "shop.sqlite")
    path = engine.workspace.path
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stored = engine.workspace.counts()["events"]
    monkeypatch.setattr(feed_writer, "CHECKPOINT_EVERY_S", 3600.0)
    feed = EventFeed(engine.workspace, "test")
    assert feed.post(_rows(0, 100)).accepted == 100
    assert engine.workspace.counts()["events"] == stored + 100  # committed: every reader sees it
    assert events_in_the_file(path) == stored  # the request did not wait for a checkpoint
    feed.close()  # the last checkpoint
    assert events_in_the_file(path) == stored + 100

    monkeypatch.setattr(feed_writer, "CHECKPOINT_EVERY_S", 0.01)
    feed = EventFeed(engine.workspace, "test")
    feed.post(_rows(100, 50))
    deadline = time.monotonic() + 30
    while events_in_the_file(path) < stored + 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events_in_the_file(path) == stored + 150  # copied by the feed's thread while it stays open
    feed.close()
    with engine.workspace.engine.connect() as conn:  # the pool's connections keep their usual settings
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.workspace.close()


def test_posted_rows_become_text_cells_a_field_at_a_time_and_each_bad_row_names_its_first_bad_field():
    rows = [{"user": "u1", "item": "i1", "time": 5, "value": 2.5},
            ["not", "an", "object"],
            {"user": "u2", "item": "i2", "time": True},
            {"user": "u" * 300, "item": "i3", "value": [1]},
            {"user": "u4", "item": "i" * 300},
            {"user": 7, "item": "i5", "event_type": "cart"}]
    table, positions, refused = text_cells(rows, "unix")
    assert positions.tolist() == [0, 5]
    assert table.column("user").to_pylist() == ["u1", "7"] and table.column("time").to_pylist()[0] == "5"
    assert table.column("value").to_pylist() == ["2.5", ""] and table.column("event_type").to_pylist() == ["", "cart"]
    assert float(table.column("time").to_pylist()[1]) > START  # no time on a clock: the moment it arrived
    assert refused == [(1, None, "an event must be a JSON object with user, item, time, event_type, value"),
                       (2, "time", "expected text or a number, not bool"),
                       (3, "value", "expected text or a number, not list"),
                       (4, "item", "item id longer than 256 characters")]
    assert text_cells([{"user": "u", "item": "i"}], "order")[0].column("time").to_pylist() == [""]


def test_requests_written_together_are_one_loader_pass_each_answered_as_if_written_alone(tmp_path, monkeypatch):
    engine = pair_shop_engine(tmp_path / "shop.sqlite")
    feed = EventFeed(engine.workspace, "test")
    passes, hold, real_load = [], threading.Event(), live.EventsLoader.load

    def load(loader, target, block, strict):
        passes.append(block.table.num_rows)
        if len(passes) == 1:
            hold.wait(30)  # the feed's thread is held writing the first request while three queue
        return real_load(loader, target, block, strict)

    monkeypatch.setattr(live.EventsLoader, "load", load)
    first = feed.submit(_rows(0, 2))
    while not passes:
        time.sleep(0.001)
    t = START + 10**6
    requests = [[{"user": "NEW-A", "item": "NEW-X", "time": t}, {"user": "U01", "item": "P00", "time": "later"}],
                [{"user": "NEW-A", "item": "NEW-X", "time": t + 1}, {"user": "NEW-B", "item": "P01", "time": t + 2}, 5],
                [{"user": "", "item": "P02", "time": t + 3}, {"user": "NEW-B", "item": "NEW-Y", "time": t + 4}]]
    answers = [feed.submit(rows) for rows in requests]
    while feed._queue.qsize() < 3:
        time.sleep(0.001)
    hold.set()
    reports = [answer.result(30) for answer in answers]
    assert first.result(30).accepted == 2
    assert passes == [2, 6]  # the three requests' rows that are objects, in one pass
    assert [(r.accepted, r.new_users, r.new_items) for r in reports] == [(1, 1, 1), (2, 1, 0), (1, 0, 1)]
    assert [[(x.index, x.field) for x in r.rejected] for r in reports] == [[(1, "time")], [(2, None)], [(0, "user")]]
    assert feed.received == 6
    with engine.workspace.engine.connect() as conn:  # numbered by their place in the service's stream
        lines = conn.exec_driver_sql("SELECT line FROM rejected_rows WHERE import_id = ? ORDER BY line",
                                     (feed._import.import_id,)).scalars().all()
    assert lines == [4, 7, 8]
    assert list(engine.workspace.user_sequence("NEW-B")["item"]) == ["P01", "NEW-Y"]
    feed.close()
    engine.workspace.close()


def test_each_posted_number_is_read_in_its_own_clock_unit_whatever_else_arrives_with_it(tmp_path):
    """Clients of one service send seconds or milliseconds (as documented) and their requests are
    written together: a unit decided by the batch's majority would reject the others' rows."""
    engine = pair_shop_engine(tmp_path / "shop.sqlite")
    feed = EventFeed(engine.workspace, "test")
    t = START + 10**6
    report = feed.post([{"user": "MIX", "item": "P00", "time": t}, {"user": "MIX", "item": "P01", "time": t + 1},
                        {"user": "MIX", "item": "P02", "time": (t + 2) * 1000},
                        {"user": "MIX", "item": "P03", "time": (t + 3) * 10**6}])
    assert (report.accepted, report.rejected) == (4, [])
    sequence = engine.workspace.user_sequence("MIX")
    assert list(sequence["item"]) == ["P00", "P01", "P02", "P03"]
    assert [float(x) for x in sequence["ts"]] == [t, t + 1, t + 2, t + 3]
    feed.close()
    engine.workspace.close()


def test_a_whole_number_posted_as_a_float_is_the_same_id_as_in_a_parquet_file(tmp_path):
    """A client posting a pandas frame's rows sends ids 7.0 (an integer column with a gap becomes float):
    they were stored as user '7.0', a second shopper beside the '7' a file (or another client) gave."""
    engine = pair_shop_engine(tmp_path / "shop.sqlite")
    feed = EventFeed(engine.workspace, "test")
    before = engine.workspace.counts()
    t = START + 10**6
    report = feed.post([{"user": 7.0, "item": 42.0, "time": float(t)}, {"user": 7, "item": 42, "time": t + 1},
                        {"user": 7.5, "item": "P00", "time": t + 2}])
    assert (report.accepted, report.new_users, report.new_items) == (3, 2, 1)
    assert list(engine.workspace.user_sequence("7")["item"]) == ["42", "42"]
    assert engine.workspace.counts()["users"] == before["users"] + 2  # "7" and "7.5"
    feed.close()
    engine.workspace.close()


def test_a_posted_date_of_unknown_order_is_refused_with_what_a_client_can_do(tmp_path):
    """A service client cannot name the order of slashed dates as an import can: its refusal named
    --date-order, a command-line option. A date that can be read one way only is stored."""
    engine = pair_shop_engine(tmp_path / "shop.sqlite")
    feed = EventFeed(engine.workspace, "test")
    report = feed.post([{"user": "D", "item": "P00", "time": "03/05/2025"}])
    assert report.accepted == 0
    assert report.rejected[0].reason.endswith(live.POSTED_ORDER_HINT)
    assert "--date-order" not in report.rejected[0].reason
    assert feed.post([{"user": "D", "item": "P00", "time": "31/05/2025"}]).accepted == 1
    feed.close()
    engine.workspace.close()
