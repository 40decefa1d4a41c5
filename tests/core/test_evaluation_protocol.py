"""Evaluation scores what the product serves (issue 9): the old leak on repeated items, and the two
evaluation modes that close it, on leave-one-out and on a time split."""

import numpy as np
import pytest
import torch

from core.data import EvalMode, SplitChoice, sequences_from_arrays
from core.evaluation import evaluate_scorer, target_ranks
from core.generator import generate_candidates

N_ITEMS = 30
CUTOFF = 10.0


def _repeating_log(n_users: int = 60):
    """Each user: a b c d e (ts 0-4), then b f c after the cut (ts 10-12): the last event repeats c."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for user in range(n_users):
        a, b, c, d, e, f = rng.choice(np.arange(1, N_ITEMS + 1), 6, replace=False)
        users += [user] * 8
        items += [a, b, c, d, e, b, f, c]
    ts = np.tile([0, 1, 2, 3, 4, 10, 11, 12], n_users).astype(float)
    return sequences_from_arrays(np.array(users), np.array(items), ts)


class _FixedOrder:
    """Rates items in one fixed order (item 1 best): a scorer that knows nothing of the user."""

    name = "fixed"

    def __init__(self, n_items: int = N_ITEMS) -> None:
        self.n_items = n_items

    def score(self, histories, segments=None):
        scores = torch.linspace(1.0, 0.0, self.n_items + 1).repeat(len(histories), 1)
        scores[:, 0] = float("-inf")
        return scores


class _OwnHistory(_FixedOrder):
    """The same, but the user's own history first (most recent highest): it only echoes the past."""

    name = "own-history"

    def score(self, histories, segments=None):
        scores = super().score(histories)
        for row, history in enumerate(histories):
            for step, item in enumerate(history):
                scores[row, int(item)] = 10.0 + step
        return scores


def _old_rule_ranks(scorer, eval_set) -> np.ndarray:
    """The rule before issue 9: every history item hidden except the held-out one itself."""
    scores = scorer.score(eval_set.histories)
    for row, (history, target) in enumerate(zip(eval_set.histories, eval_set.targets)):
        hidden = [int(item) for item in history if item != target]
        scores[row, hidden] = float("-inf")
    return target_ranks(scores, torch.as_tensor(eval_set.targets)).numpy()


def _served_hits(scorer, eval_set, exclude_seen: bool, k: int = 10) -> np.ndarray:
    """Whether each user's held-out item is in the top-k list the product would serve them."""
    lists = generate_candidates(scorer, eval_set.histories, n=k, exclude_seen=exclude_seen).items
    return np.array([target in row for row, target in zip(lists, eval_set.targets)])


CHOICES = {"leave-one-out": SplitChoice(validation="all"), "time": SplitChoice("time", cutoff_ts=CUTOFF)}


@pytest.mark.parametrize("kind", list(CHOICES))
def test_echoing_the_history_wins_under_the_old_rule_and_gains_nothing_under_either_mode(kind):
    data = _repeating_log()
    own, fixed = _OwnHistory(), _FixedOrder()
    old_split = SplitChoice(CHOICES[kind].kind, CHOICES[kind].cutoff_ts, eval_mode=EvalMode.REPEAT).split(data)
    assert all(target in history for history, target in zip(old_split.test.histories, old_split.test.targets))
    old = _old_rule_ranks(own, old_split.test)
    # the leak: every repeated item is the one history item left visible, so it ranks first...
    assert (old == 0).all() and (_old_rule_ranks(fixed, old_split.test) == 0).mean() < 0.5
    # ...though serving with "exclude seen" can never recommend it
    assert not _served_hits(own, old_split.test, exclude_seen=True).any()

    new = CHOICES[kind].split(data)
    assert new.eval_mode is EvalMode.NEW and len(new.test) == data.n_users
    own_new, fixed_new = evaluate_scorer(own, data, new.test), evaluate_scorer(fixed, data, new.test)
    assert np.array_equal(own_new.ranks, fixed_new.ranks)  # echoing the history gains nothing
    assert own_new.metrics["hr@10"] == pytest.approx(_served_hits(own, new.test, exclude_seen=True).mean())

    repeat = SplitChoice(CHOICES[kind].kind, CHOICES[kind].cutoff_ts, eval_mode=EvalMode.REPEAT).split(data)
    own_repeat = evaluate_scorer(own, data, repeat.test)
    assert (own_repeat.ranks >= 1).all()  # the repeated item now competes with the user's more recent items
    assert own_repeat.metrics["hr@10"] == pytest.approx(_served_hits(own, repeat.test, exclude_seen=False).mean())
    assert own_new.protocol.count("new items") == 1 and own_repeat.protocol.count("repeats allowed") == 1


def test_users_without_a_new_item_are_counted_in_the_report():
    data = sequences_from_arrays(np.array([0] * 5 + [1] * 4), np.array([1, 2, 1, 2, 1, 3, 4, 5, 6]),
                                 np.arange(9, dtype=float))
    split = SplitChoice().split(data)
    report = evaluate_scorer(_FixedOrder(data.n_items), data, split.test)
    assert (report.n_users, report.not_evaluated) == (1, 1)
    assert report.protocol.endswith("; 1 user with no new item to hold out not evaluated")
    assert report.to_dict()["eval"] == "new" and report.to_dict()["not_evaluated"] == 1


def test_users_too_short_to_hold_out_are_counted_in_the_report():
    """A session log's one- and two-click sessions only train: its report said "tested on 20,000 of
    22,093 users" of 40,000 without a word on where the other 17,907 went."""
    users = np.array([0] * 5 + [1] * 4 + [2] * 2 + [3])
    data = sequences_from_arrays(users, np.array([1, 2, 1, 2, 1, 3, 4, 5, 6, 7, 8, 9]),
                                 np.arange(12, dtype=float))
    report = evaluate_scorer(_FixedOrder(data.n_items), data, SplitChoice().split(data).test)
    assert (report.n_users, report.not_evaluated, report.too_short) == (1, 1, 2)
    assert report.protocol.endswith("; 1 user with no new item to hold out and 2 users with fewer than 3 steps "
                                    "(they only train; an item's events in a row are one step) not evaluated")
    assert report.to_dict()["too_short"] == 2
    repeats = SplitChoice(eval_mode=EvalMode.REPEAT).split(data).test
    assert evaluate_scorer(_FixedOrder(data.n_items), data, repeats).protocol.endswith(
        "; 2 users with fewer than 3 steps (they only train; an item's events in a row are one step) not evaluated")


def test_tested_users_without_history_are_counted_as_served_the_cold_start_list():
    """A time split of a session log tests only sessions begun after the cut: every one had no event
    before its test event, so each model served them the cold-start list, and the report read as the
    model's NDCG@10."""
    users = np.array([0] * 5 + [1, 1, 2])
    data = sequences_from_arrays(users, np.array([1, 2, 3, 4, 5, 6, 7, 8]), np.array([1, 2, 3, 4, 20, 21, 22, 23.0]))
    report = evaluate_scorer(_FixedOrder(data.n_items), data, SplitChoice("time", cutoff_ts=10.0).split(data).test)
    assert (report.n_users, report.cold_start) == (3, 2) and report.to_dict()["cold_start"] == 2
    assert report.protocol.endswith("; 2 users tested with no event before their test one (the cold-start list, "
                                    "the same for every model)")
    loo = evaluate_scorer(_FixedOrder(data.n_items), data, SplitChoice().split(data).test)
    assert loo.cold_start == 0 and "cold-start" not in loo.protocol
