"""The re-ranker's candidates: the generator's top-N and item-kNN's neighbours of the recent items, as one union
wherever candidates are made (ranker training, the keep check, evaluation, serving, bundles)."""

from dataclasses import replace

import numpy as np
import torch

from core.baselines.item_knn import ItemKNNScorer
from core.baselines.train_log import TrainLog
from core.data import EvalMode, EvalSet
from core.evaluation import evaluate_scorer
from core.generator import generate_candidates, mask_seen, union_candidates
from core.candidate_sources import (N_CANDIDATES, TEXT_RECENT, NewItemCandidates, neighbour_candidates, new_items_with_text, top_candidates)
from core.ranker import RankedScorer, Ranker, RankerNet
from core.ranker_features import ItemFacts, features_for
from core.ranker_training import _list_gains, train_ranker
from engine_data import one_thread  # noqa: F401
from test_ranker import _Noisy


def test_the_union_holds_each_allowed_item_once_in_the_scorers_order():
    scores = torch.tensor([[float("-inf"), 0.9, 0.1, 0.5, float("-inf"), 0.3]])
    top = np.array([[1, 3, 0]])  # the scorer's top-N, padded
    neighbours = np.array([[3, 4, 2, 5]])  # 3 again, 4 not allowed (seen)
    items, values = union_candidates(scores, [top, neighbours])
    assert items.tolist() == [[1, 3, 5, 2, 0, 0, 0]]
    assert np.allclose(values[0, :4], [0.9, 0.5, 0.3, 0.1]) and np.isneginf(values[0, 4:]).all()


def _chains(n_users, n_items, follows, seed, pairs=6):
    """Sequences of (item, the item that follows it) pairs; each user's held-out item follows their last."""
    rng = np.random.default_rng(seed)
    histories, targets = [], []
    while len(targets) < n_users:
        starts = rng.choice(np.arange(1, n_items + 1), size=pairs, replace=False)
        history = np.stack([starts, follows[starts]], axis=1).ravel()
        target = follows[history[-1]]
        if target not in history:
            histories.append(history)
            targets.append(target)
    return EvalSet(np.arange(n_users), histories, np.array(targets), EvalMode.NEW)


def test_neighbour_candidates_are_item_knns_strongest_allowed_items():
    n_items = 300
    follows = np.concatenate([[0], np.random.default_rng(3).integers(1, n_items + 1, n_items)])
    users = _chains(50, n_items, follows, seed=4)
    category = np.ones(n_items + 1, np.int64)
    knn = ItemKNNScorer.fit(TrainLog.from_histories(users.histories, n_items, category, 2), neighbours=20)
    scores = mask_seen(torch.zeros(50, n_items + 1), users.histories)
    scores[:, 0] = float("-inf")
    known = np.ones(n_items + 1, bool)
    known[7] = False  # an item scored as new: it has no partners when served
    proposed = neighbour_candidates(knn, known, 10, users.histories, scores)
    for row, history in enumerate(users.histories):
        strength = knn.score([history])[0].numpy() - knn.FLOOR * knn.popularity
        allowed = np.isfinite(scores[row].numpy()) & known & (strength > 0)
        chosen = proposed[row][proposed[row] > 0]
        assert allowed[chosen].all() and len(set(chosen)) == len(chosen) == min(10, allowed.sum())
        rest = np.setdiff1d(np.flatnonzero(allowed), chosen)
        assert not len(rest) or strength[chosen].min() >= strength[rest].max() - 1e-6


def test_item_knn_candidates_bring_the_targets_the_generator_misses_and_the_ranker_lifts_them():
    """A generator blind to the sequence holds the next item in its top 100 of 600 for a sixth of the users;
    the item that always follows the last one is item-kNN's strongest partner of it, so with the neighbours
    most targets are candidates, the ranker (reading co-occurrence) lifts them, and the pipeline
    serves them; without, it cannot."""
    n_items = 600
    follows = np.concatenate([[0], np.random.default_rng(8).integers(1, n_items + 1, n_items)])
    train_set, test_set = _chains(400, n_items, follows, seed=9), _chains(300, n_items, follows, seed=10)
    category = np.concatenate([[0], np.random.default_rng(11).integers(1, 7, n_items)])
    log = TrainLog.from_histories(train_set.histories, n_items, category, 7)
    scorer, segments = _Noisy(n_items), np.zeros(400, np.int64)
    alone = train_ranker(scorer, log, train_set, segments, category - 1, epochs=40, neighbours=0)
    joined = train_ranker(scorer, log, train_set, segments, category - 1, epochs=40, neighbours=20)
    assert alone.report["target_in_candidates"] < 0.3 < 0.8 < joined.report["target_in_candidates"]
    assert joined.report["kept"] and joined.neighbours == 20 and alone.neighbours == 0
    data = type("Data", (), {"item_category": category, "user_segment": np.zeros(400, np.int64)})
    served = evaluate_scorer(RankedScorer(scorer, joined, category - 1), data, test_set).metrics["ndcg@10"]
    assert served > 0.5 > evaluate_scorer(scorer, data, test_set).metrics["ndcg@10"]

    # serving draws the same candidates (generate_candidates with the ranker's sources), and a bundle keeps them
    restored = Ranker.from_state(joined.state_tensors())
    assert restored.neighbours == 20
    histories = test_set.histories[:20]
    listed = generate_candidates(scorer, histories, N_CANDIDATES, True, np.zeros(20, np.int64),
                                 sources=restored.candidate_sources)
    assert listed.items.shape[1] == N_CANDIDATES + 20
    assert np.mean([t in row for t, row in zip(test_set.targets[:20], listed.items)]) > 0.8
    assert torch.equal(RankedScorer(scorer, restored, category - 1).score(histories),
                       RankedScorer(scorer, joined, category - 1).score(histories))

    # a bundle saved before the neighbours were recorded re-orders the generator's top-N alone, as it did
    older = {k: v for k, v in joined.state_tensors().items() if k != "neighbours"}
    assert Ranker.from_state(older).neighbours == 0 and Ranker.from_state(older).candidate_sources == ()


def test_tied_targets_are_counted_at_their_expected_place_among_the_ties():
    net = RankerNet(("score_z",))
    features = torch.zeros(2, 20, 1)  # every candidate scores alike
    valid = torch.ones(2, 20, dtype=torch.bool)
    valid[1, 4:] = False  # a list of four
    gains = _list_gains(net, features, torch.tensor([3, 0]), valid)
    places = np.arange(20)
    expected = np.where(places < 10, 1 / np.log2(places + 2), 0)
    assert np.allclose(gains, [expected.mean(), expected[:4].mean()])


def _unit_rows(n, d, seed):
    rows = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    rows[0] = 0.0  # padding
    return rows


def test_new_item_candidates_are_the_allowed_new_items_closest_in_text_to_the_latest_items():
    n_items, text = 200, _unit_rows(201, 16, seed=5)
    known = np.ones(n_items + 1, bool)
    known[150:] = False  # 51 items without training events
    text[190] = 0.0  # one of them without text: nothing to compare
    histories = [np.random.default_rng(u).integers(1, 150, 30) for u in range(8)]
    scores = mask_seen(torch.zeros(8, n_items + 1), histories)
    scores[:, 0] = float("-inf")
    scores[0, 160] = float("-inf")  # not allowed for that user
    new = new_items_with_text(ItemFacts(torch.from_numpy(known.astype(np.float32)), *(torch.zeros(1),) * 3,
                                        text=torch.from_numpy(text)))
    assert new.tolist() == [i for i in range(150, 201) if i != 190]
    proposed = NewItemCandidates(text, new, 12)(histories, scores)
    for row, history in enumerate(histories):
        closeness = (text @ text[history[-TEXT_RECENT:]].T).max(axis=1)
        allowed = ~known & np.isfinite(scores[row].numpy()) & text.any(axis=1)
        chosen = proposed[row]
        assert allowed[chosen].all() and len(set(chosen.tolist())) == 12
        assert (np.diff(closeness[chosen]) <= 1e-6).all()  # best first
        assert closeness[chosen].min() >= closeness[np.setdiff1d(np.flatnonzero(allowed), chosen)].max() - 1e-6
    assert 160 not in proposed[0]


def test_a_text_reading_ranker_adds_new_items_to_what_it_serves_and_keeps_the_setting_in_its_bundle():
    n_items = 300
    follows = np.concatenate([[0], np.random.default_rng(3).integers(1, n_items + 1, n_items)])
    users = _chains(40, n_items, follows, seed=6)
    category = np.ones(n_items + 1, np.int64)
    log = TrainLog.from_histories(users.histories, n_items, category, 2)
    facts = ItemFacts.from_log(log)
    never_taken = np.flatnonzero(facts.popularity.numpy()[1:] == 0) + 1
    assert len(never_taken)
    text = torch.from_numpy(_unit_rows(n_items + 1, 16, seed=7))
    net = RankerNet(features_for(True, text=True))
    ranker = Ranker(replace(facts, text=text), net, exclude_seen=True, new_items=5)
    without_text = Ranker(facts, net, exclude_seen=True, new_items=5)
    assert len(ranker.candidate_sources) == 1 and not without_text.candidate_sources
    scores = mask_seen(torch.arange(n_items + 1, dtype=torch.float32).repeat(40, 1), users.histories)
    scores[:, never_taken] = -1.0  # the generator ranks every new item last, beyond its top N
    items, _ = top_candidates(scores, users.histories, ranker.candidate_sources)
    assert all(np.isin(row, never_taken).sum() == min(5, len(never_taken)) for row in items)
    assert not np.isin(top_candidates(scores, users.histories, without_text.candidate_sources)[0], never_taken).any()
    assert Ranker.from_state(ranker.state_tensors()).new_items == 5


def test_new_item_candidates_of_a_batch_are_each_users_own():
    """The batch's one product, reduced per user, gives each user exactly what asking alone gives, a user
    without history (nothing to compare) included."""
    n_items, text = 120, _unit_rows(121, 8, seed=9)
    known = np.ones(n_items + 1, bool)
    known[90:] = False
    new = np.arange(90, n_items + 1)
    histories = [np.random.default_rng(u).integers(1, 90, 3 + 5 * u) for u in range(4)]
    histories.insert(2, np.zeros(0, np.int64))
    scores = mask_seen(torch.zeros(len(histories), n_items + 1), histories)
    scores[1, 95] = float("-inf")
    together = NewItemCandidates(text, new, 6)(histories, scores)
    alone = [NewItemCandidates(text, new, 6)([h], scores[row:row + 1])[0] for row, h in enumerate(histories)]
    assert np.array_equal(together, np.stack(alone))
    assert not together[2].any() and together[0].all()


def _closest_new_items_compared_with_all(text, new, m, histories, scores):
    """What ``NewItemCandidates`` means: each user's recent items compared with every new item."""
    proposed = np.zeros((len(histories), m), dtype=np.int64)
    for row, history in enumerate(histories):
        if len(history):
            closeness = (text[history[-TEXT_RECENT:]] @ text[new].T).max(axis=0)
            closeness[~np.isfinite(scores[row, torch.from_numpy(new)].numpy())] = -np.inf
            best = np.argsort(-closeness, kind="stable")[:m]
            proposed[row] = np.where(np.isfinite(closeness[best]), new[best], 0)
    return proposed


def test_new_item_candidates_from_each_items_kept_closest_are_those_of_comparing_with_all():
    """Read from the closest new items kept per item (found as histories hold them, or all at once before
    serving), the proposals are those of comparing with every new item: also for a user who took most of
    what the kept lists hold, one whose recent items have no text, and one with ties (twin texts)."""
    n_items, text = 300, _unit_rows(301, 12, seed=3)
    new = np.arange(200, n_items + 1)
    text[7] = 0.0  # an item without text
    rng = np.random.default_rng(4)
    histories = [rng.integers(1, 200, int(rng.integers(1, 25))) for _ in range(12)] + [np.zeros(0, np.int64),
                                                                                        np.array([7, 7])]
    text[260] = text[250] = text[histories[1][-1]]  # twins, the closest new items to a user's latest item
    scores = mask_seen(torch.zeros(len(histories), n_items + 1), histories)
    source = NewItemCandidates(text, new, 8)
    source._fill(np.unique(np.concatenate(histories)))
    taker = histories[0][-TEXT_RECENT:]
    scores[0, torch.from_numpy(np.unique(new[source._near[taker]]))] = float("-inf")  # took every listed new item
    expected = _closest_new_items_compared_with_all(text, new, 8, histories, scores)
    assert expected[0].all() and not expected[-2].any() and expected[-1].all() and expected[1, :2].tolist() == [250, 260]
    compared_with_all = []
    source = NewItemCandidates(text, new, 8)
    source._compared_with_all = lambda items, *rest: compared_with_all.append(items) or type(source)._compared_with_all(
        source, items, *rest)
    assert np.array_equal(source(histories, scores), expected)
    assert any(np.array_equal(items, np.unique(taker)) for items in compared_with_all)  # the lists cannot tell
    assert len(compared_with_all) < len(histories) // 2  # the lists told the others' closest
    prepared = NewItemCandidates(text, new, 8)
    prepared.prepare()
    assert prepared._filled[1:].all()
    assert np.array_equal(prepared(histories, scores), expected)
