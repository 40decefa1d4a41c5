import numpy as np

from core.data.successors import Successors


def _counted_one_pair_at_a_time(items, offsets, n_items):
    """Every item's followers by a plain walk over each user's sequence: (follower, count) pairs,
    most often first, ties in item order."""
    pairs = {}
    for start, end in zip(offsets[:-1], offsets[1:]):
        for before, after in zip(items[start:end - 1], items[start + 1:end]):
            pairs[(int(before), int(after))] = pairs.get((int(before), int(after)), 0) + 1
    return {item: sorted(((after, count) for (before, after), count in pairs.items() if before == item),
                         key=lambda pair: (-pair[1], pair[0]))
            for item in range(1, n_items + 1)}


def test_followers_are_counted_within_each_users_sequence_most_often_first():
    rng = np.random.default_rng(3)
    n_items = 12
    lengths = rng.integers(0, 9, size=60)  # users with no event and with one event among them
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    items = rng.integers(1, n_items + 1, size=offsets[-1]).astype(np.int32)
    successors = Successors.count(items, offsets, n_items)
    expected = _counted_one_pair_at_a_time(items, offsets, n_items)
    for item in range(1, n_items + 1):
        followers, counts = successors.of(item, n_items + 5)
        assert list(zip(followers.tolist(), counts.tolist())) == expected[item]
        assert successors.of(item, 2)[0].tolist() == [after for after, _ in expected[item][:2]]


def test_a_pair_across_two_users_is_no_follower():
    items = np.array([1, 2, 3, 1], dtype=np.int32)
    successors = Successors.count(items, np.array([0, 2, 4]), 3)  # users (1, 2) and (3, 1)
    assert successors.of(2, 10)[0].tolist() == []
    assert successors.of(1, 10)[0].tolist() == [2]
    assert successors.of(0, 10)[0].tolist() == [] and successors.of(4, 10)[0].tolist() == []


def test_saved_followers_read_back_the_same(tmp_path):
    items = np.array([1, 2, 1, 2, 3], dtype=np.int32)
    successors = Successors.count(items, np.array([0, 5]), 3)
    folder = tmp_path / "successors-abc-v1"
    assert Successors.cached(folder) is None
    successors.save(folder)
    read = Successors.cached(folder)
    assert [read.of(i, 5)[0].tolist() for i in range(4)] == [successors.of(i, 5)[0].tolist() for i in range(4)]
    assert read.of(1, 5)[1].tolist() == [2]
