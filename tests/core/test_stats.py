"""Workspace overview numbers, checked against logs small enough to count by hand."""

import dataclasses
import json

import numpy as np
import pytest

from core.store import schema
from core.store.stats import quality_notes, workspace_stats

DAY = 86_400.0
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def _fill(workspace, items, users, events, time_kind="unix"):
    """items: (external, title, categories); users: external ids; events: (user, item, ts, type)."""
    with workspace.engine.begin() as conn:
        conn.execute(schema.items.insert(), [
            {"id": n, "external_id": ext, "title": title, "categories": cats}
            for n, (ext, title, cats) in enumerate(items, start=1)])
        conn.execute(schema.users.insert(), [{"id": n, "external_id": ext} for n, ext in enumerate(users, start=1)])
        item_id = {ext: n for n, (ext, _, _) in enumerate(items, start=1)}
        user_id = {ext: n for n, ext in enumerate(users, start=1)}
        conn.execute(schema.events.insert(), [
            {"user_id": user_id[u], "item_id": item_id[i], "ts": ts, "event_type": kind}
            for u, i, ts, kind in events])
    workspace.set_meta("time_kind", time_kind)


@pytest.fixture
def shop(workspace):
    items = [("a", "Train", "Model trains|Vehicles"), ("b", "Track", "Model trains"),
             ("c", "Puzzle", "Puzzles"), ("d", "Kite", None)]
    users = ["u1", "u2", "u3", "u4"]  # u4 has a profile but no events
    events = [
        ("u1", "a", T0 + 10, "view"), ("u1", "a", T0 + 20, "cart"), ("u1", "a", T0 + 30, "purchase"),
        ("u1", "b", T0 + 2 * DAY + 5, "view"),
        ("u2", "a", T0 + DAY + 1, "view"), ("u2", "c", T0 + DAY + 2, "view"),
        ("u3", "a", T0 + 2 * DAY + 7, "view"), ("u3", "c", T0 + 2 * DAY + 9, "click"),
        ("u3", "b", T0 + 2 * DAY + 11, "view"), ("u3", "a", T0 + 2 * DAY + 12, "view"),
        ("u3", "c", T0 + 2 * DAY + 13, "view"), ("u3", "b", T0 + 2 * DAY + 14, "view"),
    ]
    _fill(workspace, items, users, events)
    return workspace


def test_counts_and_time_range(shop):
    stats = workspace_stats(shop)
    assert (stats.users, stats.items, stats.events) == (4, 4, 12)
    assert (stats.users_with_events, stats.items_with_events) == (3, 3)
    assert stats.time_kind == "unix"
    assert (stats.time_min, stats.time_max) == (T0 + 10, T0 + 2 * DAY + 14)


def test_events_per_user_distribution(shop):
    dist = workspace_stats(shop).events_per_user  # lengths 4, 2, 6
    assert (dist.min, dist.median, dist.mean, dist.max) == (2, 4, 4, 6)
    assert dist.p90 == pytest.approx(5.6)
    assert dist.bin_edges == [1, 2, 3, 5, 10]
    assert dist.counts == [0, 1, 1, 1]


def test_event_types_include_ones_missing_from_the_first_rows(shop):
    assert workspace_stats(shop).event_types == {"view": 9, "cart": 1, "purchase": 1, "click": 1}


def test_categories_count_items_and_events_by_primary_category(shop):
    rows = [(c.name, c.items, c.events) for c in workspace_stats(shop).categories]
    assert rows == [("Model trains", 2, 9), ("Puzzles", 1, 3), ("(none)", 1, 0)]


def test_activity_per_calendar_day_and_popularity_long_tail(shop):
    stats = workspace_stats(shop)
    assert stats.activity.unit == "day"
    assert stats.activity.bucket_start == [T0, T0 + DAY, T0 + 2 * DAY]
    assert stats.activity.counts == [3, 2, 7]
    assert stats.item_popularity.tolist() == [6, 3, 3, 0]
    assert stats.top_decile_share == pytest.approx(0.5)


def test_order_time_is_bucketed_in_blocks_of_positions(workspace):
    items = [("i", "I", "X")]
    events = [("u", "i", float(step), "interaction") for step in range(250)]
    _fill(workspace, items, ["u"], events, time_kind="order")
    activity = workspace_stats(workspace).activity
    assert activity.unit == "steps" and activity.width == 3.0
    assert sum(activity.counts) == 250 and activity.counts[0] == 3 and activity.bucket_start[1] == 3.0


def test_empty_workspace_has_zero_stats(workspace):
    stats = workspace_stats(workspace)
    assert (stats.users, stats.events, stats.time_min) == (0, 0, None)
    assert stats.events_per_user.counts == [] and stats.activity.counts == [] and stats.event_types == {}


def test_to_dict_is_json_ready(shop):
    data = json.loads(json.dumps(workspace_stats(shop).to_dict()))
    assert data["events"] == 12 and data["item_popularity"] == [6, 3, 3, 0]
    assert data["categories"][0] == {"name": "Model trains", "items": 2, "events": 9}


def test_stats_of_a_generated_shop_agree_with_its_files(tmp_path, workspace):
    """A larger log with many users, checked against pandas on the same rows."""
    import pandas as pd

    from core.demo import DemoConfig, write_demo_csv

    files = write_demo_csv(tmp_path, DemoConfig(n_users=400, n_items=200, seed=5))
    events = pd.read_csv(files.events, dtype={"user_id": str, "item_id": str})
    items = pd.read_csv(files.items, dtype=str)
    _fill(workspace, list(items[["item_id", "title", "categories"]].itertuples(index=False, name=None)),
          list(pd.read_csv(files.users, dtype=str).user_id),
          list(events[["user_id", "item_id", "timestamp", "event_type"]].itertuples(index=False, name=None)))
    stats = workspace_stats(workspace)
    per_user = events.groupby("user_id").size()
    assert stats.events == len(events) and stats.users_with_events == len(per_user)
    assert stats.events_per_user.median == per_user.median() and stats.events_per_user.max == per_user.max()
    assert stats.event_types == events.event_type.value_counts().to_dict()
    assert np.array_equal(stats.item_popularity[: stats.items_with_events], events.item_id.value_counts().to_numpy())
    weeks = pd.to_datetime(events.timestamp, unit="s").dt.to_period("W-SUN").value_counts().sort_index()
    assert stats.activity.unit == "week" and stats.activity.counts == weeks.tolist()


@pytest.mark.parametrize("span_days, unit", [(60, "day"), (400, "week"), (22 * 365, "month"), (40 * 365, "year")])
def test_time_buckets_follow_the_span_of_the_log(workspace, span_days, unit):
    items = [("i", "I", "X")]
    events = [("u", "i", T0 + DAY * day + 3600, "view") for day in np.linspace(0, span_days, 50).astype(int)]
    _fill(workspace, items, ["u"], events)
    activity = workspace_stats(workspace).activity
    assert activity.unit == unit and sum(activity.counts) == 50
    starts = np.array(activity.bucket_start)
    assert np.all(np.diff(starts) > 0) and np.all(starts % DAY == 0)
    if unit == "week":  # every bucket starts on a Monday
        assert {int(start // DAY + 3) % 7 for start in starts} == {0}


def test_quality_notes_name_same_time_events_low_ratings_and_users_without_events(workspace):
    items = [("a", "A", "X"), ("b", "B", "X")]
    events = [("u1", "a", T0, "rating"), ("u1", "b", T0, "rating"), ("u1", "a", T0 + 9, "rating"),
              ("u2", "b", T0 + 5, "rating")]
    _fill(workspace, items, ["u1", "u2", "u3"], events)
    with workspace.engine.begin() as conn:
        conn.execute(schema.events.update().values(value=schema.events.c.id))  # ratings 1, 2, 3, 4 on a 5 scale
    stats = workspace_stats(workspace)
    assert stats.quality.same_time_share == pytest.approx(1 / 2)  # u1: 2 pairs, one at the same time; u2: none
    assert (stats.quality.low_values, stats.quality.low_value_max) == (2, 2.0)
    assert stats.quality.users_without_events == 1
    notes = quality_notes(stats)
    assert notes[0].startswith("50% of consecutive events share a timestamp")
    assert notes[1].startswith("2 ratings of 2 or less count as interactions")
    assert notes[2].startswith("1 user is listed without any event")


def test_a_log_of_short_sessions_is_told_its_test_leaves_them_out(workspace):
    """A session log: 17,907 of 40,000 sessions had one or two clicks, which leave-one-out cannot test."""
    items = [("a", "A", "X"), ("b", "B", "X"), ("c", "C", "X")]
    events = [("s1", "a", T0, "view"), ("s2", "a", T0, "view"), ("s2", "b", T0 + 1, "view"),
              *[("s3", item, T0 + n, "view") for n, item in enumerate("abc")]]
    _fill(workspace, items, ["s1", "s2", "s3"], events)
    stats = workspace_stats(workspace)
    assert stats.quality.short_users == 2
    assert any(note.startswith("2 users (67%) have fewer than 3 events") for note in quality_notes(stats))
    few = dataclasses.replace(stats, users_with_events=11)  # 2 of 11: under a fifth, not worth a note
    assert not any("fewer than 3 events" in note for note in quality_notes(few))


def test_values_that_are_not_ratings_raise_no_note(shop):
    with shop.engine.begin() as conn:
        conn.execute(schema.events.update().values(value=49.5))  # prices
    stats = workspace_stats(shop)
    assert stats.quality.low_value_max is None and not any("ratings" in note for note in quality_notes(stats))


def test_events_before_1970_fall_on_their_own_day(workspace):
    items = [("i", "I", "X")]
    before, after = -DAY / 2, DAY / 2  # 1969-12-31 12:00 and 1970-01-01 12:00 UTC
    _fill(workspace, items, ["u"], [("u", "i", before, "view"), ("u", "i", after, "view")])
    activity = workspace_stats(workspace).activity
    assert activity.unit == "day"
    assert activity.bucket_start == [-DAY, 0.0] and activity.counts == [1, 1]
