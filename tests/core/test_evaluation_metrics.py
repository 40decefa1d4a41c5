import math

import numpy as np
import torch

from scipy import stats

from core.evaluation import confidence_intervals, metrics_from_ranks, ranks_for, target_ranks


def test_target_ranks_counts_strictly_higher_scores():
    scores = torch.tensor([[float("-inf"), 0.1, 0.9, 0.5], [float("-inf"), 3.0, 2.0, 1.0]])
    ranks = target_ranks(scores, torch.tensor([3, 1]))
    assert ranks.tolist() == [1, 0]


def test_metrics_from_ranks_known_values():
    m = metrics_from_ranks(np.array([0, 1, 30]), ks=(10,))
    assert math.isclose(m["hr@10"], 2 / 3)
    assert math.isclose(m["ndcg@10"], (1.0 + 1.0 / math.log2(3)) / 3)
    assert math.isclose(m["mrr@10"], (1.0 + 0.5) / 3)


class _FixedScorer:
    name = "fixed"

    def __init__(self, row):
        self.row = torch.tensor(row)

    def score(self, histories, segments=None):
        return self.row.repeat(len(histories), 1)


def test_ranks_for_masks_the_whole_history_as_exclude_seen_serving_does():
    scorer = _FixedScorer([float("-inf"), 5.0, 4.0, 3.0, 2.0])
    histories = [np.array([1, 2]), np.array([1, 3])]
    ranks = ranks_for(scorer, histories, np.array([3, 4]), batch_size=1)
    # user 0: items 1, 2 hidden, item 3 is best left; user 1: items 1, 3 hidden, 2 still above 4.
    assert ranks.tolist() == [0, 1]
    unmasked = ranks_for(scorer, histories, np.array([3, 4]), history_masked=False)
    assert unmasked.tolist() == [2, 3]
    # a held-out item the user already had is masked too: "exclude seen" never serves it
    assert ranks_for(scorer, [np.array([1, 4])], np.array([4]))[0] == 2  # below both unseen items


def test_confidence_intervals_bracket_the_mean_and_narrow_with_more_users():
    rng = np.random.default_rng(0)
    few, many = rng.integers(0, 30, 200), rng.integers(0, 30, 20_000)
    for ranks in (few, many):
        means, intervals = metrics_from_ranks(ranks), confidence_intervals(ranks)
        assert set(intervals) == set(means)
        for name, (low, high) in intervals.items():
            assert low < means[name] < high
    width = {n: confidence_intervals(r)["ndcg@10"][1] - confidence_intervals(r)["ndcg@10"][0] for n, r in
             (("few", few), ("many", many))}
    assert width["many"] < width["few"] / 5  # ~1/sqrt(100)
    hits = (few < 10).astype(float)  # hr@10: a proportion, Student's t interval
    half = stats.t.ppf(0.975, len(hits) - 1) * hits.std(ddof=1) / np.sqrt(len(hits))
    assert np.allclose(confidence_intervals(few)["hr@10"], [hits.mean() - half, hits.mean() + half])
