"""IdMap: shop ids to store ids, integer-looking keys found by number, the rest by text; and
``insert_rows``, which writes the new ids and the events many rows to a statement."""

import sqlite3

import numpy as np
import pytest
import pyarrow as pa

from core.importing.ids import IdMap
from core.importing.target import UNINDEXED_ROWS, insert_rows


def _map(rows=()) -> IdMap:
    raw = sqlite3.connect(":memory:")
    raw.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, external_id TEXT UNIQUE)")
    raw.executemany("INSERT INTO users(id, external_id) VALUES (?, ?)", rows)
    return IdMap(raw, "users")


def test_new_keys_get_ids_in_first_appearance_order_and_keep_them():
    ids = _map()
    found, new = ids.resolve(pa.array(["7", "U1", "7", "3", "U1"]))
    assert found.tolist() == [1, 2, 1, 3, 2]
    assert new == ([1, 2, 3], ["7", "U1", "3"])
    found, new = ids.resolve(pa.array(["3", "8", "U1", "U2"]))
    assert found.tolist() == [3, 4, 2, 5]
    assert new == ([4, 5], ["8", "U2"])


def test_keys_that_only_read_as_numbers_stay_distinct():
    """"007", "7.0", "+7" and "7" are four ids; a block of only integers finds a key seen among text."""
    ids = _map()
    found, _ = ids.resolve(pa.array(["7", "007", "7.0", "+7", "-7", "-0", "0", "99999999999999999999"]))
    assert len(set(found.tolist())) == 8
    again, new = ids.resolve(pa.array(["0", "-7", "7"]))
    assert new == ([], []) and again.tolist() == [found[6], found[4], found[0]]
    assert ids.find(pa.array(["007", "7", "x"])).tolist() == [found[1], found[0], 0]


def test_stored_keys_are_found_and_new_ids_follow_the_largest():
    ids = _map([(5, "42"), (9, "abc")])
    found, new = ids.resolve(pa.array(["abc", "42", "43"]))
    assert found.tolist() == [9, 5, 10]
    assert new == ([10], ["43"])


def test_catch_up_adds_rows_written_by_another_writer():
    raw = sqlite3.connect(":memory:")
    raw.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, external_id TEXT UNIQUE)")
    ids = IdMap(raw, "users")
    raw.executemany("INSERT INTO users(id, external_id) VALUES (?, ?)", [(1, "10"), (2, "u")])
    ids.catch_up(raw)
    assert ids.find(pa.array(["u", "10", "11"])).tolist() == [2, 1, 0]
    assert ids.resolve(pa.array(["11"]))[0].tolist() == [3]


@pytest.mark.parametrize("low, high", [(-500, 500), (0, 600), (10**15, 10**15 + 500)])
def test_many_blocks_of_integer_keys_match_a_dict(low, high):
    """Negative, dense (the table indexed by key) and sparse (the binary search) integer keys."""
    rng = np.random.default_rng(0)
    ids, reference = _map(), {}
    for _ in range(5):
        keys = [str(k) for k in rng.integers(low, high, 300)]
        found, _ = ids.resolve(pa.array(keys))
        for key, id_ in zip(keys, found.tolist()):
            assert reference.setdefault(key, id_) == id_
    assert sorted(reference.values()) == list(range(1, len(reference) + 1))


def test_a_key_far_beyond_the_others_leaves_the_dense_table_for_the_search_with_the_same_ids():
    ids = _map([(1, "1"), (2, "2")])
    assert ids.find(pa.array(["2", "1", "3"])).tolist() == [2, 1, 0]  # by table
    found, new = ids.resolve(pa.array(["2", "99999999999", "3", "1"]))
    assert found.tolist() == [2, 3, 4, 1] and new == ([3, 4], ["99999999999", "3"])
    assert ids.find(pa.array(["3", "99999999999", "4"])).tolist() == [4, 3, 0]


@pytest.mark.parametrize("per_statement", [1, UNINDEXED_ROWS])
@pytest.mark.parametrize("rows", [0, 1, UNINDEXED_ROWS, 2 * UNINDEXED_ROWS + 5])
def test_rows_are_inserted_many_to_a_statement_in_their_order_with_every_value(rows, per_statement):
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, x REAL, s TEXT, k TEXT)")
    columns = [list(range(rows)), [n / 4 for n in range(rows)], [None if n % 3 else f"s{n}" for n in range(rows)]]
    insert_rows(con, "INSERT INTO t(n, x, s, k) VALUES ", "(?, ?, ?, 'same')", columns, per_statement)
    stored = con.execute("SELECT id, n, x, s, k FROM t ORDER BY id").fetchall()
    assert stored == [(n + 1, n, n / 4, None if n % 3 else f"s{n}", "same") for n in range(rows)]
