"""Full-catalogue ranking metrics: every item is scored, no sampled negatives.

The ranks computed here are the shared currency of validation during training, the
evaluation reports stored with each run, and the significance tests between runs.
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_KS = (5, 10, 20)


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target among all items: how many items score strictly higher.

    scores:  (batch, n_items + 1) with already-masked items set to -inf
    targets: (batch,) item indices
    """
    target_scores = scores.gather(1, targets.view(-1, 1))  # (batch, 1)
    return (scores > target_scores).sum(dim=1)


def metrics_from_ranks(ranks: np.ndarray, ks: tuple[int, ...] = DEFAULT_KS) -> dict[str, float]:
    """HR@K, NDCG@K (one relevant item) and MRR@K averaged over users."""
    ranks = np.asarray(ranks, dtype=np.float64)
    metrics: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        metrics[f"hr@{k}"] = float(hit.mean()) if len(ranks) else 0.0
        metrics[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean()) if len(ranks) else 0.0
        metrics[f"mrr@{k}"] = float(np.where(hit, 1.0 / (ranks + 1.0), 0.0).mean()) if len(ranks) else 0.0
    return metrics
