import math

import numpy as np
import torch

from core.evaluation import metrics_from_ranks, target_ranks


def test_target_ranks_counts_strictly_higher_scores():
    scores = torch.tensor([[float("-inf"), 0.1, 0.9, 0.5], [float("-inf"), 3.0, 2.0, 1.0]])
    ranks = target_ranks(scores, torch.tensor([3, 1]))
    assert ranks.tolist() == [1, 0]


def test_metrics_from_ranks_known_values():
    m = metrics_from_ranks(np.array([0, 1, 30]), ks=(10,))
    assert math.isclose(m["hr@10"], 2 / 3)
    assert math.isclose(m["ndcg@10"], (1.0 + 1.0 / math.log2(3)) / 3)
    assert math.isclose(m["mrr@10"], (1.0 + 0.5) / 3)
