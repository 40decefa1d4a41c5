"""TrainLog: the training prefixes of a split in CSR form, what every baseline (and the ranker) fits from.

Built from the split's training sequences only, never the held-out targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from core.data.histories import Histories

EVENT_CHUNK = 4_000_000  # events per pass of a whole-log count (bounds its int64 keys)


@dataclass(frozen=True)
class TrainLog:
    """Training sequences in CSR form, plus the item facts every baseline and the ranker need.

    offsets: (n_seq + 1,) into ``items`` / ``ts``; items use SequenceData indices (1..n_items).
    segments: (n_seq,) profile segment of each sequence's user (0 = unknown).
    item_category: (n_items + 1,) primary category index (0 = none).
    """

    offsets: np.ndarray
    items: np.ndarray
    ts: np.ndarray
    segments: np.ndarray
    n_items: int
    item_category: np.ndarray
    n_categories: int
    n_segments: int

    @property
    def sequence_of_event(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))

    def segment_counts(self, width: int, item_values: Optional[np.ndarray] = None,
                       weights: Optional[np.ndarray] = None) -> np.ndarray:
        """(n_segments, width) float64: the events (``weights`` of them) per their sequence's segment and
        their item (or ``item_values[item]``, e.g. its category), counted a chunk of events at a time: the
        whole log's int64 keys took 800 MB at 25M events."""
        counts = np.zeros(self.n_segments * width)
        for start in range(0, len(self.items), EVENT_CHUNK):
            stop = min(start + EVENT_CHUNK, len(self.items))
            sequence = np.searchsorted(self.offsets, np.arange(start, stop), side="right") - 1
            items = self.items[start:stop]
            keys = self.segments[sequence] * width + (items if item_values is None else item_values[items])
            counts += np.bincount(keys, weights=None if weights is None else weights[start:stop],
                                  minlength=self.n_segments * width)
        return counts.reshape(self.n_segments, width)

    @classmethod
    def from_split(cls, data, split) -> "TrainLog":
        """The training prefixes of ``split`` (a ``core.data.Split`` over ``data``: each user's training
        sequence is the start of theirs), gathered a chunk of users at a time (whole-log int64 positions
        took a gigabyte at 25M events)."""
        lengths = Histories.of(split.train).lengths
        train = Histories(data.items, np.asarray(data.offsets)[:-1], lengths)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items, ts = np.empty(train.total, dtype=np.int32), np.empty(train.total, dtype=np.float64)
        for first, stop in train.chunks():
            positions = train.positions(first, stop)
            items[offsets[first]:offsets[stop]] = train.items[positions]
            ts[offsets[first]:offsets[stop]] = data.ts[positions]
        return cls(offsets, items, ts, np.asarray(data.user_segment, np.int64),
                   data.n_items, np.asarray(data.item_category, np.int64), data.n_categories,
                   max(len(data.segment_names), int(np.max(data.user_segment, initial=0)) + 1))

    @classmethod
    def from_histories(cls, histories, n_items, item_category, n_categories, segments=None, ts=None, n_segments=1):
        """Build from a list of item-index arrays (tests and small what-if data)."""
        lengths = np.array([len(h) for h in histories], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = np.concatenate(histories).astype(np.int64) if len(histories) else np.zeros(0, np.int64)
        ts = np.arange(len(items), dtype=np.float64) if ts is None else np.concatenate(ts).astype(np.float64)
        segments = np.zeros(len(histories), np.int64) if segments is None else np.asarray(segments, np.int64)
        return cls(offsets, items, ts, segments, int(n_items), np.asarray(item_category, np.int64),
                   int(n_categories), max(int(n_segments), int(segments.max(initial=0)) + 1))

    def item_shares(self) -> np.ndarray:
        """(n_items + 1,) each item's share of the log's events (0 for the padding index)."""
        counts = np.bincount(self.items, minlength=self.n_items + 1).astype(np.float64)
        counts[0] = 0.0
        return counts / max(counts.sum(), 1.0)
