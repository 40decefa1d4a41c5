"""The re-ranker is a bag of cross-fitted nets: judged on users none of its judged members saw, served whole."""

import numpy as np
import pytest
import torch

import core.ranker_training as ranker_training
from core.baselines.train_log import TrainLog
from core.ranker import Ranker, RankerNet
from core.ranker_features import ItemFacts, features_for
from core.ranker_training import FOLDS
from engine_data import one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = features_for(True)
USER = NAMES.index("history_length")  # each list carries its user's number here (small: logits must not tie)
USER_SCALE = 1e-4


def _lists(n_users, informative: bool, seed=0, n=20):
    """(features, labels, valid): generator scores are noise; with ``informative`` the target's
    "interest_match" stands out, otherwise nothing tells it apart."""
    rng = np.random.default_rng(seed)
    features = torch.tensor(rng.normal(size=(n_users, n, len(NAMES))), dtype=torch.float32)
    labels = torch.as_tensor(rng.integers(0, n, n_users))
    if informative:
        features[torch.arange(n_users), labels, NAMES.index("interest_match")] += 2.0
    features[:, :, USER] = USER_SCALE * torch.arange(n_users, dtype=torch.float32)[:, None]
    return features, labels, torch.ones(n_users, n, dtype=torch.bool)


def _perturbed(seed):
    torch.manual_seed(seed)
    net = RankerNet(NAMES)
    for parameter in net.parameters():
        torch.nn.init.normal_(parameter)
    return net.eval()


def test_a_bag_scores_the_mean_of_its_members_and_round_trips():
    members = [_perturbed(seed) for seed in range(3)]
    bag = RankerNet.averaged(members)
    features, _, _ = _lists(4, informative=False)
    with torch.no_grad():
        assert torch.allclose(bag(features), torch.stack([net(features) for net in members]).mean(dim=0), atol=1e-5)
    log = TrainLog.from_histories([np.array([1, 2, 3]), np.array([1, 4])], 4, np.array([0, 1, 1, 2, 2]), 3)
    restored = Ranker.from_state(Ranker(ItemFacts.from_log(log), bag, exclude_seen=True).state_tensors())
    assert restored.net.mlp[0].out_features == 3 * members[0].mlp[0].out_features
    with torch.no_grad():
        assert torch.equal(restored.net(features), bag(features))


def test_each_user_is_judged_by_rankers_that_never_saw_it_and_every_ranker_is_served(monkeypatch):
    seen_by, bags, judged, held = {}, {}, [], []  # held: every net spied on stays alive, so no id is reused
    train_and_pick_all, averaged, list_gains = (ranker_training._train_and_pick_all, RankerNet.averaged,
                                                ranker_training._list_gains)

    def spied_fit(features, labels, valid, fold, pairs, *rest):
        nets = train_and_pick_all(features, labels, valid, fold, pairs, *rest)
        for (judged_fold, _), net in nets.items():
            seen_by[id(net)] = set(torch.nonzero(fold != judged_fold).squeeze(1).tolist())  # trained or picked on
            held.append(net)
        return nets

    def spied_bag(nets):
        bag = averaged(nets)
        bags[id(bag)] = [id(net) for net in nets]
        held.append(bag)
        return bag

    def spied_gains(net, features, labels, valid):
        judged.append((id(net), torch.round(features[:, 0, USER] / USER_SCALE).long().tolist()))
        return list_gains(net, features, labels, valid)

    monkeypatch.setattr(ranker_training, "_train_and_pick_all", spied_fit)
    monkeypatch.setattr(RankerNet, "averaged", staticmethod(spied_bag))
    monkeypatch.setattr(ranker_training, "_list_gains", spied_gains)
    features, labels, valid = _lists(200, informative=True)
    served, report, served_gains = ranker_training._fit(features, labels, valid, NAMES, 0, 10, None, None)

    assert report["kept"] and report["bagged"] == len(seen_by) == FOLDS * (FOLDS - 1)
    judged_by_bags = [(bag, users) for bag, users in judged if bag in bags]
    assert sorted(user for _, users in judged_by_bags for user in users) == list(range(200))  # each user once
    for bag, users in judged_by_bags:
        assert len(bags[bag]) == FOLDS - 1
        assert not any(set(users) & seen_by[member] for member in bags[bag])  # nobody judges its own users
    assert sorted(bags[id(served)]) == sorted(seen_by)  # the served bag holds every ranker fitted
    judged_gains = np.zeros(200)
    for bag, users in judged_by_bags:
        rows = torch.as_tensor(users)
        judged_gains[users] = list_gains(held[[id(net) for net in held].index(bag)], features[rows], labels[rows],
                                         valid[rows])
    assert np.allclose(served_gains, judged_gains)  # what the popularity check weighs is the cross-fitted figure


def test_nets_trained_side_by_side_learn_and_pick_as_each_would_alone():
    """The batched fit against one net's plain loop: same start, lists, loss and Adam, the same order picked."""
    features, labels, valid = _lists(120, informative=True)
    fold = torch.as_tensor(np.random.default_rng(0).permutation(120) % FOLDS)
    pairs = [(0, 1), (3, 2)]
    torch.manual_seed(5)
    together = ranker_training._train_and_pick_all(features, labels, valid, fold, pairs, NAMES, 15, None, None)
    torch.manual_seed(5)
    for judged, picked in pairs:
        net = RankerNet(NAMES)
        train, pick = (fold != judged) & (fold != picked), fold == picked
        lists, lists_valid = ranker_training._sampled_lists(features[train], labels[train], valid[train])
        adam = torch.optim.Adam(net.parameters(), lr=0.03)
        best = (ranker_training._list_gains(net, features[pick], labels[pick], valid[pick]).mean(),
                {k: v.clone() for k, v in net.state_dict().items()})
        for step in range(1, 16):
            loss = torch.nn.functional.cross_entropy(net.train()(lists).masked_fill(~lists_valid, float("-inf")),
                                                     torch.zeros(len(lists), dtype=torch.long))
            adam.zero_grad()
            loss.backward()
            adam.step()
            ndcg = ranker_training._list_gains(net, features[pick], labels[pick], valid[pick]).mean()
            if step % ranker_training.CHECK_EVERY == 0 and ndcg > best[0]:
                best = (ndcg, {k: v.clone() for k, v in net.state_dict().items()})
        net.load_state_dict(best[1])
        mine = together[judged, picked]
        with torch.no_grad():  # Adam moves a weight whose gradient is ~0 by its rounding noise: compare the orders
            assert (mine(features).argmax(dim=1) == net(features).argmax(dim=1)).float().mean() > 0.9
        assert ranker_training._list_gains(mine, features[pick], labels[pick], valid[pick]).mean() == pytest.approx(
            best[0], abs=1e-3)
    assert not torch.equal(together[pairs[0]].mlp[0].weight, RankerNet(NAMES).mlp[0].weight)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_bag_that_cannot_help_is_left_out(seed):
    features, labels, valid = _lists(300, informative=False, seed=seed)
    served, report, _ = ranker_training._fit(features, labels, valid, NAMES, seed, 40, None, None)
    assert not report["kept"] and report["bagged"] == 0
    with torch.no_grad():  # what is served is the generator's own order
        assert torch.equal(served(features), RankerNet(NAMES)(features))


@pytest.mark.parametrize("n_users,kept", [(ranker_training.FEW_JUDGED_USERS, True),
                                          (ranker_training.FEW_JUDGED_USERS - 1, False)])
def test_a_gain_at_p_between_the_levels_is_kept_only_when_enough_users_are_judged(monkeypatch, n_users, kept):
    monkeypatch.setattr(ranker_training, "wilcoxon_p_value", lambda differences: 0.03)
    features, labels, valid = _lists(n_users, informative=True)
    _, report, _ = ranker_training._fit(features, labels, valid, NAMES, 0, 10, None, None)
    assert report["holdout_ndcg10_ranker"] > report["holdout_ndcg10_generator"]
    assert report["kept"] is kept
