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

# Batches are drawn from pools this many batches large, sorted by length inside the pool, so
# short sequences are batched together and their padding columns can be trimmed away.
BUCKET_POOL = 16
WINDOW_CHUNK = 65_536  # windows built per numpy pass (bounds the pass's int64 intermediates)


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
    """Next-item examples as aligned (input, target) matrices; 0 marks padding in both."""

    inputs: np.ndarray  # (n_windows, max_len) int32
    targets: np.ndarray  # (n_windows, max_len) int32: targets[r, j] follows inputs[r, :j + 1]

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def n_examples(self) -> int:
        return int((self.targets > 0).sum())

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled (inputs, targets) batches with all-padding leading columns trimmed."""
        for rows in self.batch_rows(batch_size, rng):
            yield self.batch(rows)

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The windows ``rows`` as int64 (inputs, targets) tensors, all-padding leading columns trimmed."""
        inputs, targets = self.inputs[rows], self.targets[rows]
        first = _first_used_column(inputs)
        return (torch.from_numpy(inputs[:, first:].astype(np.int64)),
                torch.from_numpy(targets[:, first:].astype(np.int64)))

    def batch_rows(self, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Row indices per batch: shuffled, then length-sorted within pools of batches."""
        order = rng.permutation(len(self))
        lengths = (self.inputs[order] > 0).sum(axis=1)
        pool = batch_size * BUCKET_POOL
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.argsort(-lengths[start : start + pool], kind="stable")]
            batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
        return [batches[i] for i in rng.permutation(len(batches))]


def _first_used_column(inputs: np.ndarray) -> int:
    used = np.flatnonzero((inputs > 0).any(axis=0))
    return int(used[0]) if len(used) else inputs.shape[1] - 1


def training_windows(sequences: list[np.ndarray], max_len: int) -> TrainingWindows:
    """Cut each sequence into windows of up to ``max_len`` next-item targets, newest first.

    A sequence of n items yields n - 1 targets (items 2..n); sequences shorter than 2 yield none.
    The windows are int32 and filled WINDOW_CHUNK at a time: at 25M events (1.1M windows of 72) int64
    windows and their whole-array intermediates took several GB, past the 4 GB every command keeps to.
    """
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    flat = np.concatenate(sequences).astype(np.int32) if len(sequences) else np.zeros(0, dtype=np.int32)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
    n_targets = np.maximum(lengths - 1, 0)
    n_windows = -(-n_targets // max_len)  # ceil
    seq_of_window = np.repeat(np.arange(len(sequences)), n_windows)
    window_no = _ranges(n_windows)  # 0 = most recent window
    # Position (in flat) of the last target of each window, and how many targets it holds.
    last_target = starts[seq_of_window] + lengths[seq_of_window] - 1 - window_no * max_len
    held = np.minimum(max_len, n_targets[seq_of_window] - window_no * max_len)
    inputs = np.zeros((len(last_target), max_len), dtype=np.int32)
    targets = np.zeros((len(last_target), max_len), dtype=np.int32)
    columns = np.arange(max_len)
    for start in range(0, len(last_target), WINDOW_CHUNK):
        rows = slice(start, start + WINDOW_CHUNK)
        target_pos = last_target[rows, None] - (max_len - 1 - columns)[None, :]  # (chunk, max_len)
        valid = columns[None, :] >= (max_len - held[rows])[:, None]
        target_pos = np.where(valid, target_pos, 0)
        targets[rows] = np.where(valid, flat[target_pos], 0)
        inputs[rows] = np.where(valid, flat[np.maximum(target_pos - 1, 0)], 0)
    return TrainingWindows(inputs, targets)
