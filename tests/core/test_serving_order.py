"""A served list without diversity is ordered by one sort, exactly as maximal marginal relevance orders it;
the interest each listed item is said to serve."""

import numpy as np

from core.ranker import mmr_order
from core.serving import _order


def test_without_diversity_the_list_is_the_mmr_order_ties_and_unusable_candidates_included():
    rng = np.random.default_rng(4)
    for _ in range(50):
        items = rng.integers(0, 30, size=40)  # 0: padding, never listed
        relevance = rng.choice([-np.inf, 0.5, 1.0, 2.0, 3.5], size=40).astype(np.float32)  # many ties
        relevance[rng.random(40) < 0.5] = rng.normal(size=int((rng.random(40) < 0.5).sum()) or 1)[0]
        category = rng.integers(0, 4, size=30)
        for k in (1, 10, 40):
            assert list(_order(items, relevance, category, k, 0.0)) == list(mmr_order(items, relevance, category, k, 0.0))
    assert list(_order(items, relevance, category, 10, 0.5)) == list(mmr_order(items, relevance, category, 10, 0.5))


def test_an_item_serves_only_an_interest_the_user_leans_to():
    """"fits their interest in Thriller" was said of a user the model predicted 1% Thriller."""
    from types import SimpleNamespace

    from core.serving import _served_interests

    bundle = SimpleNamespace(interest_names=["Action", "Comedy", "Thriller", "Drama"],
                             item_interest=np.array([-1, 0, 1, 2, 3]))
    interests = np.array([0.40, 0.38, 0.01, 0.21])  # an even share is 0.25: 0.375 and up count
    assert _served_interests(bundle, np.array([1, 2, 3, 4, 0]), interests) == ["Action", "Comedy", None, None, None]
    assert _served_interests(bundle, np.array([1, 2]), np.zeros(4)) == [None, None]  # no interests predicted
