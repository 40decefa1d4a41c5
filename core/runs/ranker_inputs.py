"""What a run's re-ranker and popularity's (the gate's other side) are fitted with besides their scorer:
each item's interest and the interests' names, and when each held-out event happened."""

from __future__ import annotations

import numpy as np

from core.data.histories import Histories
from core.scorer import Scorer


def target_times(data, eval_set) -> np.ndarray:
    """(len(eval_set),) when each held-out event happened (its history is everything before it)."""
    users = np.asarray(eval_set.user_index, dtype=np.int64)
    lengths = Histories.of(eval_set.histories).lengths
    return np.asarray(data.ts)[np.asarray(data.offsets)[users] + lengths]


def interest_vocabulary(scorer: Scorer, data) -> tuple[np.ndarray, list[str]]:
    """Interest index of every item and each interest's readable name.

    Baselines speak in categories (interest c - 1 = category c); a neural model has its own
    item → interest map (``NeuralScorer.interest_vocabulary``).
    """
    from core.pipeline import NeuralScorer

    if isinstance(scorer, NeuralScorer):
        return scorer.interest_vocabulary(data)
    item_interest = np.asarray(data.item_category, dtype=np.int64) - 1
    return item_interest, [str(name) for name in data.category_names[1:]]
