import numpy as np

from core.data import leave_one_out, sequences_from_arrays, time_split


def _data():
    # user 0: items 1..5 at ts 0..4; user 1: 2 events; user 2: items 6,7,8 at ts 10..12
    users = np.array([0] * 5 + [1] * 2 + [2] * 3)
    items = np.array([1, 2, 3, 4, 5, 1, 2, 6, 7, 8])
    ts = np.array([0, 1, 2, 3, 4, 0, 5, 10, 11, 12], dtype=float)
    return sequences_from_arrays(users, items, ts)


def test_leave_one_out_holds_out_last_two_events():
    split = leave_one_out(_data())
    assert [t.tolist() for t in split.train] == [[1, 2, 3], [1, 2], [6]]
    assert split.valid.user_index.tolist() == [0, 2]
    assert [h.tolist() for h in split.valid.histories] == [[1, 2, 3], [6]]
    assert split.valid.targets.tolist() == [4, 7]
    assert [h.tolist() for h in split.test.histories] == [[1, 2, 3, 4], [6, 7]]
    assert split.test.targets.tolist() == [5, 8]


def test_time_split_tests_first_event_after_the_cut_with_everything_before_as_history():
    split = time_split(_data(), cutoff_ts=3.0)
    # user 0 has 3 events before the cut: last of them validates, first after the cut tests
    assert [t.tolist() for t in split.train] == [[1, 2], [1], []]
    assert split.valid.user_index.tolist() == [0]
    assert split.valid.targets.tolist() == [3]
    assert split.test.user_index.tolist() == [0, 1, 2]
    assert [h.tolist() for h in split.test.histories] == [[1, 2, 3], [1], []]
    assert split.test.targets.tolist() == [4, 2, 6]
    assert all(len(h) == 0 or h.max() < 9 for h in split.train)
