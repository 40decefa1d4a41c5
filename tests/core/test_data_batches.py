import numpy as np
import torch

from core.data import pad_histories, training_windows


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


def test_windows_built_a_chunk_at_a_time_equal_one_pass(monkeypatch):
    import core.data.batches as batches

    sequences = [np.arange(1, n + 2) for n in np.random.default_rng(3).integers(1, 40, size=300)]
    whole = training_windows(sequences, max_len=8)
    monkeypatch.setattr(batches, "WINDOW_CHUNK", 7)
    chunked = training_windows(sequences, max_len=8)
    assert np.array_equal(whole.inputs, chunked.inputs) and np.array_equal(whole.targets, chunked.targets)
    inputs, targets = chunked.batch(np.arange(5))
    assert inputs.dtype == targets.dtype == torch.int64  # what embeddings and cross-entropy take


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
