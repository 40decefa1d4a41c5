"""Full-catalogue ranking metrics: every item is scored, no sampled negatives.

The ranks computed here are the shared currency of validation during training, the
evaluation reports stored with each run, and the significance tests between runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np
import torch
from scipy import stats
from scipy.stats import wilcoxon

from core.data.splits import MIN_EVAL_LENGTH, EvalMode
from core.errors import UsageError
from core.generator import mask_seen
from core.memory import hand_back_freed_memory
from core.progress import RateMeter, emit
from core.scorer import Scorer
from core.top_k import top_k

DEFAULT_KS = (5, 10, 20)


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target among all items: how many items score strictly higher.

    scores:  (batch, n_items + 1) with already-masked items set to -inf
    targets: (batch,) item indices
    """
    target_scores = scores.gather(1, targets.view(-1, 1))  # (batch, 1)
    if scores.device.type == "cpu" and scores.dtype in (torch.float32, torch.float64):
        # numpy counts a comparison's hits about 7x faster than torch sums a bool tensor on one thread:
        # at 200,000 items that was a third of a 20,000-user evaluation
        return torch.from_numpy((scores.numpy() > target_scores.numpy()).sum(axis=1))
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


def masked_score_batches(
    scorer: Scorer,
    histories: list[np.ndarray],
    segments: np.ndarray | None = None,
    history_masked: bool = True,
    batch_size: int = 256,
    cancel=None,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield (start, stop, scores) over users, history masked unless asked not to, at most ``batch_size``
    users and ``SCORE_CELLS`` scores a batch, halving the batch on out-of-memory.

    A GPU that runs out of memory on a large catalogue is a sizing problem, not an error
    worth showing anyone: the same users are retried in smaller chunks until they fit.

    A pass hands back the memory freed before it and by it when it ends (``core.memory``): its
    batches reuse their own blocks, and neither it nor what follows carries another's leftovers.
    """
    hand_back_freed_memory()
    try:
        yield from _score_batches(scorer, histories, segments, history_masked, batch_size, cancel)
    finally:
        hand_back_freed_memory()


# Scores held per batch: 2**24 cells, 64 MiB of float32, so 83 users at 200,000 items (at most the batch
# asked for). At 256 users a batch's 200 MB blocks and their temporaries, freed and made again in
# turn, took a pass 0.8 GB above what was in use (popularity on a 25M-event log; 0.3 GB at 64 users),
# for no less CPU time (the same at 64-256 users for SASRec, less for popularity).
# The first batch, which learns the catalogue's width, is the one asked for: a catalogue up to 65,536
# items is scored in the same batches as before the bound (the same floating-point sums, the same figures).
SCORE_CELLS = 1 << 24


def _score_batches(scorer: Scorer, histories, segments, history_masked: bool, batch_size: int, cancel):
    start, width = 0, None
    while start < len(histories):
        if cancel is not None:
            cancel.raise_if_cancelled()
        users = batch_size if width is None else min(batch_size, max(1, SCORE_CELLS // width))
        stop = min(start + users, len(histories))
        batch_histories = histories[start:stop]
        batch_segments = None if segments is None else segments[start:stop]
        try:
            with torch.no_grad():
                # A new tensor per call (the Scorer contract): masked in place below.
                scores = scorer.score(batch_histories, batch_segments).float()
        except torch.OutOfMemoryError:
            if users == 1:
                raise
            batch_size = max(1, users // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        if history_masked:
            # Everything the user had, the held-out item included: under ``EvalMode.NEW`` it is new
            # by construction, and sparing a repeated one would make it the only visible history
            # item, a rank-1 gift to any scorer that rates history highly (the old leak).
            scores = mask_seen(scores, batch_histories)
        width = scores.shape[1]
        yield start, stop, scores.cpu()
        del scores  # the next batch's scores are made without these alive (callers drop theirs too)
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
    batches = masked_score_batches(scorer, histories, segments, history_masked, batch_size, cancel)
    for start, stop, scores in batches:
        batch_targets = torch.as_tensor(np.asarray(targets[start:stop]), dtype=torch.long)
        ranks[start:stop] = target_ranks(scores, batch_targets).numpy()
        del scores  # before the next batch's are made
    return ranks


# -- run reports: accuracy, beyond-accuracy, segments, significance ----------------------

LIST_K = 10
# History-length segments: (name, smallest length, largest length) of the history the
# prediction was made from. "cold" users are where sequence models usually struggle.
LENGTH_SEGMENTS = (("cold (0-2 events)", 0, 2), ("short (3-10 events)", 3, 10), ("long (>10 events)", 11, None))


def protocol_text(eval_mode: EvalMode, split_name: str = "leave-one-out", skipped: int = 0, too_short: int = 0,
                  cold_start: int = 0) -> str:
    """The one line every report carries: how items were ranked, cut, held out and masked, who was
    left out (so "tested on 22,093 users" of a 40,000-session log says where the rest went), and how
    many tested users had no events before their test one: they get the cold-start list whatever the
    model (a time split of a session log tested only new sessions, and read as the model's 0.20)."""
    if eval_mode is EvalMode.NEW:
        held = "new items (each held-out item is new to its user; the whole history masked)"
    else:
        held = "repeats allowed (the held-out item may be one the user had; nothing masked)"
    left_out = [f"{_users(skipped)} with no new item to hold out"] if skipped else []
    if too_short:
        left_out.append(f"{_users(too_short)} with fewer than {MIN_EVAL_LENGTH} steps (they only train; "
                        "an item's events in a row are one step)")
    left_out_text = f"; {' and '.join(left_out)} not evaluated" if left_out else ""
    cold = (f"; {_users(cold_start)} tested with no event before their test one (the cold-start list, the same "
            "for every model)" if cold_start else "")
    return f"full-catalogue ranking, {split_name}, {held}{left_out_text}{cold}"


def _users(n: int) -> str:
    return f"{n:,} user{'s' if n != 1 else ''}"


@dataclass
class EvaluationReport:
    """What a run is judged by; ``to_dict()`` is what the runs table and ``--json`` store.

    ranks/user_index stay in arrays (saved in the run's bundle, not in JSON) so two runs
    can later be compared user by user.
    """

    protocol: str
    eval_mode: EvalMode
    n_users: int
    not_evaluated: int  # users with no new item to hold out (``EvalSet.skipped``)
    too_short: int  # users with too few events to hold any out (``EvalSet.too_short``)
    cold_start: int  # tested users with no event before their test one: served the cold-start list
    metrics: dict[str, float]
    intervals: dict[str, list[float]]
    """95% confidence interval [low, high] of each accuracy metric over the evaluated users."""
    sampled_from: Optional[int]
    """Users the evaluated ones were sampled from; None when every eligible user was evaluated."""
    beyond: dict[str, float]
    segments: dict[str, dict[str, float]]
    ranks: np.ndarray = field(repr=False)
    user_index: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        """The keys are ``REPORT_KEYS``."""
        return {"protocol": self.protocol, "eval": self.eval_mode.value, "n_users": self.n_users,
                "sampled_from": self.sampled_from, "not_evaluated": self.not_evaluated, "too_short": self.too_short,
                "cold_start": self.cold_start, "metrics": self.metrics,
                "intervals": self.intervals, "beyond": self.beyond, "segments": self.segments}


REPORT_KEYS = ("protocol", "eval", "n_users", "sampled_from", "not_evaluated", "too_short", "cold_start", "metrics",
               "intervals", "beyond", "segments")


def confidence_intervals(ranks: np.ndarray, ks: tuple[int, ...] = DEFAULT_KS,
                         level: float = 0.95) -> dict[str, list[float]]:
    """[low, high] of each metric's mean over users: Student's t interval on the per-user values
    (with thousands of users it is the normal one; the sample mean is what the report states)."""
    n = len(ranks)
    critical = float(stats.t.ppf(0.5 + level / 2, n - 1)) if n > 1 else float("nan")
    intervals = {}
    for k in ks:
        for name in ("hr", "ndcg", "mrr"):
            values = per_user_metric(ranks, f"{name}@{k}")
            mean = float(values.mean()) if n else 0.0
            half = critical * float(values.std(ddof=1)) / np.sqrt(n) if n > 1 else float("nan")
            intervals[f"{name}@{k}"] = [mean - half, mean + half]
    return intervals


def evaluate_scorer(
    scorer: Scorer,
    data,
    eval_set,
    ks: tuple[int, ...] = DEFAULT_KS,
    progress=None,
    cancel=None,
    batch_size: int = 256,
    split_name: str = "leave-one-out",
) -> EvaluationReport:
    """Rank every target against the whole catalogue and summarise accuracy and list quality.

    The eval set's mode decides the masking: its whole history under ``EvalMode.NEW``, nothing
    under ``EvalMode.REPEAT``.

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
    masked = eval_set.eval_mode.masks_history
    batches = masked_score_batches(scorer, histories, segments, masked, batch_size, cancel)
    for start, stop, scores in batches:
        ranks[start:stop] = target_ranks(scores, torch.as_tensor(targets[start:stop], dtype=torch.long)).numpy()
        top_lists[start:stop] = top_k(scores, top_lists.shape[1]).indices.numpy()
        emit(progress, meter.report("evaluate", stop, f"evaluated {stop:,} of {len(targets):,} users"))
        del scores  # before the next batch's are made
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    cold_start = int(np.count_nonzero(lengths == 0))
    return EvaluationReport(
        protocol=(protocol_text(eval_set.eval_mode, split_name, eval_set.skipped, eval_set.too_short, cold_start)
                  + _sample_text(eval_set)),
        eval_mode=eval_set.eval_mode,
        n_users=len(targets),
        not_evaluated=eval_set.skipped,
        too_short=eval_set.too_short,
        cold_start=cold_start,
        metrics=metrics_from_ranks(ranks, ks),
        intervals=confidence_intervals(ranks, ks),
        sampled_from=eval_set.sampled_from,
        beyond=_list_quality(top_lists, item_category.numpy(), histories, n_items),
        segments=_segment_metrics(ranks, lengths, ks),
        ranks=ranks,
        user_index=np.asarray(eval_set.user_index),
    )


def _sample_text(eval_set) -> str:
    if eval_set.sampled_from is None:
        return ""
    return f"; tested on {len(eval_set):,} of {eval_set.sampled_from:,} users (seeded sample)"


def _list_quality(top_lists: np.ndarray, item_category: np.ndarray, histories, n_items: int) -> dict[str, float]:
    """Coverage, diversity and novelty of the top lists; none of them without a list (no user evaluated),
    where 0.0 would read "the lists cover nothing, each is one category"."""
    if len(top_lists) == 0:
        return {}
    events = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories] + [np.zeros(0, np.int64)])
    counts = np.bincount(events, minlength=n_items + 1).astype(np.float64)
    share = (counts + 1.0) / (counts[1:].sum() + n_items)
    diversity = _category_diversity(top_lists, item_category)
    return {
        f"coverage@{LIST_K}": float(len(np.unique(top_lists[top_lists > 0])) / max(n_items, 1)),
        **({} if diversity is None else {f"diversity@{LIST_K}": diversity}),
        f"novelty@{LIST_K}": float(-np.log2(share[top_lists]).mean()),
    }


def _category_diversity(top_lists: np.ndarray, item_category: np.ndarray) -> Optional[float]:
    """Mean share of item pairs in a list whose primary categories differ, over the items that have
    a category (index 0 = none): two items without one are not of one category. None when no list
    holds two such items (a catalogue without categories), where 0.0 would read "every list is one
    category"."""
    cats = item_category[top_lists]  # (users, k)
    known = cats > 0
    n_known = known.sum(axis=1)
    pairs = n_known * (n_known - 1)
    same = ((cats[:, :, None] == cats[:, None, :]) & known[:, :, None] & known[:, None, :]).sum(axis=(1, 2)) - n_known
    has_pairs = pairs > 0
    if not has_pairs.any():
        return None
    return float((1.0 - same[has_pairs] / pairs[has_pairs]).mean())


def _segment_metrics(ranks: np.ndarray, lengths: np.ndarray, ks) -> dict[str, dict[str, float]]:
    segments = {}
    for name, low, high in LENGTH_SEGMENTS:
        inside = (lengths >= low) & (lengths <= (high if high is not None else np.inf))
        segments[name] = {"users": int(inside.sum()), **metrics_from_ranks(ranks[inside], ks)}
    return segments


def paired_significance(ranks_a: np.ndarray, ranks_b: np.ndarray, metric: str = "ndcg@10") -> dict:
    """Is run A's per-user ``metric`` different from run B's on the same users?

    Two-sided Wilcoxon signed-rank test: it needs no normality, which per-user NDCG (mostly
    zeros) never has.
    """
    return paired_test(per_user_metric(ranks_a, metric), per_user_metric(ranks_b, metric), metric)


def paired_test(a: np.ndarray, b: np.ndarray, metric: str) -> dict:
    """``paired_significance`` of per-user values already computed (``a`` and ``b``: one per user, same users)."""
    if len(a) != len(b):
        raise UsageError(f"runs were evaluated on different users ({len(a)} vs {len(b)})",
                         "Compare runs of one workspace.")
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return {
        "metric": metric,
        "n_users": int(len(a)),
        "mean_a": float(np.mean(a)) if len(a) else 0.0,
        "mean_b": float(np.mean(b)) if len(b) else 0.0,
        "difference": float(diff.mean()) if len(diff) else 0.0,
        "p_value": wilcoxon_p_value(diff),
        "test": "Wilcoxon signed-rank, two-sided (SciPy; exact for small samples)",
    }


def wilcoxon_p_value(diff: np.ndarray) -> float:
    """Two-sided p-value that paired differences ``diff`` are centred on zero (Wilcoxon signed-rank).

    Zero differences are dropped first (Wilcoxon's rule; left in, SciPy would fall back to the
    normal approximation), so a small sample without ties gets SciPy's exact p-value: at n = 10
    the approximation is three times too large.
    """
    diff = np.asarray(diff, dtype=np.float64)
    diff = diff[diff != 0]
    if not len(diff):
        return 1.0
    if 1 < len(diff) <= ALL_SIGN_PATTERNS:
        # What SciPy's wilcoxon does here when values tie (per-user NDCG often does), but with the
        # statistic taken over all 2^n sign patterns at once: SciPy calls it once per pattern,
        # 4-7 s at n = 13, paid by every re-ranker whose holdout decision rests on a few users.
        return float(stats.permutation_test((diff,), _signed_rank_sum, permutation_type="samples", vectorized=True,
                                            n_resamples=np.inf, alternative="two-sided").pvalue)
    return float(wilcoxon(diff, alternative="two-sided").pvalue)


ALL_SIGN_PATTERNS = 13  # up to this many differences every sign pattern is enumerated (as SciPy does with ties)


def _signed_rank_sum(diff: np.ndarray, axis: int = -1) -> np.ndarray:
    """Wilcoxon's statistic up to a constant: the sum of the signed ranks of |diff|."""
    return (np.sign(diff) * stats.rankdata(np.abs(diff), axis=axis)).sum(axis=axis)
