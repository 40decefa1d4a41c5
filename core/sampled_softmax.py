"""The sampled objective's candidates and their log-q correction.

A step scores its batch's next items (every example's positive) and ``n_negatives`` items drawn
uniformly, all shared by the batch's positions. The batch's positives are a popularity sample:
a popular item is a candidate at almost every step and is pushed down as a negative that often,
a rare one seldom, so the plain softmax over the candidates learns popularity-deflated scores and
ranks niche items above popular ones that full softmax would put first. Subtracting each
candidate's log probability of being among the candidates from its logit (the "logQ correction"
of sampled softmax, Bengio & Senécal 2008; Yi et al. 2019 for in-batch items) makes the sampled
loss's optimum the full softmax's again. Only training uses the correction; scores stay raw.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


class SampledSoftmax:
    """Candidates for a batch and the log-q corrected cross-entropy over them.

    ``target_counts``: (n_items + 1,) how often each item is a training target (column 0: padding),
    the distribution the batch's positives are drawn from.
    """

    def __init__(self, target_counts: np.ndarray, n_negatives: int) -> None:
        counts = torch.as_tensor(np.asarray(target_counts, dtype=np.float64))
        counts[0] = 0
        shares = counts / max(float(counts.sum()), 1.0)
        # log P(an item is not one given draw from the targets), clamped so a one-item log stays finite.
        self.log_missed_by_target = torch.log1p(-shares.clamp(max=1 - 1e-12))  # (n_items + 1,) float64
        self.n_items = len(counts) - 1
        self.n_negatives = n_negatives
        self.log_missed_by_negative = math.log1p(-1.0 / max(self.n_items, 1))

    @classmethod
    def for_windows(cls, windows, n_items: int, n_negatives: int) -> "SampledSoftmax":
        """The objective for ``windows`` (``core.data.TrainingWindows``), from how often each item is a target."""
        return cls(windows.target_counts(n_items), n_negatives)

    def to(self, device: torch.device) -> "SampledSoftmax":
        """This objective with its item shares on ``device`` (where the batches are)."""
        self.log_missed_by_target = self.log_missed_by_target.to(device)
        return self

    def candidates(self, next_items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(candidates (C,), each positive's column among them (N,), each candidate's log q (C,)).

        q is the chance that an item is among the candidates of a batch of N positives and the
        uniform negatives: 1 - (1 - p)^N (1 - 1/n)^M, p its share of the training targets."""
        negatives = torch.randint(1, self.n_items + 1, (self.n_negatives,), device=next_items.device)
        candidates, inverse = torch.unique(torch.cat([next_items, negatives]), return_inverse=True)
        missed = (len(next_items) * self.log_missed_by_target[candidates]
                  + self.n_negatives * self.log_missed_by_negative)
        log_q = torch.log(-torch.expm1(missed)).float()
        return candidates, inverse[: len(next_items)], log_q

    @staticmethod
    def loss(logits: torch.Tensor, positives: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of ``logits`` (N, C) over the candidates with each column's log q subtracted."""
        return F.cross_entropy(logits.float() - log_q, positives)
