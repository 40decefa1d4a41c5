"""Non-neural recommenders behind the same ``Scorer`` interface as the sequence models.

They are the yardsticks every trained model is compared with, the cold-start fallback
(popularity within a profile segment) and a way to serve something useful seconds after
an import. All of them fit from a ``TrainLog`` (the training prefixes of a split, never
the held-out targets) in numpy, and rebuild from their ``state_tensors()`` alone.

``interests()`` of a baseline is the category mix of what it would recommend (its top
``INTEREST_TOP`` items, weighted by score): baselines have no interest head of their own.
Interest c - 1 is category c, as in ``core.predictor``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from joblib import Parallel, delayed

from core.data.histories import Histories
from core.scorer import Scorer
from core.top_k import top_k

INTEREST_TOP = 100
INTEREST_BATCH = 256  # users scored at once for interests_batch


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


class _BaselineScorer:
    """Shared item facts and the interests/attribution defaults of every baseline."""

    name = "baseline"

    def __init__(self, item_category: torch.Tensor, n_categories: int) -> None:
        self.item_category = item_category.long()
        self.n_categories = int(n_categories)
        self.n_items = len(item_category) - 1

    def interests(self, history: np.ndarray) -> Optional[np.ndarray]:
        """Category mix of the top items this scorer would recommend next.

        Indexed like the neural interest head: interest c - 1 = category c; None when none of
        the top items has a category.
        """
        mix = self.interests_batch([np.asarray(history, dtype=np.int64)])[0]
        return mix if mix.sum() > 0 else None

    def interests_batch(self, histories: list[np.ndarray], segments: Optional[np.ndarray] = None) -> np.ndarray:
        """(B, n_categories - 1) interests of many users at once; zero rows where none is known.

        Scored ``INTEREST_BATCH`` users at a time: the ranker asks for thousands, and their full
        score rows at once would take 2.4 GB on a 200,000-item catalogue."""
        chunks = [self._interests_of(histories[start:start + INTEREST_BATCH],
                                     None if segments is None else segments[start:start + INTEREST_BATCH])
                  for start in range(0, len(histories), INTEREST_BATCH)]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.n_categories - 1))

    def _interests_of(self, histories: list[np.ndarray], segments: Optional[np.ndarray]) -> np.ndarray:
        scores = self.score(histories, segments)  # a new tensor every call (the Scorer contract): ours to change
        scores[:, 0] = float("-inf")
        top = top_k(scores, min(INTEREST_TOP, self.n_items))
        weights = torch.clamp(torch.nan_to_num(top.values, neginf=0.0), min=0).double()
        flat = torch.where(weights.sum(dim=1, keepdim=True) > 0, weights, torch.ones_like(weights))
        mix = torch.zeros(len(histories), self.n_categories, dtype=torch.float64)
        mix.scatter_add_(1, self.item_category[top.indices], flat)
        mix = mix[:, 1:]
        totals = mix.sum(dim=1, keepdim=True)
        return torch.where(totals > 0, mix / totals.clamp(min=1e-300), mix).numpy()

    def attributions(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """No history event drives a popularity list: all weights are zero."""
        return np.zeros((len(items), len(history)), dtype=np.float32)

    def text_vectors(self) -> Optional[torch.Tensor]:
        """Baselines read no item text."""
        return None

    def _base_state(self) -> dict[str, torch.Tensor]:
        return {"item_category": self.item_category, "n_categories": torch.tensor(self.n_categories)}


class PopularityScorer(_BaselineScorer):
    """Most-taken items overall, or within the user's profile segment when one is known.

    A segment's shares are shrunk towards the global shares by ``SHRINK`` pseudo-events, so a
    small segment does not recommend the quirks of its three users.
    """

    name = "pop"
    SHRINK = 20.0

    def __init__(self, table: torch.Tensor, item_category: torch.Tensor, n_categories: int) -> None:
        super().__init__(item_category, n_categories)
        self.table = table.float()  # (n_segments, n_items + 1); row 0 = global shares, col 0 = -inf

    @classmethod
    def fit(cls, log: TrainLog, weights: Optional[np.ndarray] = None) -> "PopularityScorer":
        width = log.n_items + 1
        counts = log.segment_counts(width, weights=weights)
        global_counts = counts.sum(axis=0)
        global_share = global_counts / max(global_counts.sum(), 1e-12)
        seg_totals = counts.sum(axis=1, keepdims=True)
        table = (counts + cls.SHRINK * global_share) / (seg_totals + cls.SHRINK)
        table[0] = global_share
        table[:, 0] = -np.inf
        return cls(torch.from_numpy(table), torch.from_numpy(log.item_category), log.n_categories)

    @property
    def global_share(self) -> torch.Tensor:
        return self.table[0].clamp(min=0)

    def score(self, histories: list[np.ndarray], segments: Optional[np.ndarray] = None) -> torch.Tensor:
        return self.table[torch.from_numpy(self._rows(len(histories), segments))]

    def _rows(self, n_users: int, segments: Optional[np.ndarray]) -> np.ndarray:
        """The table row of each user: their segment's, or the global one (0) when it has none."""
        if segments is None:
            return np.zeros(n_users, dtype=np.int64)
        rows = np.asarray(segments, dtype=np.int64)
        return np.where(rows < len(self.table), rows, 0)

    def _interests_of(self, histories: list[np.ndarray], segments: Optional[np.ndarray]) -> np.ndarray:
        """One segment's users share its list, so each segment's mix is worked out once: the ranker
        asks for thousands of users, each a full-catalogue top-k otherwise."""
        rows, inverse = np.unique(self._rows(len(histories), segments), return_inverse=True)
        return super()._interests_of([np.zeros(0, np.int64)] * len(rows), rows)[inverse.reshape(-1)]

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"table": self.table, **self._base_state()}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "PopularityScorer":
        return cls(state["table"], state["item_category"], int(state["n_categories"]))


class RecentPopularityScorer(PopularityScorer):
    """Popularity where each event counts less the older it is (exponential decay by timestamp).

    The half-life defaults to a tenth of the training log's time span: long enough to smooth
    daily noise, short enough to follow what the shop sells now.
    """

    name = "recentpop"

    @classmethod
    def fit(cls, log: TrainLog, half_life: Optional[float] = None) -> "RecentPopularityScorer":
        if len(log.ts) == 0:
            return super().fit(log)
        newest, span = float(log.ts.max()), float(log.ts.max() - log.ts.min())
        half_life = half_life or max(span / 10.0, 1e-9)
        weights = np.exp(-math.log(2.0) * (newest - log.ts) / half_life)
        return super().fit(log, weights=weights)


def gather_csr_rows(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions in a CSR matrix's ``indices``/``data`` of every entry of ``rows``, in row order."""
    starts, lengths = indptr[rows], indptr[rows + 1] - indptr[rows]
    if lengths.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(int(lengths.sum()), dtype=np.int64) + shift


class _SparseRowScorer(_BaselineScorer):
    """Scores = weighted sum of CSR rows picked by each user's history, plus a popularity floor.

    Summation is one ``np.bincount`` over the whole batch, so a batch of users costs a few
    vectorised passes regardless of catalogue size. The tiny popularity term orders the items
    the history says nothing about, instead of leaving them tied.
    """

    FLOOR = 1e-6

    def __init__(self, indptr, indices, values, popularity, item_category, n_categories) -> None:
        super().__init__(torch.as_tensor(item_category), n_categories)
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.values = np.asarray(values, dtype=np.float32)
        self.popularity = np.asarray(popularity, dtype=np.float32)  # (n_items + 1,) shares

    def history_weights(self, history: np.ndarray) -> np.ndarray:
        """Weight of each history position in the sum (same length as the history)."""
        raise NotImplementedError

    def score(self, histories: list[np.ndarray], segments: Optional[np.ndarray] = None) -> torch.Tensor:
        owners, items, contributions = self.history_entries(histories)
        # the floor written once, the rows' few entries added into it: a dense float64 count of every
        # (user, item) cell would write the (B, n_items) block three times over
        scores = self._floor(histories)
        scores.view(-1).index_add_(0, torch.from_numpy(owners * (self.n_items + 1) + items),
                                   torch.from_numpy(contributions))
        scores[:, 0] = float("-inf")
        return scores

    def history_entries(self, histories: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(owner, item, contribution): every matrix entry the users' weighted history rows add to their
        scores (an item once per history event that reaches it), without the floor; a few per event,
        whatever the catalogue's size."""
        owners, rows, weights = [], [], []
        for b, history in enumerate(histories):
            history = np.asarray(history, dtype=np.int64)
            w = self.history_weights(history)
            used = w > 0
            owners.append(np.full(int(used.sum()), b))
            rows.append(history[used])
            weights.append(w[used])
        owners, rows, weights = (np.concatenate(x) if x else np.zeros(0) for x in (owners, rows, weights))
        rows = rows.astype(np.int64)
        positions = gather_csr_rows(self.indptr, rows)
        lengths = self.indptr[rows + 1] - self.indptr[rows]
        return (np.repeat(owners.astype(np.int64), lengths), self.indices[positions],
                (np.repeat(weights, lengths) * self.values[positions]).astype(np.float32))

    def _floor(self, histories: list[np.ndarray]) -> torch.Tensor:
        """(B, n_items + 1) the scores before the rows' entries are added: the popularity floor."""
        pop = torch.from_numpy(self.popularity)
        return (self.FLOOR * pop).expand(len(histories), len(pop)).contiguous()

    def row_values(self, rows: np.ndarray, cols: np.ndarray, groups: Optional[np.ndarray] = None) -> np.ndarray:
        """(R, C) float32 matrix entries at (rows[r], cols[groups[r], c]); 0 where the matrix has none.
        ``groups``: which row of ``cols`` each asked row reads (default: its own; rows asked against one
        list of columns, a user's history against their candidates, share it).

        The stored entries of the asked rows (a few each) are looked up among the asked columns,
        sorted, not each asked pair among all of the matrix's entries: a served batch asks ~10,000
        pairs, and searching them in a 10k-item catalogue's 100,000 entries was a tenth of a
        Transformer run's serving time."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        groups = np.arange(len(rows)) if groups is None else np.asarray(groups, dtype=np.int64)
        values = np.zeros((len(rows), cols.shape[1]), dtype=np.float32)
        positions = gather_csr_rows(self.indptr, rows)
        if not len(positions) or not values.size:
            return values
        width, n_cols = self.n_items + 1, cols.shape[1]
        order = np.argsort(cols, axis=1, kind="stable")
        asked = (np.arange(len(cols))[:, None] * width + np.take_along_axis(cols, order, axis=1)).ravel()  # ascending
        owner = np.repeat(np.arange(len(rows)), self.indptr[rows + 1] - self.indptr[rows])
        stored = groups[owner] * width + self.indices[positions]
        first, last = np.searchsorted(asked, stored, "left"), np.searchsorted(asked, stored, "right")
        found = last - first  # how often each stored entry was asked (a column asked twice gets it twice)
        at = np.repeat(first - np.cumsum(found) + found, found) + np.arange(int(found.sum()))
        values.ravel()[np.repeat(owner, found) * n_cols + order.ravel()[at]] = np.repeat(self.values[positions], found)
        return values

    def attributions(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Each history event's contribution to each item's score (weight × matrix entry); the entries
        are looked up for the events that weigh only (Markov's last, item-kNN's latest 20): a long
        history's every pair took half of an export's time."""
        history, items = np.asarray(history, np.int64), np.asarray(items, np.int64)
        weights = self.history_weights(history).astype(np.float32)
        used = np.flatnonzero(weights > 0)
        contributions = np.zeros((len(items), len(history)), dtype=np.float32)
        values = self.row_values(history[used], items[None, :], np.zeros(len(used), dtype=np.int64))
        contributions[:, used] = values.T * weights[used][None, :]
        return contributions

    def _sparse_state(self) -> dict[str, torch.Tensor]:
        return {"indptr": torch.from_numpy(self.indptr), "indices": torch.from_numpy(self.indices),
                "values": torch.from_numpy(self.values), "popularity": torch.from_numpy(self.popularity),
                **self._base_state()}


def _csr_from_pairs(a: np.ndarray, b: np.ndarray, weights: np.ndarray, width: int):
    """Sum duplicate (a, b) pairs into a row-sorted CSR matrix of shape (width, width)."""
    keys = a.astype(np.int64) * width + b.astype(np.int64)
    unique, inverse = np.unique(keys, return_inverse=True)
    values = np.bincount(inverse, weights=weights, minlength=len(unique))
    rows, cols = unique // width, unique % width
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=width))]).astype(np.int64)
    return indptr, cols, values


def _item_shares(log: TrainLog) -> np.ndarray:
    counts = np.bincount(log.items, minlength=log.n_items + 1).astype(np.float64)
    counts[0] = 0.0
    return counts / max(counts.sum(), 1.0)


def _pairs_within(log: TrainLog, distance: int) -> tuple[np.ndarray, np.ndarray]:
    """(earlier, later) item pairs ``distance`` steps apart inside the same sequence."""
    seq = log.sequence_of_event
    same = seq[:-distance] == seq[distance:] if len(seq) > distance else np.zeros(0, bool)
    return log.items[:-distance][same], log.items[distance:][same]


class ItemKNNScorer(_SparseRowScorer):
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
        return cls(indptr, cols, sims, _item_shares(log), log.item_category, log.n_categories, max_history, decay)

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
# memory near 0.4 GB a thread whatever the log's size (25M events, window 5: 250M pairs, 25 row blocks).
# At 30M pairs a block, two threads took `train --model itemknn` to 6.6 GB on the 25M-event log.
PAIRS_PER_BLOCK = 10_000_000
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


class MarkovScorer(_SparseRowScorer):
    """First-order transitions: what people took right after the user's last item.

    P(b | a) is smoothed towards popularity with ``alpha`` pseudo-transitions:
    (c_ab + alpha p(b)) / (c_a + alpha), so a rarely-seen last item backs off to popularity
    and a user with no history gets popularity outright.
    """

    name = "markov"

    def __init__(self, indptr, indices, values, popularity, item_category, n_categories,
                 row_totals, alpha: float = 5.0) -> None:
        super().__init__(indptr, indices, values, popularity, item_category, n_categories)
        self.row_totals = np.asarray(row_totals, dtype=np.float32)
        self.alpha = float(alpha)

    @classmethod
    def fit(cls, log: TrainLog, alpha: float = 5.0) -> "MarkovScorer":
        width = log.n_items + 1
        a, b = _pairs_within(log, 1)
        indptr, cols, counts = _csr_from_pairs(a, b, np.ones(len(a)), width)
        row_totals = np.bincount(np.repeat(np.arange(width), np.diff(indptr)), weights=counts, minlength=width)
        return cls(indptr, cols, counts, _item_shares(log), log.item_category, log.n_categories, row_totals, alpha)

    def history_weights(self, history: np.ndarray) -> np.ndarray:
        weights = np.zeros(len(history))
        if len(history):
            weights[-1] = 1.0 / (self.row_totals[history[-1]] + self.alpha)
        return weights

    def _floor(self, histories: list[np.ndarray]) -> torch.Tensor:
        """The back-off to popularity, alpha / (c_a + alpha) p(b), in one write of the (B, n_items + 1)
        block (as floor, then minus the floor and plus the back-off in place, it took three)."""
        last = np.array([h[-1] if len(h) else 0 for h in histories], dtype=np.int64)
        backoff = self.alpha / (self.row_totals[last] + self.alpha)  # 1 for users with no history
        return torch.outer(torch.from_numpy(backoff.astype(np.float32)), torch.from_numpy(self.popularity))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {**self._sparse_state(), "row_totals": torch.from_numpy(self.row_totals),
                "alpha": torch.tensor(self.alpha, dtype=torch.float64)}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "MarkovScorer":
        return cls(state["indptr"].numpy(), state["indices"].numpy(), state["values"].numpy(),
                   state["popularity"].numpy(), state["item_category"], int(state["n_categories"]),
                   state["row_totals"].numpy(), float(state["alpha"]))


BASELINES = {cls.name: cls for cls in (PopularityScorer, RecentPopularityScorer, ItemKNNScorer, MarkovScorer)}


def fit_baseline(name: str, data, split) -> Scorer:
    """Fit the baseline called ``name`` ("pop", "recentpop", "itemknn", "markov") on the split's training prefixes."""
    return fit_baseline_on_log(name, TrainLog.from_split(data, split))


def fit_baseline_on_log(name: str, log: TrainLog) -> Scorer:
    """Fit the baseline called ``name`` on an already-built training log."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    return BASELINES[name].fit(log)
