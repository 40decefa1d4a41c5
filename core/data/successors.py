"""Which items are taken right after each item, and how often: "most often taken next".

Counting them for one item meant comparing every event of the log with it (about 25 ms of CPU at
25M events, for each item the studio shows, holding the window's interpreter lock in slices). So
every pair of consecutive events within a user's sequence is counted once per content, each
item's followers kept most frequent first (CSR: ``starts``, ``followers``, ``counts``), and the
arrays are kept beside the workspace as ``.npy`` files like the sequence cache: an item then costs
a slice of a memory-mapped file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from core.store.array_files import save_array_folder

CACHE_FORMAT = 1
_ARRAYS = ("starts", "followers", "counts")


class Successors:
    """Item ``i``'s followers are ``followers[starts[i]:starts[i + 1]]``, most often first (ties in
    item order), each taken right after ``i`` ``counts[...]`` times."""

    def __init__(self, starts: np.ndarray, followers: np.ndarray, counts: np.ndarray) -> None:
        self.starts, self.followers, self.counts = starts, followers, counts

    @classmethod
    def count(cls, items: np.ndarray, offsets: np.ndarray, n_items: int) -> "Successors":
        """Count the pairs of ``items`` (the sequence cache's flat item indices, users' sequences
        starting at ``offsets``) whose two events belong to one user. One sort of the pairs as
        int64 keys: at 25M events a few seconds and about 0.6 GB, once per content."""
        items = np.asarray(items)
        within_user = np.ones(max(len(items) - 1, 0), dtype=bool)
        boundaries = np.asarray(offsets[1:-1], dtype=np.int64) - 1
        within_user[boundaries[(boundaries >= 0) & (boundaries < len(within_user))]] = False
        width = np.int64(n_items + 1)
        keys = items[:-1][within_user].astype(np.int64) * width
        keys += items[1:][within_user]
        keys.sort()
        first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, dtype=np.int64)
        counts = np.diff(np.r_[first, len(keys)]).astype(np.int32)
        pairs = keys[first]
        del keys
        item, follower = pairs // width, (pairs % width).astype(np.int32)
        order = np.lexsort((-counts, item))  # by item, then most often first; stable, so ties stay in item order
        starts = np.searchsorted(item[order], np.arange(n_items + 2)).astype(np.int64)
        return cls(starts, follower[order], counts[order])

    def of(self, item: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items most often taken right after item index ``item``, and their counts."""
        if not 0 < item < len(self.starts) - 1:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
        start = int(self.starts[item])
        end = min(int(self.starts[item + 1]), start + max(n, 0))
        return np.asarray(self.followers[start:end]), np.asarray(self.counts[start:end])

    @classmethod
    def cached(cls, folder: Path) -> Optional["Successors"]:
        """The arrays saved in ``folder``, memory-mapped; None when it holds none."""
        if not all((folder / f"{name}.npy").is_file() for name in _ARRAYS):
            return None
        return cls(*(np.load(folder / f"{name}.npy", mmap_mode="r") for name in _ARRAYS))

    def save(self, folder: Path) -> None:
        save_array_folder(folder, {name: np.asarray(getattr(self, name)) for name in _ARRAYS})
