"""SparseRowScorer: baselines whose scores sum CSR matrix rows picked by the user's history
(item-kNN, Markov), with the matrix lookups the ranker reads their entries through."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from core.baselines.base import BaselineScorer


def gather_csr_rows(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions in a CSR matrix's ``indices``/``data`` of every entry of ``rows``, in row order."""
    starts, lengths = indptr[rows], indptr[rows + 1] - indptr[rows]
    if lengths.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(int(lengths.sum()), dtype=np.int64) + shift


class SparseRowScorer(BaselineScorer):
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
