import numpy as np
import pytest
import torch

import core.top_k as top_k_module
from core.top_k import top_k


def _wide(rows=6, width=40_000, seed=0) -> torch.Tensor:
    scores = torch.from_numpy(np.random.default_rng(seed).standard_normal((rows, width)))
    scores[:, :50] = float("-inf")  # masked items
    return scores


@pytest.mark.parametrize("k", [1, 10, 100])
def test_the_k_best_of_a_wide_block_are_torch_topk_s(k, monkeypatch):
    scores = _wide()
    narrowed = []
    monkeypatch.setattr(top_k_module.torch, "topk", _recording(torch.topk, narrowed))
    ours, theirs = top_k(scores, k), torch.topk(scores, k, dim=1)
    assert torch.equal(ours.values, theirs.values) and torch.equal(ours.indices, theirs.indices)
    assert narrowed[1] < scores.shape[1] // 8  # the last selection ran over a sample's candidates only


def test_rows_it_cannot_narrow_go_to_torch_topk_whole():
    scores = _wide()
    scores[2, 60:] = float("-inf")  # fewer finite items than the sample needs
    scores[3] = 1.0  # every item tied
    ours, theirs = top_k(scores, 10), torch.topk(scores, 10, dim=1)
    assert torch.equal(ours.values, theirs.values)
    assert torch.equal(ours.indices[[0, 1, 4, 5]], theirs.indices[[0, 1, 4, 5]])


def _recording(topk, widths):
    def recorded(scores, k, dim=-1):
        widths.append(scores.shape[1])
        return topk(scores, k, dim=dim)
    return recorded
