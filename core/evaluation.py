"""Full-catalogue ranking metrics: every item is scored, no sampled negatives.

The ranks computed here are the shared currency of validation during training, the
evaluation reports stored with each run, and the significance tests between runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from core.errors import UsageError
from core.progress import RateMeter, emit
from core.scorer import Scorer

DEFAULT_KS = (5, 10, 20)


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target among all items: how many items score strictly higher.

    scores:  (batch, n_items + 1) with already-masked items set to -inf
    targets: (batch,) item indices
    """
    target_scores = scores.gather(1, targets.view(-1, 1))  # (batch, 1)
    return (scores > target_scores).sum(dim=1)


def per_user_metric(ranks: np.ndarray, metric: str) -> np.ndarray:
    """One user's value of "hr@K", "ndcg@K" or "mrr@K" from their 0-based target rank."""
    name, _, k = metric.partition("@")
    ranks = np.asarray(ranks, dtype=np.float64)
    hit = ranks < int(k)
    gains = {"hr": np.ones_like(ranks), "ndcg": 1.0 / np.log2(ranks + 2.0), "mrr": 1.0 / (ranks + 1.0)}
    if name not in gains:
        raise ValueError(f"unknown metric {metric!r}; use hr@K, ndcg@K or mrr@K")
    return np.where(hit, gains[name], 0.0)


def metrics_from_ranks(ranks: np.ndarray, ks: tuple[int, ...] = DEFAULT_KS) -> dict[str, float]:
    """HR@K, NDCG@K (one relevant item) and MRR@K averaged over users."""
    metrics: dict[str, float] = {}
    for k in ks:
        for name in ("hr", "ndcg", "mrr"):
            values = per_user_metric(ranks, f"{name}@{k}")
            metrics[f"{name}@{k}"] = float(values.mean()) if len(values) else 0.0
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


def masked_score_batches(
    scorer: Scorer,
    histories: list[np.ndarray],
    targets: np.ndarray,
    segments: np.ndarray | None = None,
    history_masked: bool = True,
    batch_size: int = 256,
    cancel=None,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield (start, stop, scores) over users, history masked, halving the batch on out-of-memory.

    A GPU that runs out of memory on a large catalogue is a sizing problem, not an error
    worth showing anyone: the same users are retried in smaller chunks until they fit.
    """
    start = 0
    while start < len(targets):
        if cancel is not None:
            cancel.raise_if_cancelled()
        stop = min(start + batch_size, len(targets))
        batch_histories = histories[start:stop]
        batch_targets = np.asarray(targets[start:stop])
        batch_segments = None if segments is None else segments[start:stop]
        try:
            with torch.no_grad():
                # A new tensor per call (the Scorer contract): masked in place below.
                scores = scorer.score(batch_histories, batch_segments).float()
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            batch_size = max(1, batch_size // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        if history_masked:
            scores = mask_history(scores, batch_histories, batch_targets)
        yield start, stop, scores.cpu()
        start = stop


def ranks_for(
    scorer: Scorer,
    histories: list[np.ndarray],
    targets: np.ndarray,
    segments: np.ndarray | None = None,
    history_masked: bool = True,
    batch_size: int = 256,
    cancel=None,
) -> np.ndarray:
    """0-based full-catalogue rank of each user's held-out target, in batches."""
    ranks = np.empty(len(targets), dtype=np.int64)
    batches = masked_score_batches(scorer, histories, targets, segments, history_masked, batch_size, cancel)
    for start, stop, scores in batches:
        batch_targets = torch.as_tensor(np.asarray(targets[start:stop]), dtype=torch.long)
        ranks[start:stop] = target_ranks(scores, batch_targets).numpy()
    return ranks


# -- run reports: accuracy, beyond-accuracy, segments, significance ----------------------

LIST_K = 10
# History-length segments: (name, smallest length, largest length) of the history the
# prediction was made from. "cold" users are where sequence models usually struggle.
LENGTH_SEGMENTS = (("cold (0-2 events)", 0, 2), ("short (3-10 events)", 3, 10), ("long (>10 events)", 11, None))


def protocol_text(history_masked: bool, split_name: str = "leave-one-out") -> str:
    masked = "history masked (the held-out item never)" if history_masked else "history not masked"
    return f"full-catalogue ranking, {split_name}, {masked}"


@dataclass
class EvaluationReport:
    """What a run is judged by; ``to_dict()`` is what the runs table and ``--json`` store.

    ranks/user_index stay in arrays (saved in the run's bundle, not in JSON) so two runs
    can later be compared user by user.
    """

    protocol: str
    n_users: int
    metrics: dict[str, float]
    beyond: dict[str, float]
    segments: dict[str, dict[str, float]]
    ranks: np.ndarray = field(repr=False)
    user_index: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return {"protocol": self.protocol, "n_users": self.n_users, "metrics": self.metrics,
                "beyond": self.beyond, "segments": self.segments}


def evaluate_scorer(
    scorer: Scorer,
    data,
    eval_set,
    ks: tuple[int, ...] = DEFAULT_KS,
    history_masked: bool = True,
    progress=None,
    cancel=None,
    batch_size: int = 256,
    split_name: str = "leave-one-out",
) -> EvaluationReport:
    """Rank every target against the whole catalogue and summarise accuracy and list quality.

    Beyond-accuracy numbers describe each user's top-``LIST_K`` list: coverage = share of the
    catalogue appearing in any list; diversity = share of item pairs in a list whose primary
    categories differ; novelty = mean self-information -log2 p(item), p = the item's share of
    the evaluated histories' events (+1 smoothing), higher = less obvious items.
    """
    histories, targets = eval_set.histories, np.asarray(eval_set.targets)
    segments = np.asarray(data.user_segment)[np.asarray(eval_set.user_index)]
    item_category = torch.as_tensor(np.asarray(data.item_category), dtype=torch.long)
    n_items = len(item_category) - 1
    meter = RateMeter(len(targets))
    ranks = np.empty(len(targets), dtype=np.int64)
    top_lists = np.zeros((len(targets), min(LIST_K, n_items)), dtype=np.int64)
    batches = masked_score_batches(scorer, histories, targets, segments, history_masked, batch_size, cancel)
    for start, stop, scores in batches:
        ranks[start:stop] = target_ranks(scores, torch.as_tensor(targets[start:stop], dtype=torch.long)).numpy()
        top_lists[start:stop] = torch.topk(scores, top_lists.shape[1], dim=1).indices.numpy()
        emit(progress, meter.report("evaluate", stop, f"evaluated {stop:,} of {len(targets):,} users"))
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    return EvaluationReport(
        protocol=protocol_text(history_masked, split_name),
        n_users=len(targets),
        metrics=metrics_from_ranks(ranks, ks),
        beyond=_list_quality(top_lists, item_category.numpy(), histories, n_items),
        segments=_segment_metrics(ranks, lengths, ks),
        ranks=ranks,
        user_index=np.asarray(eval_set.user_index),
    )


def _list_quality(top_lists: np.ndarray, item_category: np.ndarray, histories, n_items: int) -> dict[str, float]:
    if len(top_lists) == 0:
        return {f"coverage@{LIST_K}": 0.0, f"diversity@{LIST_K}": 0.0, f"novelty@{LIST_K}": 0.0}
    k = top_lists.shape[1]
    cats = item_category[top_lists]  # (users, k)
    same = (cats[:, :, None] == cats[:, None, :]).sum(axis=(1, 2)) - k
    diversity = 1.0 - same / max(k * (k - 1), 1)
    events = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories] + [np.zeros(0, np.int64)])
    counts = np.bincount(events, minlength=n_items + 1).astype(np.float64)
    share = (counts + 1.0) / (counts[1:].sum() + n_items)
    return {
        f"coverage@{LIST_K}": float(len(np.unique(top_lists[top_lists > 0])) / max(n_items, 1)),
        f"diversity@{LIST_K}": float(diversity.mean()),
        f"novelty@{LIST_K}": float(-np.log2(share[top_lists]).mean()),
    }


def _segment_metrics(ranks: np.ndarray, lengths: np.ndarray, ks) -> dict[str, dict[str, float]]:
    segments = {}
    for name, low, high in LENGTH_SEGMENTS:
        inside = (lengths >= low) & (lengths <= (high if high is not None else np.inf))
        segments[name] = {"users": int(inside.sum()), **metrics_from_ranks(ranks[inside], ks)}
    return segments


def paired_significance(ranks_a: np.ndarray, ranks_b: np.ndarray, metric: str = "ndcg@10") -> dict:
    """Is run A's per-user ``metric`` different from run B's on the same users?

    Two-sided Wilcoxon signed-rank test (normal approximation with tie and continuity
    correction): it needs no normality, which per-user NDCG (mostly zeros) never has.
    """
    a, b = per_user_metric(ranks_a, metric), per_user_metric(ranks_b, metric)
    if len(a) != len(b):
        raise UsageError(f"runs were evaluated on different users ({len(a)} vs {len(b)})",
                         "Compare runs of one workspace.")
    diff = a - b
    return {
        "metric": metric,
        "n_users": int(len(a)),
        "mean_a": float(a.mean()) if len(a) else 0.0,
        "mean_b": float(b.mean()) if len(b) else 0.0,
        "difference": float(diff.mean()) if len(diff) else 0.0,
        "p_value": wilcoxon_p_value(diff),
        "test": "Wilcoxon signed-rank, two-sided (normal approximation)",
    }


def wilcoxon_p_value(diff: np.ndarray) -> float:
    """Two-sided p-value that paired differences ``diff`` are centred on zero (Wilcoxon signed-rank)."""
    diff = diff[diff != 0]
    n = len(diff)
    if n == 0:
        return 1.0
    _, inverse, counts = np.unique(np.abs(diff), return_inverse=True, return_counts=True)
    first_rank = np.concatenate([[0], np.cumsum(counts)[:-1]]) + 1
    ranks = (first_rank + (counts - 1) / 2.0)[inverse]
    w_plus = ranks[diff > 0].sum()
    mean = n * (n + 1) / 4.0
    variance = n * (n + 1) * (2 * n + 1) / 24.0 - (counts**3 - counts).sum() / 48.0
    if variance <= 0:
        return 1.0
    z = (abs(w_plus - mean) - 0.5) / math.sqrt(variance)
    return float(min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2.0))))
