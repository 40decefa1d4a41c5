"""Popularity baselines: most-taken items overall or per profile segment (the cold-start
fallback), and recent popularity (events decayed by age)."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from core.baselines.base import BaselineScorer
from core.baselines.train_log import TrainLog


class PopularityScorer(BaselineScorer):
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
