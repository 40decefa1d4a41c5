import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import wilcoxon
import torch

from core.data import EvalMode, EvalSet
from core.evaluation import wilcoxon_p_value, evaluate_scorer, paired_significance, ranks_for
from core.progress import CancelToken, Cancelled


class _FixedScorer:
    name = "fixed"

    def __init__(self, row):
        self.row = torch.tensor(row, dtype=torch.float32)

    def score(self, histories, segments=None):
        return self.row.repeat(len(histories), 1)


# 6 items in categories 1,1,2,2,3,3
DATA = SimpleNamespace(item_category=np.array([0, 1, 1, 2, 2, 3, 3]), user_segment=np.zeros(3, dtype=np.int64))


def test_report_states_protocol_and_is_json_serialisable():
    scorer = _FixedScorer([float("-inf"), 6, 5, 4, 3, 2, 1])
    eval_set = EvalSet(np.array([0, 1, 2]), [np.array([1]), np.array([2, 3, 4]), np.array([2, 3, 4, 5])],
                       np.array([2, 1, 6]))
    report = evaluate_scorer(scorer, DATA, eval_set, ks=(1, 5))
    assert report.protocol == ("full-catalogue ranking, leave-one-out, new items (each held-out item is new to its "
                               "user; the whole history masked)")
    # user 0: item 1 masked -> target 2 ranks first; user 1: 2,3,4 masked -> 1 first; user 2: 2..5 masked, 1 above 6.
    assert report.ranks.tolist() == [0, 0, 1]
    assert report.metrics["hr@1"] == pytest.approx(2 / 3)
    json.dumps(report.to_dict())
    assert report.segments["cold (0-2 events)"]["users"] == 1
    assert report.segments["short (3-10 events)"]["users"] == 2
    repeats = EvalSet(eval_set.user_index, eval_set.histories, np.array([1, 4, 3]), EvalMode.REPEAT)
    unmasked = evaluate_scorer(scorer, DATA, repeats, ks=(1, 5), split_name="time split at 2026-03-01")
    assert unmasked.ranks.tolist() == [0, 3, 2] and unmasked.to_dict()["eval"] == "repeat"
    assert unmasked.protocol == ("full-catalogue ranking, time split at 2026-03-01, repeats allowed (the held-out "
                                 "item may be one the user had; nothing masked)")


def test_beyond_accuracy_numbers_describe_the_top_lists():
    scorer = _FixedScorer([float("-inf"), 6, 5, 4, 3, 2, 1])
    eval_set = EvalSet(np.array([0]), [np.array([], dtype=np.int64)], np.array([1]))
    report = evaluate_scorer(scorer, DATA, eval_set)
    # every user sees all 6 items (the catalogue is smaller than 10): full coverage,
    # 3 categories of 2 items -> 6 same-category ordered pairs among 30.
    assert report.beyond["coverage@10"] == pytest.approx(1.0)
    assert report.beyond["diversity@10"] == pytest.approx(1 - 6 / 30)
    assert report.beyond["novelty@10"] == pytest.approx(math.log2(6))  # no events: uniform smoothed shares


def test_diversity_counts_only_items_with_a_category_and_is_left_out_without_any():
    """A catalogue without categories reported diversity 0.000 ("every list is one category"), and
    uncategorised items counted as one shared category."""
    scorer = _FixedScorer([float("-inf"), 6, 5, 4, 3, 2, 1])
    eval_set = EvalSet(np.array([0]), [np.array([], dtype=np.int64)], np.array([1]))
    bare = SimpleNamespace(item_category=np.zeros(7, dtype=np.int64), user_segment=np.zeros(1, dtype=np.int64))
    assert "diversity@10" not in evaluate_scorer(scorer, bare, eval_set).beyond
    some = SimpleNamespace(item_category=np.array([0, 1, 1, 2, 0, 0, 0]), user_segment=np.zeros(1, dtype=np.int64))
    assert evaluate_scorer(scorer, some, eval_set).beyond["diversity@10"] == pytest.approx(1 - 2 / 6)


def test_no_evaluated_user_reports_no_list_figures():
    """With no list to judge, coverage, diversity and novelty were reported as 0.000."""
    scorer = _FixedScorer([float("-inf"), 6, 5, 4, 3, 2, 1])
    nobody = EvalSet(np.zeros(0, dtype=np.int64), [], np.zeros(0, dtype=np.int64))
    assert evaluate_scorer(scorer, DATA, nobody).beyond == {}


def test_evaluation_honours_cancel():
    token = CancelToken()
    token.cancel()
    scorer = _FixedScorer([float("-inf"), 1, 2])
    with pytest.raises(Cancelled):
        evaluate_scorer(scorer, SimpleNamespace(item_category=np.array([0, 1, 1]), user_segment=np.zeros(1, np.int64)),
                        EvalSet(np.array([0]), [np.array([1])], np.array([2])), cancel=token)


class _OutOfMemoryAbove:
    """Raises torch's out-of-memory error for batches larger than ``limit``, like a small GPU."""

    name = "oom"

    def __init__(self, limit):
        self.limit, self.sizes = limit, []

    def score(self, histories, segments=None):
        self.sizes.append(len(histories))
        if len(histories) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return torch.tensor([[float("-inf"), 3.0, 2.0, 1.0]]).repeat(len(histories), 1)


def test_out_of_memory_retries_in_smaller_chunks():
    scorer = _OutOfMemoryAbove(limit=3)
    histories = [np.array([1])] * 10
    ranks = ranks_for(scorer, histories, np.full(10, 3), batch_size=8)
    assert ranks.tolist() == [1] * 10
    assert scorer.sizes[:3] == [8, 4, 2] and max(scorer.sizes[2:]) == 2


def test_wilcoxon_is_exact_for_small_samples():
    # ten distinct positive differences: W- = 0 has 1 of 2^10 sign patterns, so p = 2 / 1024 exactly
    # (the normal approximation said 0.0059, three times too large)
    assert wilcoxon_p_value(np.arange(1, 11, dtype=float)) == pytest.approx(2 / 1024, rel=1e-9)
    # zero differences are dropped: these are the same ten
    assert wilcoxon_p_value(np.concatenate([np.arange(1, 11, dtype=float), np.zeros(7)])) == pytest.approx(2 / 1024)
    assert wilcoxon_p_value(np.zeros(5)) == 1.0


@pytest.mark.parametrize("n", [1, 2, 9, 14])
def test_wilcoxon_with_ties_gives_scipys_p_value(n):
    diff = np.random.default_rng(n).choice([-0.5, -0.37, 0.13, 0.37, 0.5, 1.0], n)  # tied, as per-user NDCGs are
    assert wilcoxon_p_value(np.concatenate([diff, np.zeros(3)])) == pytest.approx(wilcoxon(diff).pvalue, rel=1e-12)


def test_paired_significance_separates_a_real_difference_from_noise():
    rng = np.random.default_rng(0)
    ranks_b = rng.integers(0, 50, size=400)
    better = np.maximum(ranks_b - rng.integers(0, 6, size=400), 0)
    shuffled = rng.permutation(ranks_b)
    strong = paired_significance(better, ranks_b, "ndcg@10")
    assert strong["mean_a"] > strong["mean_b"] and strong["p_value"] < 0.01
    noise = paired_significance(ranks_b, ranks_b, "hr@10")
    assert noise["p_value"] == 1.0
    assert paired_significance(shuffled, ranks_b, "ndcg@10")["p_value"] > 0.01
    with pytest.raises(ValueError, match="different users"):
        paired_significance(ranks_b[:3], ranks_b, "ndcg@10")


def test_new_item_figures_count_only_test_items_no_one_took_before_and_say_none_when_there_are_none():
    from core.runs.new_items import new_item_metrics

    report = SimpleNamespace(ranks=np.array([0, 3, 20, 1]))
    test_set = SimpleNamespace(targets=np.array([1, 2, 3, 4]))
    known = np.array([False, True, False, False, True])  # items 2 and 3 are new
    assert new_item_metrics(report, test_set, known) == {"events": 2, "hr@10": 0.5, "ndcg@10": pytest.approx(0.5 / np.log2(5))}
    assert new_item_metrics(report, test_set, np.ones(5, bool)) == {"events": 0, "hr@10": None, "ndcg@10": None}
