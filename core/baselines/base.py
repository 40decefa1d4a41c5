"""BaselineScorer: the item facts, interests and attribution defaults every baseline shares.

``interests()`` of a baseline is the category mix of what it would recommend (its top
``INTEREST_TOP`` items, weighted by score): baselines have no interest head of their own.
Interest c - 1 is category c, as in ``core.predictor``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from core.top_k import top_k

INTEREST_TOP = 100
INTEREST_BATCH = 256  # users scored at once for interests_batch


class BaselineScorer:
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
