"""The service's histories: the loaded sequences plus the events stored since, read whole from the
store only when a newer event belongs among the older ones."""

import pytest

from core.engine import Engine
from core.importing.live import EventFeed
from service_data import START, pair_shop_csv


@pytest.fixture
def engine(tmp_path):
    events, items = pair_shop_csv(tmp_path, users=8)
    engine = Engine.open(tmp_path / "shop.sqlite")
    engine.import_files(events=events, items=items)
    engine.sequence_data()  # loaded before any event is posted, as a service's are
    whole_reads, store = [], engine.workspace
    engine.stored = store.users_items  # each history as the store reads it whole (for the expected values)
    store.users_items = lambda users: whole_reads.extend(users) or engine.stored(users)
    store.user_items = lambda user: store.users_items([user])[0]
    engine.whole_reads = whole_reads
    yield engine
    engine.workspace.close()


def _post(engine, *rows) -> None:
    feed = EventFeed(engine.workspace, "test")
    try:
        assert feed.submit(list(rows)).result(30).accepted == len(rows)
    finally:
        feed.close()


def test_a_loaded_users_history_is_the_stored_one_without_reading_it_from_the_store(engine):
    users = ["U00", "U03", "U07", "nobody"]
    assert engine.users_items(users) == engine.stored(users)  # no repeats in the pair shop
    assert engine.whole_reads == []


def test_events_posted_after_the_sequences_were_loaded_count_at_once(engine):
    last = float(engine.workspace.user_sequence("U01")["ts"].max())
    _post(engine, {"user": "U01", "item": "P04", "time": last + 60}, {"user": "U01", "item": "P05", "time": last + 120},
          {"user": "NEW", "item": "BRAND-NEW", "time": START})
    assert engine.users_items(["U01", "NEW"]) == engine.stored(["U01", "NEW"])
    assert engine.users_items(["U01"])[0][-2:] == ["P04", "P05"]
    assert engine.whole_reads == []


def test_an_event_timed_among_the_loaded_ones_is_read_in_its_place(engine):
    first = float(engine.workspace.user_sequence("U02")["ts"].min())
    _post(engine, {"user": "U02", "item": "P39", "time": first + 1})
    history = engine.users_items(["U02"])[0]
    assert history == engine.stored(["U02"])[0] and history[1] == "P39"
    assert engine.whole_reads == ["U02"]
