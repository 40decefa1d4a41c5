"""Fixed-length, left-padded training windows and the mini-batches drawn from them.

Every position of every training sequence is a next-item example. Long sequences are cut
into consecutive windows of ``max_len`` targets (the most recent window first), so no
example is thrown away, and each window keeps the full context that fits. All of it is
vectorised numpy: building the windows of 20k users takes milliseconds, which keeps a 2-core
CPU busy with the model rather than with Python loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from core.data.histories import Histories

# Batches are drawn from pools this many batches large, sorted by length inside the pool, so
# short sequences are batched together and their padding columns can be trimmed away.
BUCKET_POOL = 16


def pad_histories(histories: list[np.ndarray], max_len: int) -> np.ndarray:
    """(batch, max_len) int64: the most recent ``max_len`` items of each history, left-padded with 0."""
    out = np.zeros((len(histories), max_len), dtype=np.int64)
    if not histories:
        return out
    lengths = np.minimum([len(h) for h in histories], max_len)
    flat = np.concatenate([h[len(h) - n :] for h, n in zip(histories, lengths)]) if lengths.sum() else np.zeros(0)
    rows = np.repeat(np.arange(len(histories)), lengths)
    cols = max_len - np.repeat(lengths, lengths) + _ranges(lengths)
    out[rows, cols] = flat
    return out


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """Concatenated aranges: [0..l0), [0..l1), ... without a Python loop."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total, dtype=np.int64) - starts


@dataclass(frozen=True)
class TrainingWindows:
    """Next-item examples as aligned (input, target) windows; 0 marks padding in both.

    Held as where each window ends in the flat item array and how many targets it holds, not as
    matrices: a batch's rows are gathered when it is drawn. At 25M events the (windows x max_len)
    matrices took 630 MB of int32 (and the history lists they were cut from over a gigabyte).
    """

    items: np.ndarray  # the flat item array the windows are cut from (int32; a memory map stays one)
    last_target: np.ndarray  # (n_windows,) int64 position in ``items`` of each window's last target
    held: np.ndarray  # (n_windows,) int64 targets in each window (1..max_len)
    max_len: int

    def __len__(self) -> int:
        return len(self.last_target)

    @property
    def n_examples(self) -> int:
        return int(self.held.sum())

    @property
    def inputs(self) -> np.ndarray:
        """(n_windows, max_len) int32 inputs of every window (small data and tests; batches gather their rows)."""
        return self.rows(np.arange(len(self)))[0]

    @property
    def targets(self) -> np.ndarray:
        """(n_windows, max_len) int32: targets[r, j] follows inputs[r, :j + 1]."""
        return self.rows(np.arange(len(self)))[1]

    def rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets) int32 matrices of the windows ``rows``, left-padded to ``max_len``."""
        rows = np.asarray(rows, dtype=np.int64)
        columns = np.arange(self.max_len)
        target_pos = self.last_target[rows, None] - (self.max_len - 1 - columns)[None, :]  # (rows, max_len)
        valid = columns[None, :] >= (self.max_len - self.held[rows])[:, None]
        target_pos = np.where(valid, target_pos, 0)
        targets = np.where(valid, self.items[target_pos], 0).astype(np.int32)
        inputs = np.where(valid, self.items[np.maximum(target_pos - 1, 0)], 0).astype(np.int32)
        return inputs, targets

    def target_counts(self, n_items: int) -> np.ndarray:
        """(n_items + 1,) int64 how often each item is a target (index 0: padding, 0): a window's targets
        are the ``held`` items of ``items`` up to its last target."""
        return Histories(self.items, self.last_target - self.held + 1, self.held).item_counts(n_items)

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled (inputs, targets) batches with all-padding leading columns trimmed."""
        for rows in self.batch_rows(batch_size, rng):
            yield self.batch(rows)

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The windows ``rows`` as int64 (inputs, targets) tensors, all-padding leading columns trimmed."""
        first = self.max_len - int(self.held[rows].max()) if len(rows) else 0
        inputs, targets = self.rows(rows)
        return (torch.from_numpy(inputs[:, first:].astype(np.int64)),
                torch.from_numpy(targets[:, first:].astype(np.int64)))

    def batch_rows(self, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Row indices per batch: shuffled, then length-sorted within pools of batches."""
        order = rng.permutation(len(self))
        lengths = self.held[order]
        pool = batch_size * BUCKET_POOL
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.argsort(-lengths[start : start + pool], kind="stable")]
            batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
        return [batches[i] for i in rng.permutation(len(batches))]


def training_windows(sequences, max_len: int) -> TrainingWindows:
    """Cut each sequence into windows of up to ``max_len`` next-item targets, newest first.

    ``sequences``: ``core.data.histories.Histories`` (a split's training part: views of the sequence
    cache, nothing copied) or a list of arrays. A sequence of n items yields n - 1 targets (items
    2..n); sequences shorter than 2 yield none.
    """
    histories = Histories.of(sequences)
    n_targets = np.maximum(histories.lengths - 1, 0)
    n_windows = -(-n_targets // max_len)  # ceil
    seq_of_window = np.repeat(np.arange(len(histories)), n_windows)
    window_no = _ranges(n_windows)  # 0 = most recent window
    # Position (in the flat items) of the last target of each window, and how many targets it holds.
    last_target = (histories.starts + histories.lengths - 1)[seq_of_window] - window_no * max_len
    held = np.minimum(max_len, n_targets[seq_of_window] - window_no * max_len)
    return TrainingWindows(histories.items, last_target, held, max_len)
