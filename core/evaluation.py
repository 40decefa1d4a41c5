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


def mask_history(scores: torch.Tensor, histories: list[np.ndarray], targets: np.ndarray) -> torch.Tensor:
    """Hide items the user already has, so metrics reward finding new items.

    The held-out target itself is never hidden, even when the user had it before: hiding it
    would make a repeat purchase impossible to predict rather than merely hard.
    """
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    cols = np.concatenate(histories) if len(rows) else np.zeros(0, dtype=np.int64)
    keep = cols != np.asarray(targets)[rows]
    scores[torch.as_tensor(rows[keep]), torch.as_tensor(cols[keep], dtype=torch.long)] = float("-inf")
    return scores


def ranks_for(
    scorer,
    histories: list[np.ndarray],
    targets: np.ndarray,
    segments: np.ndarray | None = None,
    history_masked: bool = True,
    batch_size: int = 256,
    cancel=None,
) -> np.ndarray:
    """0-based full-catalogue rank of each user's held-out target, in batches."""
    ranks = np.empty(len(targets), dtype=np.int64)
    for start in range(0, len(targets), batch_size):
        if cancel is not None:
            cancel.raise_if_cancelled()
        stop = start + batch_size
        batch_histories = histories[start:stop]
        batch_targets = np.asarray(targets[start:stop])
        batch_segments = None if segments is None else segments[start:stop]
        with torch.no_grad():
            scores = scorer.score(batch_histories, batch_segments).float().clone()
            if history_masked:
                scores = mask_history(scores, batch_histories, batch_targets)
            ranks[start:stop] = target_ranks(scores, torch.as_tensor(batch_targets, dtype=torch.long)).numpy()
    return ranks
