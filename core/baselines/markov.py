"""MarkovScorer: first-order transitions, what people took right after the user's last item."""

from __future__ import annotations

import numpy as np
import torch

from core.baselines.sparse_rows import SparseRowScorer
from core.baselines.train_log import TrainLog


def _csr_from_pairs(a: np.ndarray, b: np.ndarray, weights: np.ndarray, width: int):
    """Sum duplicate (a, b) pairs into a row-sorted CSR matrix of shape (width, width)."""
    keys = a.astype(np.int64) * width + b.astype(np.int64)
    unique, inverse = np.unique(keys, return_inverse=True)
    values = np.bincount(inverse, weights=weights, minlength=len(unique))
    rows, cols = unique // width, unique % width
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=width))]).astype(np.int64)
    return indptr, cols, values


def _pairs_within(log: TrainLog, distance: int) -> tuple[np.ndarray, np.ndarray]:
    """(earlier, later) item pairs ``distance`` steps apart inside the same sequence."""
    seq = log.sequence_of_event
    same = seq[:-distance] == seq[distance:] if len(seq) > distance else np.zeros(0, bool)
    return log.items[:-distance][same], log.items[distance:][same]


class MarkovScorer(SparseRowScorer):
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
        return cls(indptr, cols, counts, log.item_shares(), log.item_category, log.n_categories, row_totals, alpha)

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
