"""Many users' item sequences as one flat item array plus where each sequence starts and how long it is.

A split holds every user's training prefix and the validation and test histories: at a million
users, a Python list of a million NumPy views took over a gigabyte (an array object per view,
two lists of them, and the copies a few readers made). ``Histories`` keeps the flat array (the
memory-mapped sequence cache itself when the histories are prefixes of its users' sequences)
and two integer arrays; it still reads as a sequence of arrays (``len``, ``h[i]``, iteration), so
code that takes a list of histories takes it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Iterator, Union

import numpy as np

COUNT_CHUNK = 4_000_000  # events gathered per pass when counting items (bounds the pass's int64 positions)


class Histories(Sequence):
    """``self[i]`` is ``items[starts[i] : starts[i] + lengths[i]]``: a plain view, never a copy."""

    __slots__ = ("items", "starts", "lengths")

    def __init__(self, items: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> None:
        # Views of a memory map sliced a million times are each a ``np.memmap`` with its own finaliser.
        self.items = items.view(np.ndarray) if isinstance(items, np.memmap) else np.asarray(items)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if self.starts.shape != self.lengths.shape:
            raise ValueError(f"{len(self.starts)} starts for {len(self.lengths)} lengths")

    @classmethod
    def of(cls, histories: Union["Histories", Sequence[np.ndarray]]) -> "Histories":
        """``histories`` as ``Histories``: itself, or a list of arrays concatenated (int32) once."""
        if isinstance(histories, Histories):
            return histories
        lengths = np.array([len(h) for h in histories], dtype=np.int64)
        items = (np.concatenate([np.asarray(h) for h in histories]).astype(np.int32) if lengths.sum()
                 else np.zeros(0, dtype=np.int32))
        return cls(items, np.cumsum(lengths) - lengths, lengths)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index):
        """An int gives one history (an array view); a slice or an index array, those histories."""
        if isinstance(index, (int, np.integer)):
            start = int(self.starts[index])
            return self.items[start : start + int(self.lengths[index])]
        return Histories(self.items, self.starts[index], self.lengths[index])

    def __iter__(self) -> Iterator[np.ndarray]:
        items = self.items
        for start, length in zip(self.starts.tolist(), self.lengths.tolist()):
            yield items[start : start + length]

    def with_lengths(self, starts: np.ndarray, lengths: np.ndarray) -> "Histories":
        """Other windows of the same flat items (e.g. each history's latest part)."""
        return Histories(self.items, starts, lengths)

    @property
    def total(self) -> int:
        """Events in all the histories together."""
        return int(self.lengths.sum())

    def positions(self, first: int = 0, stop: int | None = None) -> np.ndarray:
        """(events,) int64 index into ``items`` of every event of histories ``first:stop``, in order."""
        starts, lengths = self.starts[first:stop], self.lengths[first:stop]
        ends = np.cumsum(lengths)
        return np.repeat(starts - (ends - lengths), lengths) + np.arange(int(ends[-1]) if len(ends) else 0)

    def chunks(self, events: int = COUNT_CHUNK) -> Iterator[tuple[int, int]]:
        """(first, stop) ranges of histories holding about ``events`` events each (at least one history)."""
        ends = np.cumsum(self.lengths)
        first = 0
        while first < len(self):
            stop = max(first + 1, int(np.searchsorted(ends, (ends[first - 1] if first else 0) + events, "right")))
            yield first, min(stop, len(self))
            first = stop

    def flat(self) -> np.ndarray:
        """Every event of every history, concatenated in order (int32): one copy, gathered in chunks."""
        out = np.empty(self.total, dtype=np.int32)
        at = 0
        for first, stop in self.chunks():
            part = self.items[self.positions(first, stop)]
            out[at : at + len(part)] = part
            at += len(part)
        return out

    def item_counts(self, n_items: int) -> np.ndarray:
        """(n_items + 1,) int64 how many events of the histories are on each item (index 0: padding)."""
        counts = np.zeros(n_items + 1, dtype=np.int64)
        for first, stop in self.chunks():
            counts += np.bincount(self.items[self.positions(first, stop)], minlength=n_items + 1)[: n_items + 1]
        return counts
