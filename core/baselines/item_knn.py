"""ItemKNNScorer: items that co-occur near each other in sequences, and the blockwise
co-occurrence count that fits it within a bounded memory on large logs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from joblib import Parallel, delayed

from core.baselines.sparse_rows import SparseRowScorer, gather_csr_rows
from core.baselines.train_log import TrainLog


class ItemKNNScorer(SparseRowScorer):
    """Item-to-item collaborative filtering: items that co-occur near each other in sequences.

    Co-occurrence counts within ``window`` steps (both directions) are cosine-normalised,
    c_ab / sqrt(n_a n_b), and each item keeps its ``neighbours`` strongest partners. A user's
    score sums the rows of their last ``max_history`` items, newer events weighted more
    (``decay`` per step back).
    """

    name = "itemknn"

    def __init__(self, indptr, indices, values, popularity, item_category, n_categories,
                 max_history: int = 20, decay: float = 0.8) -> None:
        super().__init__(indptr, indices, values, popularity, item_category, n_categories)
        self.max_history, self.decay = int(max_history), float(decay)

    @classmethod
    def fit(cls, log: TrainLog, window: int = 5, neighbours: int = 100, max_history: int = 20,
            decay: float = 0.8) -> "ItemKNNScorer":
        width = log.n_items + 1
        occurrences = np.bincount(log.items, minlength=width).astype(np.float64)
        events = _EventsByItem.of(log, window)
        blocks = _row_blocks(occurrences, window)
        # numpy's gathers, comparisons and sorts release the GIL, so threads share the row blocks
        # (processes would copy the log); at most two blocks' pairs are held at once per thread
        parts = Parallel(n_jobs=min(FIT_THREADS, len(blocks)), prefer="threads")(
            delayed(_strongest_in_rows)(events, window, occurrences, neighbours, low, high) for low, high in blocks)
        rows, cols, sims = (np.concatenate([part[i] for part in parts]) for i in range(3))
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=width))]).astype(np.int64)
        return cls(indptr, cols, sims, log.item_shares(), log.item_category, log.n_categories, max_history, decay)

    def narrowed(self, neighbours: int) -> "ItemKNNScorer":
        """The same scorer with each item's ``neighbours`` strongest partners only: what fitting
        with fewer neighbours gives (up to near-equal similarities), without counting again."""
        rows = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        keep = _strongest_per_row(rows, self.values, neighbours)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=len(self.indptr) - 1))])
        return ItemKNNScorer(indptr, self.indices[keep], self.values[keep], self.popularity, self.item_category,
                             self.n_categories, self.max_history, self.decay)

    def history_weights(self, history: np.ndarray) -> np.ndarray:
        steps_back = np.arange(len(history))[::-1]
        return np.where(steps_back < self.max_history, self.decay ** steps_back, 0.0) * (history > 0)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {**self._sparse_state(), "max_history": torch.tensor(self.max_history),
                "decay": torch.tensor(self.decay, dtype=torch.float64)}

    def remapped(self, new_to_old: np.ndarray, item_category: np.ndarray) -> "ItemKNNScorer":
        """The same neighbours on another catalogue's item indices (``new_to_old``: the old index of
        each new item, 0 = new); new items have none, removed items are dropped."""
        new_to_old = np.asarray(new_to_old, dtype=np.int64)
        old_to_new = np.zeros(len(self.indptr) - 1, dtype=np.int64)
        old_to_new[new_to_old[new_to_old > 0]] = np.flatnonzero(new_to_old > 0)
        positions = gather_csr_rows(self.indptr, new_to_old)
        rows = np.repeat(np.arange(len(new_to_old)), self.indptr[new_to_old + 1] - self.indptr[new_to_old])
        cols = old_to_new[self.indices[positions]]
        kept = np.flatnonzero(cols > 0)
        kept = kept[np.lexsort((cols[kept], rows[kept]))]  # row_values looks entries up in (row, col) order
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[kept], minlength=len(new_to_old)))])
        popularity = np.where(new_to_old > 0, self.popularity[new_to_old], 0.0)
        return ItemKNNScorer(indptr, cols[kept], self.values[positions][kept], popularity, item_category,
                             self.n_categories, self.max_history, self.decay)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "ItemKNNScorer":
        return cls(state["indptr"].numpy(), state["indices"].numpy(), state["values"].numpy(),
                   state["popularity"].numpy(), state["item_category"], int(state["n_categories"]),
                   int(state["max_history"]), float(state["decay"]))


# Co-occurrence pairs counted at once: a block's events read their neighbours as (events, 2 * window)
# matrices of 8-byte indices and keys, about 40 bytes a pair at the peak, so this bounds item-kNN's
# memory near 0.2 GB a thread whatever the log's size (25M events, window 5: 250M pairs, 50 row blocks).
# At 30M pairs a block, two threads took `train --model itemknn` to 6.6 GB on the 25M-event log; at 10M,
# counting the ranker's co-occurrence added 1.4-1.6 GB to a 25M-event SASRec run's peak.
PAIRS_PER_BLOCK = 5_000_000
FIT_THREADS = 2  # row blocks counted at once (joblib threads)


@dataclass(frozen=True)
class _EventsByItem:
    """The log's events grouped by item (``first[i]:first[i + 1]`` of ``positions`` are item i's),
    each with how many events of its sequence come before and after it, so a row block reads only
    its own items' events and their neighbours. int32 where the log allows (half the bytes every
    block gathers); ``padded`` holds ``window`` zeros on each side of the log's items, so an
    event's neighbours are read without clipping their positions."""

    padded: np.ndarray  # (window + n_events + window,) the log's items
    positions: np.ndarray  # (n_events,) event positions, grouped by item
    first: np.ndarray  # (width + 1,) where each item's positions begin
    before: np.ndarray  # (n_events,) events of the same sequence before each position in ``positions``
    after: np.ndarray  # (n_events,) and after it (both in ``positions``' integer type)

    @classmethod
    def of(cls, log: TrainLog, window: int) -> "_EventsByItem":
        index = np.int32 if len(log.items) + 2 * window < 2**31 else np.int64
        positions = np.argsort(log.items, kind="stable").astype(index)
        first = np.concatenate([[0], np.cumsum(np.bincount(log.items, minlength=log.n_items + 1))]).astype(np.int64)
        lengths = np.diff(log.offsets).astype(index)
        before = np.arange(len(log.items), dtype=index) - np.repeat(log.offsets[:-1].astype(index), lengths)
        after = (np.repeat(lengths, lengths) - 1 - before)[positions]
        padded = np.zeros(len(log.items) + 2 * window, dtype=np.int32 if log.n_items < 2**31 else np.int64)
        padded[window:window + len(log.items)] = log.items
        return cls(padded, positions, first, before[positions], after)


# A block's pair keys are ``(row - low) * width + col``: 4-byte keys (half the bytes to sort) when a
# block spans at most this many cells, which ``_row_blocks`` sees to.
UINT32_CELLS = 2**32


def _row_blocks(occurrences: np.ndarray, window: int) -> list[tuple[int, int]]:
    """Ranges [low, high) of item indices holding about ``PAIRS_PER_BLOCK`` pairs each (an item
    has about ``2 * window`` pairs per event, so blocks split the cumulative event count), and
    few enough rows that their keys fit 32 bits (``UINT32_CELLS``) when the catalogue allows."""
    pairs = 2 * window * occurrences
    blocks = max(1, int(np.ceil(pairs.sum() / PAIRS_PER_BLOCK)))
    cuts = np.searchsorted(np.cumsum(pairs), pairs.sum() * np.arange(1, blocks) / blocks)
    edges = np.unique(np.concatenate([[0], cuts + 1, [len(occurrences)]]))
    rows = max(1, UINT32_CELLS // len(occurrences))
    edges = np.unique(np.concatenate([np.arange(low, high, rows) for low, high in zip(edges[:-1], edges[1:])]
                                     + [[len(occurrences)]]))
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _strongest_in_rows(events: _EventsByItem, window: int, occurrences, k: int, low: int, high: int):
    """(rows, cols, cosine) of rows ``low..high-1``: co-occurrences within ``window`` steps of the
    same sequence (both directions, an item never with itself), each row's ``k`` strongest.

    Each of the block's events reads its ``2 * window`` neighbours in one gather of adjacent
    entries; the pairs are counted as sorted ``(row - low) * width + col`` keys (32-bit when the
    block's cells fit them)."""
    width = len(occurrences)
    key_type = np.uint32 if (high - low) * width <= UINT32_CELLS else np.uint64
    span = slice(events.first[low], events.first[high])
    steps = np.array([*range(-window, 0), *range(1, window + 1)], dtype=events.positions.dtype)
    inside = (steps >= -events.before[span, None]) & (steps <= events.after[span, None])  # (events, 2 * window)
    partners = events.padded[events.positions[span, None] + (steps + window)]
    item = np.repeat(np.arange(low, high, dtype=partners.dtype), np.diff(events.first[low:high + 1]))  # of each event
    chosen = inside & (partners != item[:, None])
    keys = np.sort(((item - low).astype(key_type)[:, None] * key_type(width) + partners.astype(key_type))[chosen])
    del inside, partners, chosen
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if len(keys) else keys
    counts = np.diff(np.append(starts, len(keys))).astype(np.float64)
    keys = keys[starts].astype(np.int64)
    per_row = np.diff(np.searchsorted(keys, np.arange(high - low + 1) * width))
    rows = np.repeat(np.arange(low, high), per_row)
    cols = keys - (rows - low) * width
    sims = counts / np.sqrt(np.maximum(occurrences[rows] * occurrences[cols], 1.0))
    keep = _strongest_per_row(rows - low, sims, k)
    return rows[keep], cols[keep], sims[keep]


def _strongest_per_row(rows: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask keeping each row's ``k`` largest positive values (rows sorted, from 0; values
    within about 1e-4 of each other count as equal, the earlier entry kept).

    One sort of unsigned keys "row, falling value, entry": a positive float32's bits order like the
    number, and its top bits fill what the row and entry leave. An argsort or lexsort of the same
    takes 6-10 times as long."""
    if len(rows) == 0:
        return np.zeros(0, dtype=bool)
    entry_bits = int(len(rows) - 1).bit_length()
    row_bits = max(1, int(rows[-1]).bit_length())
    value_bits = min(31, 64 - entry_bits - row_bits)
    if value_bits < 16:  # millions of rows in one block leave too few bits for the value
        order = np.lexsort((-values, rows))
    else:
        bits = values.astype(np.float32).view(np.uint32).astype(np.uint64) >> np.uint64(31 - value_bits)
        falling = np.uint64(2 ** value_bits - 1) - bits
        keys = ((rows.astype(np.uint64) << np.uint64(64 - row_bits)) | (falling << np.uint64(entry_bits))
                | np.arange(len(rows), dtype=np.uint64))
        order = (np.sort(keys) & np.uint64(2 ** entry_bits - 1)).astype(np.int64)
    # rows are sorted, and so are the ordered entries' rows: the n-th entry of either is in the same row
    first = np.flatnonzero(np.concatenate([[True], rows[1:] != rows[:-1]]))
    rank_in_row = np.arange(len(rows)) - np.repeat(first, np.diff(np.append(first, len(rows))))
    keep = np.zeros(len(rows), dtype=bool)
    keep[order[rank_in_row < k]] = True
    return keep
