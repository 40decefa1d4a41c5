import json

import numpy as np
import pytest
import pandas as pd
from sqlalchemy import insert

from core.data import build_sequences, sequences_from_arrays
from core.data.sequence_cache import cache_folder
from core.data.sequences import MAX_SEGMENTS
from core.store import schema


def test_sequences_are_time_ordered_with_stable_ties_and_collapsed_repeats():
    users = np.array([7, 5, 5, 5, 5, 7, 5])
    items = np.array([1, 2, 3, 3, 4, 2, 9])
    ts = np.array([1.0, 2.0, 1.0, 1.0, 3.0, 0.0, 1.0])  # user 5 has three events at ts=1
    data = sequences_from_arrays(users, items, ts)
    assert list(data.user_external) == ["5", "7"]
    assert list(data.item_external[1:]) == ["1", "2", "3", "4", "9"]
    # user 5: ts 1 -> items 3, 3, 9 in input order (3 repeated collapses), then 2 (ts 2), 4 (ts 3)
    assert list(data.item_external[data.history(0)]) == ["3", "9", "2", "4"]
    assert list(data.item_external[data.history(1)]) == ["2", "1"]
    assert list(data.offsets) == [0, 4, 6]
    assert data.ts[:4].tolist() == [1.0, 1.0, 2.0, 3.0]


def test_item_table_gives_cold_items_categories_and_lookups():
    items = pd.DataFrame({"id": [10, 11, 12], "external_id": ["a", "b", "c"], "title": ["A", None, "C"],
                          "categories": [" Toys | Kids |", "Books", None]})
    data = sequences_from_arrays(np.array([1, 1]), np.array([10, 11]), np.array([0.0, 1.0]), items)
    assert data.n_items == 3 and data.n_users == 1
    assert list(data.category_names) == ["(none)", "Books", "Toys"]
    assert list(data.item_category) == [0, 2, 1, 0]
    assert list(data.item_categories) == ["", "Toys|Kids", "Books", ""]  # all of them, primary first, tidied
    assert list(data.item_title) == ["", "A", "", "C"]
    assert list(data.item_index_of(["c", "a", "zzz"])) == [3, 1, 0]
    assert data.user_index_of("1") == 0 and data.user_index_of("nobody") is None
    assert data.has_categories


def test_tables_without_profiles_give_no_categories_and_the_unknown_segment():
    """Item and user tables whose category and attribute cells are all empty (an events-only import)."""
    items = pd.DataFrame({"id": [10, 11], "external_id": ["a", "b"], "title": [None, None], "categories": [None, ""]})
    users = pd.DataFrame({"id": [1, 2], "external_id": ["u1", "u2"], "attributes": ["", None]})
    data = sequences_from_arrays(np.array([1, 2]), np.array([10, 11]), np.array([0.0, 1.0]), items, users)
    assert list(data.category_names) == ["(none)"] and list(data.item_category) == [0, 0, 0]
    assert list(data.item_categories) == ["", "", ""] and data.item_categories.dtype == object
    assert not data.has_categories
    assert list(data.segment_names) == ["(unknown)"] and list(data.user_segment) == [0, 0]
    assert data.user_segment.dtype == np.int64


def test_profile_segments_combine_categorical_attributes_and_skip_numbers():
    users = pd.DataFrame({
        "id": [1, 2, 3, 4],
        "external_id": ["u1", "u2", "u3", "u4"],
        "attributes": [json.dumps({"age": 20, "gender": "F", "job": "writer"}),
                       json.dumps({"age": 30, "gender": "M", "job": "artist"}),
                       json.dumps({"age": 40, "gender": "F", "job": "writer"}),
                       None],
    })
    data = sequences_from_arrays(np.array([1]), np.array([1]), np.array([0.0]), users=users)
    assert list(data.segment_names) == ["(unknown)", "gender=F, job=writer", "gender=M, job=artist"]
    assert list(data.user_segment) == [1, 2, 1, 0]


def test_too_many_combinations_fall_back_to_one_attribute():
    n = 2 * MAX_SEGMENTS
    users = pd.DataFrame({
        "id": np.arange(n),
        "external_id": [f"u{i}" for i in range(n)],
        "attributes": [json.dumps({"a": f"x{i % 20}", "b": f"y{i % 29}"}) for i in range(n)],
    })
    data = sequences_from_arrays(np.array([0]), np.array([1]), np.array([0.0]), users=users)
    assert len(data.segment_names) == 21
    assert data.segment_names[1].startswith("a=")


def _insert_shop(workspace, events):
    with workspace.engine.begin() as conn:
        conn.execute(insert(schema.imports).values(kind="events", source_path="x.csv", source_sha256=str(len(events)),
                                                    rows_read=len(events), rows_accepted=len(events), created_at=0.0))
        conn.execute(insert(schema.users), [{"id": u, "external_id": f"user{u}", "attributes": None} for u in (1, 2)])
        conn.execute(insert(schema.items), [{"id": i, "external_id": f"sku{i}", "title": f"T{i}", "categories": "C"}
                                            for i in (1, 2, 3)])
        conn.execute(insert(schema.events), [{"user_id": u, "item_id": i, "ts": t} for u, i, t in events])


def test_build_sequences_reads_the_workspace_and_the_cache_follows_imports(workspace):
    _insert_shop(workspace, [(1, 1, 5.0), (1, 2, 5.0), (2, 3, 1.0)])
    first = build_sequences(workspace)
    assert list(first.user_external) == ["user1", "user2"]
    assert list(first.item_external[first.history(0)]) == ["sku1", "sku2"]
    assert cache_folder(workspace.path).is_dir()
    assert build_sequences(workspace).offsets.tolist() == first.offsets.tolist()
    with workspace.engine.begin() as conn:
        conn.execute(insert(schema.imports).values(kind="events", source_path="y.csv", source_sha256="more",
                                                    rows_read=1, rows_accepted=1, created_at=1.0))
        conn.execute(insert(schema.events).values(user_id=2, item_id=1, ts=2.0))
    second = build_sequences(workspace)
    assert list(second.item_external[second.history(1)]) == ["sku3", "sku1"]


def test_real_shared_log_builds(shared_data):
    frame = pd.read_csv(shared_data / "amazon-toys" / "toys_events.csv")
    data = sequences_from_arrays(frame["user_id"].to_numpy(), frame["item_id"].to_numpy(), frame["step"].to_numpy())
    assert (data.n_users, data.n_items) == (19412, 11924)
    assert data.lengths().min() >= 5  # 5-core data
    assert not data.has_categories


def test_the_cache_is_memory_mapped_npy_and_a_second_build_reads_no_events(workspace, monkeypatch):
    _insert_shop(workspace, [(1, 1, 5.0), (1, 2, 6.0), (2, 3, 1.0)])
    built = build_sequences(workspace)
    cached = sorted(p.name for p in cache_folder(workspace.path).glob("sequences-*/*"))
    assert "items.npy" in cached and "item_external.text.npy" in cached
    assert not [name for name in cached if not name.endswith(".npy")]  # no pickle, no joblib dump

    monkeypatch.setattr(type(workspace), "event_arrays", lambda self: pytest.fail("rebuilt from the store"))
    again = build_sequences(workspace)
    assert isinstance(again.items, np.memmap) and again.items.dtype == np.int32
    assert again.items.tolist() == built.items.tolist()
    assert list(again.item_external) == list(built.item_external)
    assert again.user_index_of("user2") == 1


def test_histories_of_the_memory_mapped_cache_are_plain_views_of_it(workspace):
    _insert_shop(workspace, [(1, 1, 5.0), (1, 2, 6.0), (2, 3, 1.0)])
    build_sequences(workspace)
    cached = build_sequences(workspace)
    histories = cached.histories()
    assert [h.tolist() for h in histories] == [[1, 2], [3]]
    # a memmap per slice costs a Python finaliser each: 9 CPU-s for a million users' histories and prefixes
    assert not any(isinstance(h, np.memmap) for h in histories)
    assert all(np.shares_memory(h, cached.items) for h in histories)


@pytest.mark.parametrize("per_call", [100_000, 2])
def test_cached_texts_read_back_as_written(tmp_path, monkeypatch, per_call):
    """The cache's text fields are decoded a chunk of texts at a time (NUL-separated), or one by one
    when a text holds a NUL itself: either way every text comes back as it was, empty ones included."""
    from core.data import sequence_cache

    monkeypatch.setattr(sequence_cache, "TEXTS_PER_CALL", per_call)
    for texts in (["u1", "", "Zoë's ☃ shop", "a|b", ""], ["with\0nul", "", "plain"], []):
        encoded = [text.encode("utf-8") for text in texts]
        read = sequence_cache._decode_texts(np.frombuffer(b"".join(encoded), dtype=np.uint8),
                                            np.cumsum([len(b) for b in encoded], dtype=np.int64))
        assert read.dtype == object and list(read) == texts


def test_id_maps_built_in_chunks_match_one_built_at_once(monkeypatch):
    from core.data import sequences

    ids = np.array(["", *[f"item-{n}" for n in range(45)]], dtype=object)
    monkeypatch.setattr(sequences, "LOOKUP_CHUNK", 7)
    assert sequences._index_of_each(ids, first=1) == {f"item-{n}": n + 1 for n in range(45)}
    assert sequences._index_of_each(ids[1:], first=0) == {f"item-{n}": n for n in range(45)}


def test_ids_numbered_without_gaps_and_ids_with_gaps_give_the_same_sequences():
    """Store ids 1..n are found by position (no search); the same log with gaps in its ids is searched."""
    rng = np.random.default_rng(0)
    users, items, ts = rng.integers(1, 40, 500), rng.integers(1, 60, 500), rng.integers(0, 100, 500).astype(float)
    frames = [pd.DataFrame({"id": np.arange(1, 61) * step, "external_id": [f"i{k}" for k in range(1, 61)]})
              for step in (1, 3)]
    dense, gapped = (sequences_from_arrays(users * step, items * step, ts, frame)
                     for step, frame in zip((1, 3), frames))
    assert np.array_equal(dense.items, gapped.items) and np.array_equal(dense.offsets, gapped.offsets)
    assert dense.item_external[dense.items].tolist()[:5] == gapped.item_external[gapped.items].tolist()[:5]
    assert dense.items.min() >= 1 and list(dense.item_external[1:4]) == ["i1", "i2", "i3"]
