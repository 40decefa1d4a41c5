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


def test_an_anonymous_visitor_is_named_no_interest_of_their_own():
    """The service's JSON said "interest": "Action figures" beside "popular overall" for an unknown user:
    a visitor's predicted interests are everyone's."""
    from types import SimpleNamespace

    from core.serving import _one_list

    bundle = SimpleNamespace(interest_names=["Action", "Comedy"], item_interest=np.array([-1, 0, 1]))
    data = SimpleNamespace(item_labels=(["", "a", "b"], ["", "A", "B"], ["", "Action", "Comedy"]), n_items=2)

    def listed(history, segment):
        return _one_list(bundle, data, np.array(history, dtype=np.int64), segment, np.array([1, 2]), np.array([2.0, 1.0]),
                         np.array([0.9, 0.1]), np.array([0, 1]), np.zeros(2, np.int64), np.zeros((2, len(history))),
                         [[], []])

    assert [r.interest for r in listed([], 0)] == [None, None]
    assert "their interest" not in listed([], 0)[0].reason
    assert [r.interest for r in listed([2], 0)] == ["Action", None]  # a history: their own leaning
    assert listed([], 3)[0].interest == "Action"  # a profile: shoppers like them
