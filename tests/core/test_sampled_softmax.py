"""The sampled objective's log-q correction (``core.sampled_softmax``)."""

import math

import numpy as np
import torch
import torch.nn.functional as F

from core.sampled_softmax import SampledSoftmax

N_ITEMS = 50
POPULAR, NICHE = 1, 2


def two_kinds_of_shopper(seed: int = 0, events: int = 50_000):
    """(kind of shopper 0|1, next item) pairs. The crowd (90%) buys item 1 half the time; a niche (10%)
    buys item 1 (60%) and item 2 (30%), which nobody else buys: item 2 is rare in the log, item 1 everywhere."""
    crowd = np.zeros(N_ITEMS + 1)
    crowd[POPULAR] = 0.5
    tail = 1.0 / np.arange(1, N_ITEMS - 1)
    crowd[3:] = 0.5 * tail / tail.sum()
    niche = np.zeros(N_ITEMS + 1)
    niche[POPULAR], niche[NICHE], niche[3:] = 0.6, 0.3, 0.1 / (N_ITEMS - 2)
    rng = np.random.default_rng(seed)
    kinds = (rng.random(events) < 0.1).astype(np.int64)
    items = np.where(kinds == 1, rng.choice(N_ITEMS + 1, events, p=niche), rng.choice(N_ITEMS + 1, events, p=crowd))
    return kinds, items


def learned_scores(kinds, items, objective: str, steps: int = 400, batch: int = 8) -> torch.Tensor:
    """(2, N_ITEMS + 1) free scores per kind of shopper trained by Adam on batches of ``batch`` examples under
    ``objective``: "full" softmax, "corrected" sampled softmax, or "plain" (sampled, log q not subtracted)."""
    sampled = SampledSoftmax(np.bincount(items, minlength=N_ITEMS + 1), n_negatives=2)
    torch.manual_seed(0)
    scores = torch.zeros(2, N_ITEMS + 1, requires_grad=True)
    optimizer = torch.optim.Adam([scores], lr=0.1)
    rng = np.random.default_rng(1)
    for step in range(steps):
        optimizer.param_groups[0]["lr"] = 0.1 * (1 - step / steps)
        rows = rng.integers(0, len(items), batch)
        kind, target = torch.from_numpy(kinds[rows]), torch.from_numpy(items[rows])
        if objective == "full":
            loss = F.cross_entropy(scores[kind][:, 1:], target - 1)
        else:
            candidates, positives, log_q = sampled.candidates(target)
            if objective == "plain":
                log_q = torch.zeros_like(log_q)
            loss = sampled.loss(scores[kind][:, candidates], positives, log_q)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return scores.detach()


def test_the_correction_recovers_the_full_softmax_ranking_that_plain_sampling_turns_around():
    kinds, items = two_kinds_of_shopper()
    niche_order = {}
    for objective in ("full", "corrected", "plain"):
        scores = learned_scores(kinds, items, objective)
        niche_order[objective] = float(scores[1, POPULAR] - scores[1, NICHE])
    # Full softmax learns log(0.6 / 0.3) = 0.69 between them for the niche: the popular item first.
    assert niche_order["full"] > 0.3
    assert niche_order["corrected"] > 0.3
    # Uncorrected, the popular item is a negative at nearly every step, the niche item seldom: its score sinks.
    assert niche_order["plain"] < -0.3


def test_log_q_is_the_chance_of_being_among_a_batchs_candidates():
    counts = np.array([0, 90, 10, 0, 0])  # item 1: 90% of the targets, item 2: 10%, items 3 and 4: never
    sampled = SampledSoftmax(counts, n_negatives=3)
    torch.manual_seed(0)
    candidates, positives, log_q = sampled.candidates(torch.tensor([1, 1, 2, 1]))
    assert candidates[positives].tolist() == [1, 1, 2, 1]
    uniform_missed = (1 - 1 / 4) ** 3
    expected = {1: 1 - 0.1 ** 4 * uniform_missed, 2: 1 - 0.9 ** 4 * uniform_missed, 3: 1 - uniform_missed,
                4: 1 - uniform_missed}
    for item, value in zip(candidates.tolist(), log_q.tolist()):
        assert math.isclose(value, math.log(expected[item]), rel_tol=1e-5)
