"""Ranker: re-orders the generator's top-N candidates with a small learned model.

The generator sees only the sequence; the ranker adds what it cannot: the user's profile
segment × category affinity, the item's popularity and freshness, how well the item fits the
predicted interest and the user's category mix, and how often it is taken near the user's
recent items (item-kNN co-occurrence: "often taken with X"). It is trained on held-out
positions (the split's validation targets: the held-out item among the candidates is the
positive, the others negatives) with a listwise softmax loss, starting from the generator's
own order and keeping that order unless the learned one ranks better on users it did not
train on (cross-fitted, see ``_fit``), by a margin a paired test says is not chance
(``report["kept"]``). Otherwise the generator's own order is served.

Its candidates are formed as the run's evaluation mode serves them: under "exclude seen"
(``EvalMode.NEW``) the user's history is masked (``core.generator.mask_seen``) before the
top-N is taken, in training, in its keep-or-drop judgement and in ``RankedScorer`` alike;
under ``EvalMode.REPEAT`` nothing is. A ranker fitted on unmasked candidates learns to lift
what the user already had, which "exclude seen" then removes: it looked better on its own
holdout and served worse.

Here: the network (``RankerNet``), the fitted ``Ranker`` and the ``RankedScorer`` that serves it, and
MMR diversity. What it reads of each candidate: ``core.ranker_features``; where its candidates come
from: ``core.candidate_sources``; how it is fitted and judged: ``core.ranker_training``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch
from torch import nn

from core.candidate_sources import NewItemCandidates, candidate_sources, top_candidates
from core.generator import CandidateSource, ColdStartScorer, mask_seen
from core.ranker_features import (
    COOCCURRENCE_GROUP,
    FEATURES,
    LEGACY_FEATURES,
    TEXT_FEATURES,
    CandidateView,
    ItemFacts,
    feature_groups,
    features_for,
)
from core.scorer import Scorer, WrappedScorer


class RankerNet(nn.Module):
    """Linear score over the features plus a small MLP correction.

    Initialised to reproduce the generator's order exactly (weight 1 on its z-scored score,
    0 elsewhere, MLP output 0), so training starts from "does no harm".
    """

    def __init__(self, features: tuple[str, ...] = features_for(False), hidden: int = 8) -> None:
        super().__init__()
        self.features = tuple(features)
        self.linear = nn.Linear(len(features), 1, bias=False)
        self.mlp = nn.Sequential(nn.Linear(len(features), hidden), nn.ReLU(), nn.Linear(hidden, 1))
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.weight[0, features.index("score_z")] = 1.0
            self.mlp[2].weight.zero_()
            self.mlp[2].bias.zero_()

    @classmethod
    def averaged(cls, nets: list["RankerNet"]) -> "RankerNet":
        """One net whose relevance is the mean of ``nets``' (same features): their linear weights
        averaged, their hidden units side by side with output weights divided by their number. It is
        saved and served as any ranker is (``Ranker.from_state`` reads the hidden width)."""
        hidden = sum(net.mlp[0].out_features for net in nets)
        merged = cls(nets[0].features, hidden=hidden)
        with torch.no_grad():
            merged.linear.weight.copy_(torch.stack([net.linear.weight for net in nets]).mean(dim=0))
            merged.mlp[0].weight.copy_(torch.cat([net.mlp[0].weight for net in nets]))
            merged.mlp[0].bias.copy_(torch.cat([net.mlp[0].bias for net in nets]))
            merged.mlp[2].weight.copy_(torch.cat([net.mlp[2].weight for net in nets], dim=1) / len(nets))
            merged.mlp[2].bias.copy_(torch.stack([net.mlp[2].bias for net in nets]).mean(dim=0))
        return merged.eval()

    def weights(self) -> tuple[torch.Tensor, ...]:
        """What ``relevance`` reads: the linear weight, the MLP's hidden weight and bias, its output
        weight and bias."""
        return self.linear.weight, self.mlp[0].weight, self.mlp[0].bias, self.mlp[2].weight, self.mlp[2].bias

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (..., N, F) -> relevance (..., N)."""
        return relevance(features, *self.weights())


def relevance(features: torch.Tensor, linear: torch.Tensor, hidden: torch.Tensor, hidden_bias: torch.Tensor,
              out: torch.Tensor, out_bias: torch.Tensor) -> torch.Tensor:
    """``RankerNet``'s score from its ``weights()``, features (..., N, F) -> (..., N): also one net's slice of
    many nets' weights stacked, as the nets of a bag train side by side (``core.ranker_training``)."""
    hidden_units = torch.relu(nn.functional.linear(features, hidden, hidden_bias))
    return (nn.functional.linear(features, linear) + nn.functional.linear(hidden_units, out, out_bias)).squeeze(-1)


@dataclass
class Judgement:
    """What the keep check saw, per validation user it judged: ``users`` (their indices in the eval
    set) and ``ndcg10``, the cross-fitted NDCG@10 of what the ranker's decision serves (the bag's
    order when kept, the generator's otherwise; 0 where the target fell outside the candidates).
    These, not the served pipeline's validation ranks (the ranker was fitted on those targets), are
    what compares it fairly with another pipeline. Only a ranker just trained has one."""

    users: np.ndarray
    ndcg10: np.ndarray


class Ranker:
    """The trained re-ranker: item facts + network over ``features``, with a bundle-friendly state.

    ``exclude_seen``: its candidates were formed with the user's history masked (trained for
    serving with "exclude seen"); such a ranker has no "seen_before" feature. ``features``: the
    network's own unless given. ``judgement``: its keep check's per-user figures (``Judgement``).
    ``neighbours``, ``new_items``: item-kNN and new-item candidates added to the generator's top-N
    (``candidate_sources``; 0 in bundles saved before they were, which serve as they did).
    """

    def __init__(self, facts: ItemFacts, net: RankerNet, report: Optional[dict] = None,
                 exclude_seen: bool = False, features: Optional[tuple[str, ...]] = None,
                 judgement: Optional["Judgement"] = None, neighbours: int = 0, new_items: int = 0) -> None:
        self.facts, self.net = facts, net.eval()
        self.judgement = judgement
        self.report = report or {}
        self.exclude_seen = exclude_seen
        self.features = net.features if features is None else tuple(features)
        self.neighbours = int(neighbours)
        self.new_items = int(new_items)

    @functools.cached_property
    def candidate_sources(self) -> tuple[CandidateSource, ...]:
        """What proposes candidates besides the generator's top-N, as this ranker was trained with (formed
        once: the new-item source finds its pool of new items over the whole catalogue)."""
        return candidate_sources(self.facts, self.neighbours, self.new_items)

    def prepare_to_serve(self) -> None:
        """Find now what the candidate sources keep (``NewItemCandidates.prepare``), not in the first lists served."""
        for source in self.candidate_sources:
            if isinstance(source, NewItemCandidates):
                source.prepare()

    def carrying(self, facts: ItemFacts) -> "Ranker":
        """This ranker over other item ``facts`` (the same log's text, another catalogue's indices, a
        newer log's counts)."""
        return Ranker(facts, self.net, self.report, self.exclude_seen, self.features, self.judgement, self.neighbours,
                      self.new_items)

    @functools.cached_property
    def feature_group_mask(self) -> tuple[tuple[str, ...], np.ndarray]:
        """(the groups of ``features``, (G, F) bool: which features each group holds)."""
        groups = feature_groups(self.features)
        return tuple(groups), np.array([[name in members for name in self.features] for members in groups.values()])

    @property
    def reads_text(self) -> bool:
        return any(name in TEXT_FEATURES for name in self.features)

    def with_text(self, vectors: Optional[torch.Tensor]) -> "Ranker":
        """This ranker reading ``vectors`` (its scorer's item text vectors, ``Scorer.text_vectors``) for its
        text features; a ranker without them, or given None, is returned as it is."""
        if not self.reads_text or vectors is None:
            return self
        return self.carrying(replace(self.facts, text=vectors))

    @torch.no_grad()
    def relevance(self, items, scores, histories, segments, interests, item_interest) -> torch.Tensor:
        """(B, N) learned relevance of each candidate; -inf for padding candidates."""
        view = CandidateView(self.facts, items, scores, histories, segments, interests, item_interest)
        return self._relevance_of(view.features(self.features), view.real)

    @torch.no_grad()
    def explained_relevance(self, items, scores, histories, segments, interests, item_interest) -> "RankedCandidates":
        """``relevance``, kept with what explains it: ``RankedCandidates.taken_with`` of the candidates a
        list shows (a served list explains its ten, not the hundred the ranker re-ordered)."""
        view = CandidateView(self.facts, items, scores, histories, segments, interests, item_interest)
        features = view.features(self.features)
        return RankedCandidates(self, view, features, self._relevance_of(features, view.real))

    def _relevance_of(self, features: torch.Tensor, real: np.ndarray) -> torch.Tensor:
        relevance = self.net(features)
        return torch.where(torch.from_numpy(real), relevance, torch.tensor(float("-inf")))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        net = {f"net.{k}": v.detach().contiguous() for k, v in self.net.state_dict().items()}
        return {**{f"facts.{k}": v for k, v in self.facts.state_tensors().items()}, **net,
                "exclude_seen": torch.tensor(self.exclude_seen), "neighbours": torch.tensor(self.neighbours),
                "new_items": torch.tensor(self.new_items),
                "features": torch.tensor([name in self.features for name in FEATURES])}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "Ranker":
        """Bundles saved before these were recorded hold rankers of ``LEGACY_FEATURES`` fitted on
        unmasked candidates; the feature mask follows ``FEATURES``, new names being appended. A
        ranker that reads text gets its vectors from its scorer (``with_text``)."""
        facts = ItemFacts.from_state({k[len("facts."):]: v for k, v in state.items() if k.startswith("facts.")})
        exclude_seen = bool(state.get("exclude_seen", torch.tensor(False)))
        mask = state["features"].tolist() if "features" in state else [name in LEGACY_FEATURES for name in FEATURES]
        features = tuple(name for name, used in zip(FEATURES, mask) if used)
        net = RankerNet(features, hidden=state["net.mlp.0.weight"].shape[0])  # a bag is wider (RankerNet.averaged)
        net.load_state_dict({k[len("net."):]: v for k, v in state.items() if k.startswith("net.")})
        return cls(facts, net, exclude_seen=exclude_seen, features=features,
                   neighbours=int(state.get("neighbours", torch.tensor(0))),
                   new_items=int(state.get("new_items", torch.tensor(0))))


@dataclass(frozen=True)
class RankedCandidates:
    """A batch's candidates as the ranker scored them: ``relevance`` (B, N), -inf for padding."""

    ranker: Ranker
    view: CandidateView
    features: torch.Tensor  # (B, N, F)
    relevance: torch.Tensor

    @torch.no_grad()
    def taken_with(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """(M,) for the candidates at (``rows``, ``columns``): the history item each is "often taken with"
        where the co-occurrence features lifted it more than any other feature group did (its strongest
        partner among the user's recent items), 0 elsewhere (and for rankers without those features)."""
        partners = np.zeros(len(rows), dtype=np.int64)
        groups = self.ranker.feature_group_mask[0]
        if COOCCURRENCE_GROUP not in groups or self.ranker.facts.cooccurrence is None or not len(rows):
            return partners
        lifts = self._lifts(rows, columns)
        by_cooccurrence = lifts[groups.index(COOCCURRENCE_GROUP)]
        others = np.delete(lifts, groups.index(COOCCURRENCE_GROUP), axis=0)
        others = others.max(axis=0) if len(others) else np.zeros(len(rows), dtype=lifts.dtype)
        mainly = (by_cooccurrence > 0) & (by_cooccurrence >= others)
        if mainly.any():
            partners[mainly] = self.view.partners()[rows[mainly], columns[mainly]]
        return partners

    def _lifts(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """(G, M) per feature group (``Ranker.feature_group_mask``): how much higher each asked candidate's
        relevance is than with that group's features at their mean over its list's real candidates (what
        the group lifted it by). Every group's averaged copy goes through the network in one pass; the
        rest is NumPy (a served batch's few dozen candidates cost more in torch's per-operation overhead
        than in arithmetic)."""
        in_group = self.ranker.feature_group_mask[1]
        features, real = self.features.numpy(), self.view.real
        means = ((features * real[:, :, None]).sum(axis=1) / np.maximum(real.sum(axis=1), 1)[:, None]).astype(np.float32)
        averaged = np.where(in_group[:, None, :], means[rows][None], features[rows, columns][None])  # (G, M, F)
        return self.relevance.numpy()[rows, columns] - self.ranker.net(torch.from_numpy(averaged)).numpy()


class RankedScorer(WrappedScorer):
    """Generator + ranker as one ``Scorer``, so the whole pipeline is evaluated by full ranking.

    The candidates (the generator's top-N and what the ranker's ``candidate_sources`` add) are placed
    above every other item in the ranker's order; the rest keep the generator's scores. With ``exclude_seen`` (the ranker's own setting unless
    given: an evaluation under the other mode gives it) the history is masked before the
    top-N is taken, as serving forms the candidates, so the ranker re-orders what is served.
    """

    def __init__(self, scorer: Scorer, ranker: Ranker, item_interest: np.ndarray,
                 exclude_seen: Optional[bool] = None) -> None:
        super().__init__(scorer)
        self.ranker = ranker
        self.item_interest = np.asarray(item_interest)
        self.exclude_seen = ranker.exclude_seen if exclude_seen is None else exclude_seen
        self.name = f"{scorer.name}+ranker"

    def score(self, histories: list[np.ndarray], segments: Optional[np.ndarray] = None) -> torch.Tensor:
        base = self.scorer.score(histories, segments).float()  # a new tensor: ours to change (Scorer.score)
        if self.exclude_seen:
            mask_seen(base, histories)
        interests = self.scorer.interests_batch(histories, segments)
        segments = np.zeros(len(histories), np.int64) if segments is None else np.asarray(segments)
        items, scores = top_candidates(base, histories, self.ranker.candidate_sources)
        relevance = self.ranker.relevance(items, scores, histories, segments, interests, self.item_interest)
        finite = torch.isfinite(relevance)
        floor = torch.where(finite, relevance, torch.tensor(float("inf"))).min(dim=1, keepdim=True).values
        ceiling = base.max(dim=1, keepdim=True).values  # scores are finite or -inf: the best finite one (or -inf)
        lifted = ceiling + 1.0 + (relevance - floor)
        index = torch.as_tensor(items)
        base.scatter_(1, index, torch.where(finite, lifted, base.gather(1, index)))
        base[:, 0] = float("-inf")
        return base


def served_scorer(scorer: Scorer, ranker: Optional[Ranker], item_interest: np.ndarray, fallback: Scorer,
                  exclude_seen: Optional[bool] = None) -> Scorer:
    """What a run serves, as one ``Scorer``: its generator re-ordered by its ranker (None: the ranker was
    left out, the generator's order is served) and, for a user without a history, ``fallback``
    (popularity). A run's test, popularity's side of the gate and a later re-evaluation all score this."""
    ranked = scorer if ranker is None else RankedScorer(scorer, ranker, item_interest, exclude_seen)
    return ColdStartScorer(ranked, fallback)


def mmr_order(items: np.ndarray, relevance: np.ndarray, item_category: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Positions of ``k`` candidates picked by maximal marginal relevance.

    Each step takes the candidate maximising (1 - diversity) * relevance - diversity * (its
    largest similarity to what is already picked); similarity = same primary category.
    Relevance is min-max scaled to [0, 1] so the knob means the same for every model.
    diversity = 0 keeps the relevance order; 1 spreads categories as far as possible.
    """
    usable = np.flatnonzero((items > 0) & np.isfinite(relevance))
    rel = relevance[usable].astype(np.float64)
    rel = (rel - rel.min()) / max(rel.max() - rel.min(), 1e-12) if len(rel) else rel
    cats = np.asarray(item_category)[items[usable]]
    max_sim = np.zeros(len(usable))
    picked: list[int] = []
    available = np.ones(len(usable), dtype=bool)
    for _ in range(min(k, len(usable))):
        gain = (1.0 - diversity) * rel - diversity * max_sim + 1e-9 * rel
        best = int(np.argmax(np.where(available, gain, -np.inf)))
        picked.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, ((cats == cats[best]) & (cats > 0)).astype(np.float64))
    return usable[np.array(picked, dtype=np.int64)]
