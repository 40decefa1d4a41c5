import numpy as np
import torch

from core.data import leave_one_out
from core.data.batches import pad_histories, training_windows
from core.data.histories import Histories

from neural_data import rule_sequences


def test_pad_histories_keeps_most_recent_and_left_pads():
    padded = pad_histories([np.array([1, 2, 3, 4, 5]), np.array([7]), np.array([], dtype=np.int64)], 3)
    assert padded.tolist() == [[3, 4, 5], [0, 0, 7], [0, 0, 0]]


def test_windows_cover_every_next_item_pair_once():
    sequences = [np.array([1, 2, 3, 4, 5, 6, 7]), np.array([8, 9]), np.array([10]), np.array([], dtype=np.int64)]
    windows = training_windows(sequences, max_len=4)
    pairs = {(int(i), int(t)) for row_i, row_t in zip(windows.inputs, windows.targets)
             for i, t in zip(row_i, row_t) if t}
    assert pairs == {(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (8, 9)}
    assert windows.n_examples == 7
    # newest window first, left-padded; the older window holds the remaining targets
    assert windows.inputs.tolist() == [[3, 4, 5, 6], [0, 0, 1, 2], [0, 0, 0, 8]]
    assert windows.targets.tolist() == [[4, 5, 6, 7], [0, 0, 2, 3], [0, 0, 0, 9]]
    assert ((windows.inputs > 0) == (windows.targets > 0)).all()
    assert windows.inputs.dtype == windows.targets.dtype == np.int32  # half of int64's memory at 25M events


def test_windows_of_a_splits_flat_histories_are_those_of_the_same_histories_as_a_list():
    data = rule_sequences(n_users=200, n_items=30)
    split = leave_one_out(data)
    for histories in (split.train, split.valid.histories, split.test.histories):  # views of the sequences, no copies
        assert isinstance(histories, Histories) and np.shares_memory(histories.items, data.items)
    flat = training_windows(split.train, max_len=8)
    listed = training_windows([np.array(h) for h in split.train], max_len=8)
    assert np.array_equal(flat.inputs, listed.inputs) and np.array_equal(flat.targets, listed.targets)
    for (a, b), (c, d) in zip(flat.batches(16, np.random.default_rng(4)), listed.batches(16, np.random.default_rng(4))):
        assert torch.equal(a, c) and torch.equal(b, d)
        assert a.dtype == b.dtype == torch.int64  # what embeddings and cross-entropy take
    counts = np.bincount(listed.targets.ravel(), minlength=data.n_items + 1)
    counts[0] = 0
    assert np.array_equal(flat.target_counts(data.n_items), counts)


def test_histories_read_in_chunks_equal_one_pass(monkeypatch):
    import core.data.histories as histories

    rng = np.random.default_rng(3)
    sequences = [rng.integers(1, 20, size=n) for n in rng.integers(0, 40, size=300)]
    whole = Histories.of(sequences)
    assert [h.tolist() for h in whole] == [s.tolist() for s in sequences] and whole.items.dtype == np.int32
    assert [h.tolist() for h in whole[np.array([5, 2])]] == [sequences[5].tolist(), sequences[2].tolist()]
    monkeypatch.setattr(histories, "COUNT_CHUNK", 7)
    assert np.array_equal(whole.flat(), np.concatenate(sequences))
    assert np.array_equal(whole.item_counts(19), np.bincount(np.concatenate(sequences), minlength=20))


def test_batches_shuffle_every_window_once_and_trim_padding_columns():
    rng = np.random.default_rng(0)
    sequences = [np.arange(1, n + 2) for n in rng.integers(1, 30, size=500)]
    windows = training_windows(sequences, max_len=10)
    seen = []
    for inputs, targets in windows.batches(32, np.random.default_rng(1)):
        assert inputs.shape == targets.shape and len(inputs) <= 32
        assert (inputs[:, 0] > 0).any()  # no all-padding leading column survives
        seen.extend(tuple(row[row > 0].tolist()) for row in targets.numpy())
    expected = [tuple(row[row > 0].tolist()) for row in windows.targets]
    assert sorted(seen) == sorted(expected)
    first = [b.tolist() for b in windows.batch_rows(32, np.random.default_rng(1))]
    again = [b.tolist() for b in windows.batch_rows(32, np.random.default_rng(1))]
    other = [b.tolist() for b in windows.batch_rows(32, np.random.default_rng(2))]
    assert first == again and first != other
