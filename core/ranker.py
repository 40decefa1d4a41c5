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
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch
from torch import nn

from core.baselines.item_knn import ItemKNNScorer
from core.baselines.train_log import TrainLog
from core.evaluation import masked_score_batches, wilcoxon_p_value
from core.generator import CandidateSource, mask_seen, with_sources
from core.progress import RateMeter, emit
from core.scorer import Scorer, WrappedScorer
from core.top_k import top_k

N_CANDIDATES = 100  # the generator's top-N the ranker is trained on and re-orders
# Item-kNN's strongest partners of the user's recent items added to them (``neighbour_candidates``; 0 = none). The
# generator's top 100 held the held-out item for 40% of ml-latest-small's test users; 50 of item-kNN's raised that
# to 44% (100: 47%), 65% to 70% on ml-100k and on the demo shop, but the served test NDCG@10 gained nothing on
# those (+0.0013, +0.0002; p 0.9) and the keep check left ml-100k's re-ranker out; only over a weak amazon-toys
# generator (item-kNN far above it) did it gain (+0.028). Each served list pays about 2 ms of CPU more
# (benchmarks/bench_candidates.py, bench_latency.py): off until a trained default run shows the gain.
NEIGHBOUR_CANDIDATES = 0
# Items without training events whose text is closest to the user's latest items, added to the candidates of a
# ranker that reads text (``NewItemCandidates``; 0 = none). Only a catalogue with such items is touched: in
# training the log's latest items stand for them (``_with_latest_items_as_new``), so the ranker learns to lift them.
NEW_ITEM_CANDIDATES = 20
NEAR_SLACK = 4  # each item keeps its (new-item candidates + this) closest new items (``NewItemCandidates``)
PREPARED_PAIRS = 100_000_000  # ... found for every item before serving when items x new items is at most this (~1 s)
FILL_ROWS = 256
MAX_TRAIN_USERS = 3000  # held-out positions used to fit it (a sample when there are more)
FOLDS = 5  # cross-fitting: each fold is judged by the four rankers that trained on three others, picked on one
TRAIN_LIST = 32  # candidates per training list: the target and a sample of the others
EPOCHS = 80  # full-batch Adam steps
CHECK_EVERY = 5  # steps between holdout checks
# The learned order is served only if its cross-fitted gain is this unlikely to be chance (``keep_level``). On a
# few judged users the test asks more: on 60 a ranker at p = 0.03 had learnt "never taken is good" and lifted
# every item added since, while the update of that log gained at p = 1e-6. With hundreds judged, 0.01 left out
# re-rankers that gain on the test: ml-latest-small's default run at p 0.024 (served 0.0534, item-kNN 0.0495;
# the bag over a like generator serves 0.066, +0.017 over item-kNN at p 0.002), ml-100k's at p 0.017-0.048
# (kept, +0.016-0.018 on the test at p 0.0013-0.0015).
KEEP_P_VALUE = 0.05
FEW_JUDGED_USERS = 200  # below this many judged users the stricter level holds
FEW_JUDGED_P_VALUE = 0.01
LATEST_SHARE = 0.1  # text runs: the ranker learns from the items first taken in this latest share of the log as new
COOCCURRENCE_NEIGHBOURS = 20  # each item's strongest co-occurring partners kept for the ranker (20 a row in the bundle)
FEATURES = ("score_z", "rank", "interest_match", "popularity", "recency", "history_category_share",
            "segment_affinity", "history_length", "seen_before", "same_category_as_last",
            "cooccurrence", "cooccurrence_z", "text_similarity", "new_item")
# Read only by a ranker over a model that reads item text: it learns how new items fare from the log's
# latest items made new (``_with_latest_items_as_new``), which only such a model can score as it does new items.
TEXT_FEATURES = ("text_similarity", "new_item")
TEXT_RECENT = 10  # latest history items a candidate's text is compared with
LEGACY_FEATURES = FEATURES[:10]  # a ranker saved before its features were recorded used these
LOG_FEATURES = ("popularity", "recency", "cooccurrence", "cooccurrence_z")  # what the training log says of an item


# Features read together when saying why the ranker lifted an item; every other feature is a group of its own.
GROUPS = {"generator": ("score_z", "rank"), "co-occurrence": ("cooccurrence", "cooccurrence_z")}
COOCCURRENCE_GROUP = "co-occurrence"


def feature_groups(features: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """``features`` grouped as ``GROUPS`` says (a group keeps the names it has among them)."""
    grouped = {group: tuple(name for name in names if name in features) for group, names in GROUPS.items()}
    alone = {name: (name,) for name in features if not any(name in names for names in GROUPS.values())}
    return {group: names for group, names in {**grouped, **alone}.items() if names}


def features_for(exclude_seen: bool, text: bool = False) -> tuple[str, ...]:
    """The features of a ranker whose candidates exclude the user's history ("seen_before" is then always
    0, so it is left out; a ranker for repeats keeps it), and that reads item text or not."""
    return tuple(name for name in FEATURES if not (exclude_seen and name == "seen_before")
                 and (text or name not in TEXT_FEATURES))


@dataclass
class ItemFacts:
    """Per-item and per-segment facts from the training log, as tensors for the bundle.

    An item the log never saw knows nothing of its takers or partners; its ``LOG_FEATURES`` are read
    as its list's average (``CandidateView``), not as those of an item nobody ever took. Which items
    those are: with text (a ranker that learned how new items fare, ``new_item``), every item of
    popularity 0; without, the items new since training (``known``), an item the log held without
    events staying one nobody took.
    """

    popularity: torch.Tensor  # (n_items + 1,) log1p(count) / log1p(max count); 0 = not in the log
    recency: torch.Tensor  # (n_items + 1,) 1 = last taken at the newest time, 0 = oldest / never
    item_category: torch.Tensor  # (n_items + 1,) long
    segment_affinity: torch.Tensor  # (n_segments, n_categories) log lift of P(category | segment)
    cooccurrence: Optional[ItemKNNScorer] = None  # items taken near each other (None in older bundles)
    # (n_items + 1, d) the items' unit text vectors (core.text), rows of 0 for none; the scorer's own,
    # attached when a text-reading model is trained or loaded (``Scorer.text_vectors``), never saved twice
    text: Optional[torch.Tensor] = None
    # (n_items + 1,) bool: items in the training log's catalogue; None = all. A run served on a catalogue
    # that grew since (``core.bundles``) knows nothing of the new items' takers or partners.
    known: Optional[torch.Tensor] = None

    @classmethod
    def from_log(cls, log: TrainLog, item_knn: Optional[ItemKNNScorer] = None) -> "ItemFacts":
        """``item_knn``: an item-kNN already fitted on ``log`` with the default window (the run's own
        generator), narrowed instead of counting the log's co-occurrences a second time."""
        width = log.n_items + 1
        counts = np.bincount(log.items, minlength=width).astype(np.float64)
        popularity = np.log1p(counts) / max(np.log1p(counts.max(initial=0)), 1e-9)
        last = np.full(width, -np.inf)
        np.maximum.at(last, log.items, log.ts)
        oldest, newest = (float(log.ts.min()), float(log.ts.max())) if len(log.ts) else (0.0, 1.0)
        recency = np.where(np.isfinite(last), (last - oldest) / max(newest - oldest, 1e-9), 0.0)
        seg_cat = log.segment_counts(log.n_categories, item_values=log.item_category)
        p_cat = (seg_cat.sum(axis=0) + 1.0) / (seg_cat.sum() + log.n_categories)
        p_cat_given_seg = (seg_cat + 1.0) / (seg_cat.sum(axis=1, keepdims=True) + log.n_categories)
        affinity = np.clip(np.log(p_cat_given_seg / p_cat), -3.0, 3.0)
        return cls(torch.tensor(popularity, dtype=torch.float32), torch.tensor(recency, dtype=torch.float32),
                   torch.as_tensor(log.item_category, dtype=torch.long), torch.tensor(affinity, dtype=torch.float32),
                   ItemKNNScorer.fit(log, neighbours=COOCCURRENCE_NEIGHBOURS) if item_knn is None
                   else item_knn.narrowed(COOCCURRENCE_NEIGHBOURS))

    @functools.cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        """The per-item facts as NumPy arrays (views of the tensors), read for every served list."""
        arrays = {"popularity": self.popularity.numpy(), "recency": self.recency.numpy(),
                  "item_category": self.item_category.numpy(), "segment_affinity": self.segment_affinity.numpy()}
        if self.text is not None:
            arrays["text"] = self.text.float().numpy()
            arrays["known"] = arrays["popularity"] > 0
        else:
            arrays["known"] = np.ones(len(arrays["popularity"]), bool) if self.known is None else self.known.numpy()
        return arrays

    def state_tensors(self) -> dict[str, torch.Tensor]:
        cooccurrence = {} if self.cooccurrence is None else self.cooccurrence.state_tensors()
        return {"popularity": self.popularity, "recency": self.recency, "item_category": self.item_category,
                "segment_affinity": self.segment_affinity, **{f"cooccurrence.{k}": v for k, v in cooccurrence.items()}}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "ItemFacts":
        cooccurrence = {k[len("cooccurrence."):]: v for k, v in state.items() if k.startswith("cooccurrence.")}
        return cls(state["popularity"], state["recency"], state["item_category"].long(), state["segment_affinity"],
                   ItemKNNScorer.from_state(cooccurrence) if cooccurrence else None)


def candidate_features(facts: ItemFacts, items: np.ndarray, scores: np.ndarray, histories: list[np.ndarray],
                       segments: np.ndarray, interests: np.ndarray, item_interest: np.ndarray,
                       features: tuple[str, ...] = FEATURES) -> torch.Tensor:
    """(B, N, len(features)) ``features`` (names from ``FEATURES``, in that order) of each (user,
    candidate); padding candidates (item 0) get zeros.

    interests: (B, n_interests) predicted interest probabilities (rows of zeros when unknown).
    item_interest: (n_items + 1,) interest index of each item, -1 for none.
    """
    return CandidateView(facts, items, scores, histories, segments, interests, item_interest).features(features)


class CandidateView:
    """One batch of candidate lists and what their features share, each part computed once.

    All NumPy: one served list's dozen features cost tens of microseconds each this way, against
    hundreds as small torch operations; ``partners`` reuses the co-occurrence pairs the features read.
    """

    def __init__(self, facts: ItemFacts, items, scores, histories, segments, interests, item_interest) -> None:
        self.facts, self.arrays = facts, facts.arrays
        self.items = np.asarray(items, dtype=np.int64)
        self.real = self.items > 0
        self.scores = np.asarray(scores, dtype=np.float32)
        self.histories = [np.asarray(h, dtype=np.int64) for h in histories]
        self.segments = np.asarray(segments, dtype=np.int64)
        self.interests = np.asarray(interests, dtype=np.float32)
        self.item_interest = np.asarray(item_interest)

    def features(self, names: tuple[str, ...]) -> torch.Tensor:
        values = np.zeros(self.items.shape + (len(names),), dtype=np.float32)
        for column, name in enumerate(names):
            values[:, :, column] = getattr(self, name)()
        values *= self.real[:, :, None]
        self._impute_unknown(values, [names.index(name) for name in LOG_FEATURES if name in names])
        return torch.from_numpy(values)

    def _impute_unknown(self, values: np.ndarray, columns: list[int]) -> None:
        """Set, in place, the ``columns`` of real candidates the log knew nothing of to their mean over the
        known candidates of the same list (0 where none is known).

        An item added after training (or without a training event) has no takers or partners in the
        run's facts; read as zeros, it would look like an item nobody ever took, which the ranker learnt
        to push down. Read as the list's average, the ranker orders it by what it does know (the
        generator's score, its category, its text)."""
        known = self.arrays["known"][self.items] & self.real
        unknown = self.real & ~known
        if not columns or not unknown.any():
            return
        part = values[:, :, columns]
        means = (part * known[:, :, None]).sum(axis=1, keepdims=True) / np.maximum(known.sum(axis=1), 1)[:, None, None]
        values[:, :, columns] = np.where(unknown[:, :, None], means, part)

    @functools.cached_property
    def category(self) -> np.ndarray:
        return self.arrays["item_category"][self.items]

    @functools.cached_property
    def recent_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _recent_pairs(self.facts.cooccurrence, self.items, self.histories)

    @functools.cached_property
    def history_cooccurrence(self) -> np.ndarray:
        """(B, N) how often each candidate is taken near the user's recent items: item-kNN's score of it
        (decayed sum over the last items of their cosine co-occurrence with it), for candidates only."""
        owner, _, contributions = self.recent_pairs
        sums = np.zeros(self.items.shape, dtype=np.float32)
        np.add.at(sums, owner, contributions)
        return sums

    def partners(self) -> np.ndarray:
        """(B, N) the recent history item that adds most to each candidate's ``history_cooccurrence``
        (the newest of equals), 0 where none adds anything: what "often taken with X" names."""
        owner, recent, contributions = self.recent_pairs
        partners = np.zeros(self.items.shape, dtype=np.int64)
        if not len(owner):
            return partners
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])  # each user's recent events are contiguous
        users = owner[starts]
        strongest = np.maximum.reduceat(contributions, starts, axis=0)  # (users, N)
        event = np.arange(len(owner))[:, None]
        is_strongest = (contributions == strongest[np.searchsorted(users, owner)]) & (contributions > 0)
        newest = np.maximum.reduceat(np.where(is_strongest, event, -1), starts, axis=0)
        partners[users] = np.where(newest >= 0, recent[np.maximum(newest, 0)], 0)
        return partners

    def score_z(self) -> np.ndarray:
        return _z_scored(self.scores, self.real)

    def rank(self) -> np.ndarray:
        """The generator's order among the candidates (the lists are in it, ``union_candidates``)."""
        return (np.log1p(np.arange(self.items.shape[1], dtype=np.float32)) / np.log1p(N_CANDIDATES))[None, :]

    def interest_match(self) -> np.ndarray:
        n_interests = self.interests.shape[1]
        padded = np.concatenate([self.interests, np.zeros((len(self.interests), 1), np.float32)], axis=1)
        column = self.item_interest[self.items]
        return np.take_along_axis(padded, np.where(column < 0, n_interests, column), axis=1)

    def popularity(self) -> np.ndarray:
        return self.arrays["popularity"][self.items]

    def recency(self) -> np.ndarray:
        return self.arrays["recency"][self.items]

    def history_category_share(self) -> np.ndarray:
        mix = history_category_mix(self.histories, self.arrays["item_category"], self.arrays["segment_affinity"].shape[1])
        return np.take_along_axis(mix, self.category, axis=1)

    def segment_affinity(self) -> np.ndarray:
        affinity = self.arrays["segment_affinity"]
        return affinity[np.clip(self.segments, 0, len(affinity) - 1)[:, None], self.category]

    def history_length(self) -> np.ndarray:
        return (np.log1p([len(h) for h in self.histories]) / np.log1p(100.0))[:, None]

    def seen_before(self) -> np.ndarray:
        owner = np.repeat(np.arange(len(self.histories)), [len(h) for h in self.histories])
        events = np.concatenate(self.histories + [np.zeros(0, np.int64)])
        width = int(max(self.items.max(initial=0), events.max(initial=0))) + 1
        keys = np.arange(len(self.histories))[:, None] * width + self.items
        return np.isin(keys, owner * width + events)

    def same_category_as_last(self) -> np.ndarray:
        last = np.array([self.arrays["item_category"][h[-1]] if len(h) else -1 for h in self.histories])
        return (self.category == last[:, None]) & (self.category > 0)

    def cooccurrence(self) -> np.ndarray:
        return np.log1p(self.history_cooccurrence)

    def cooccurrence_z(self) -> np.ndarray:
        return _z_scored(self.history_cooccurrence, self.real)

    def new_item(self) -> np.ndarray:
        """1 for an item the log never saw: scored from its text, its log features only its list's average."""
        return ~self.arrays["known"][self.items]

    def text_similarity(self) -> np.ndarray:
        """(B, N) each candidate's largest text cosine with the user's ``TEXT_RECENT`` latest items (0
        without text): what tells a new edition of a line the user follows from any other new item."""
        text = self.arrays.get("text")
        similarity = np.zeros(self.items.shape, dtype=np.float32)
        if text is None:
            return similarity
        for row, history in enumerate(self.histories):
            recent = history[-TEXT_RECENT:]
            if len(recent):
                similarity[row] = (text[self.items[row]] @ text[recent].T).max(axis=1)
        return similarity


def _z_scored(values: np.ndarray, real: np.ndarray) -> np.ndarray:
    """(B, N) ``values`` standardised over each row's real candidates (padding excluded)."""
    values = np.where(real, values, 0.0)
    n_real = np.maximum(real.sum(axis=1, keepdims=True), 1)
    mean = values.sum(axis=1, keepdims=True) / n_real
    std = np.sqrt((((values - mean) ** 2) * real).sum(axis=1, keepdims=True) / n_real)
    return (values - mean) / (std + 1e-6)


def _recent_pairs(cooccurrence: ItemKNNScorer, items: np.ndarray, histories: list[np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(owner, recent, contributions): each recent history event item-kNN reads (its user's row, its
    item, oldest first within a user) and its weighted cosine co-occurrence with each of its user's
    candidates, (E, N)."""
    weights = [cooccurrence.history_weights(h) for h in histories]
    used = [w > 0 for w in weights]
    owner = np.repeat(np.arange(len(histories)), [int(u.sum()) for u in used])
    recent = np.concatenate([h[u] for h, u in zip(histories, used)] + [np.zeros(0, np.int64)])
    weight = np.concatenate([w[u] for w, u in zip(weights, used)] + [np.zeros(0)]).astype(np.float32)
    return owner, recent, cooccurrence.row_values(recent, items, owner) * weight[:, None]


def history_category_mix(histories: list[np.ndarray], item_category: np.ndarray, n_categories: int) -> np.ndarray:
    """(B, n_categories) share of each user's history in each category."""
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    events = np.concatenate([np.asarray(h, np.int64) for h in histories] + [np.zeros(0, np.int64)])
    flat = np.bincount(rows * n_categories + np.asarray(item_category)[events], minlength=len(histories) * n_categories)
    counts = flat.reshape(len(histories), n_categories).astype(np.float32)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


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

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (..., N, F) -> relevance (..., N)."""
        return (self.linear(features) + self.mlp(features)).squeeze(-1)


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


def train_ranker(scorer: Scorer, log: TrainLog, eval_set, segments: np.ndarray, item_interest: np.ndarray,
                 *, seed: int = 0, max_users: int = MAX_TRAIN_USERS, epochs: int = EPOCHS,
                 target_times: Optional[np.ndarray] = None, facts: Optional[ItemFacts] = None, progress=None,
                 cancel=None, neighbours: int = NEIGHBOUR_CANDIDATES, new_items: int = NEW_ITEM_CANDIDATES) -> Ranker:
    """Fit the re-ranker on held-out positions (``eval_set``: the validation targets).

    Candidates are the scorer's top-N, item-kNN's ``neighbours`` and the ``new_items`` closest in text
    (``candidate_sources``; the log's latest items stand for new ones when the scorer reads text) formed as
    ``RankedScorer`` serves them under the eval set's mode (the history masked under ``EvalMode.NEW``,
    nothing under ``REPEAT``); users whose held-out item falls outside them teach nothing about
    re-ordering and are skipped.
    ``target_times``: when each held-out event happened; the items the log first saw later are
    left out of that user's candidates (they did not exist yet: as negatives they taught the
    ranker that the newest items are never taken).
    ``facts``: what ``log`` says of the items, when another ranker over a scorer that is not item-kNN
    already counted it (its co-occurrence over every event is the fit's largest cost at scale).
    """
    exclude_seen = eval_set.eval_mode.masks_history
    text = scorer.text_vectors()
    features_used = features_for(exclude_seen, text=text is not None)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.permutation(len(eval_set))[:max_users])
    histories = [eval_set.histories[i] for i in chosen]
    targets = np.asarray(eval_set.targets)[chosen]
    user_segments = np.asarray(segments)[np.asarray(eval_set.user_index)[chosen]]
    if facts is None:
        facts = ItemFacts.from_log(log, scorer if isinstance(scorer, ItemKNNScorer) else None)
    facts = replace(facts, text=text)
    seen_as, facts_as = _with_latest_items_as_new(scorer, facts, log) if text is not None else (scorer, facts)
    unreleased = None if target_times is None else _released_after(log, np.asarray(target_times)[chosen])
    sources = candidate_sources(facts_as, neighbours, new_items)
    items, scores = _candidates(seen_as, histories, user_segments, exclude_seen, cancel, unreleased, sources)
    interests = seen_as.interests_batch(histories, user_segments)
    began = time.perf_counter()
    features = candidate_features(facts_as, items, scores, histories, user_segments, interests, item_interest,
                                  features_used)
    labels = torch.as_tensor(np.argmax(items == targets[:, None], axis=1))
    found = torch.as_tensor((items == targets[:, None]).any(axis=1))
    features, labels, valid = features[found], labels[found], torch.as_tensor(items)[found] > 0
    fitting = time.perf_counter()
    net, report, served_gains = _fit(features, labels, valid, features_used, seed, epochs, progress, cancel)
    report.update(target_in_candidates=float(found.float().mean()) if len(found) else 0.0, exclude_seen=exclude_seen,
                  seconds={"features": fitting - began, "fit": time.perf_counter() - fitting})
    served_ndcg = np.zeros(len(chosen))
    served_ndcg[found.numpy()] = served_gains  # a target outside the candidates is served below rank 100
    return Ranker(facts, net, report, exclude_seen, judgement=Judgement(chosen, served_ndcg),
                  neighbours=neighbours, new_items=new_items)


def latest_items(log: TrainLog, share: float = LATEST_SHARE) -> np.ndarray:
    """The items whose first event in ``log`` falls among its latest ``share`` of events."""
    if not len(log.ts):
        return np.zeros(0, dtype=np.int64)
    first = np.full(log.n_items + 1, np.inf)
    np.minimum.at(first, log.items, log.ts)
    since = np.sort(log.ts)[len(log.ts) - max(1, int(np.ceil(share * len(log.ts))))]
    return np.flatnonzero(np.isfinite(first) & (first >= since))


def _with_latest_items_as_new(scorer, facts: ItemFacts, log: TrainLog) -> tuple[Scorer, ItemFacts]:
    """The scorer and facts the ranker learns from, with the log's latest items (``latest_items``) made
    new: scored from their category and text alone, their log facts unknown (read as their list's
    average). Few validation targets are items without any training event, however many a time
    split's test holds; without these the ranker learns only that items never taken are not taken,
    and pushes down every item scored from its text alone."""
    latest = latest_items(log)
    if not len(latest):
        return scorer, facts
    unknown = torch.zeros_like(facts.popularity, dtype=torch.bool)
    unknown[torch.as_tensor(latest)] = True
    return scorer.scoring_as_new(latest), replace(facts, popularity=facts.popularity.masked_fill(unknown, 0.0))


def _released_after(log: TrainLog, times: np.ndarray):
    """``unreleased(start, stop)``: (stop - start, n_items + 1) bool, the items the log first saw after
    each of those users' held-out events (or never)."""
    first = np.full(log.n_items + 1, np.inf)
    np.minimum.at(first, log.items, log.ts)
    first = torch.from_numpy(first)
    return lambda start, stop: first[None, :] > torch.from_numpy(times[start:stop].astype(np.float64))[:, None]


def _candidates(scorer: Scorer, histories, segments, exclude_seen: bool, cancel, unreleased=None,
                sources: tuple[CandidateSource, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """``top_candidates`` per user, the history masked first when serving excludes it (and the items
    ``unreleased(start, stop)`` marks for those users left out)."""
    parts = []
    batches = masked_score_batches(scorer, histories, segments, history_masked=exclude_seen, cancel=cancel)
    for start, stop, batch in batches:
        if unreleased is not None:
            batch.masked_fill_(unreleased(start, stop), float("-inf"))
        parts.append(top_candidates(batch, histories[start:stop], sources))
        del batch  # before the next batch's scores are made
    if not parts:
        return np.zeros((0, N_CANDIDATES), dtype=np.int64), np.zeros((0, N_CANDIDATES), dtype=np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def top_candidates(scores: torch.Tensor, histories: Optional[list[np.ndarray]] = None,
                   sources: tuple[CandidateSource, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(B, N_CANDIDATES + what ``sources`` add) items and scores: the top N_CANDIDATES of ``scores`` and the
    items the ``sources`` propose for ``histories``, best score first (``union_candidates``); slots beyond
    the finite scores hold item 0 at score 0."""
    n = min(N_CANDIDATES, scores.shape[1] - 1)
    top = top_k(scores, n)
    real = torch.isfinite(top.values)
    items = np.zeros((len(scores), N_CANDIDATES), dtype=np.int64)
    values = np.zeros((len(scores), N_CANDIDATES), dtype=np.float32)
    items[:, :n] = torch.where(real, top.indices, 0).numpy()
    values[:, :n] = torch.where(real, top.values, 0.0).numpy()
    if not sources:
        return items, values
    items, values = with_sources(scores, items, histories, sources)
    return items, np.where(items > 0, values, 0.0).astype(np.float32)


def candidate_sources(facts: ItemFacts, neighbours: int, new_items: int = 0) -> tuple[CandidateSource, ...]:
    """The sources a ranker's candidates are drawn from besides the generator's top-N: item-kNN's
    ``neighbours`` strongest (none without co-occurrence in the facts) and the ``new_items`` items without
    training events closest in text to the user's latest items (none without text in the facts)."""
    sources = []
    if neighbours > 0 and facts.cooccurrence is not None:
        sources.append(functools.partial(neighbour_candidates, facts.cooccurrence, facts.arrays["known"], neighbours))
    if new_items > 0 and facts.text is not None:
        sources.append(NewItemCandidates(facts.arrays["text"], new_items_with_text(facts), new_items))
    return tuple(sources)


def new_items_with_text(facts: ItemFacts) -> np.ndarray:
    """The items without training events (not ``known``) that have text: what ``NewItemCandidates`` proposes."""
    text = facts.arrays["text"]
    new = np.flatnonzero(~facts.arrays["known"] & text.any(axis=1))
    return new[new > 0]


class NewItemCandidates:
    """A candidate source: (B, m) the ``m`` items of ``new`` (``new_items_with_text``) closest in text to each
    user's ``TEXT_RECENT`` latest items (largest cosine), among those ``scores`` allows, best first, 0 = none.
    The generator ranks a new item from its text and category alone and seldom into its top 100 (on the demo
    it held the taken new item for 36% of new-item events); this proposes the new items the ranker's
    ``text_similarity`` reads highest.

    It keeps each item's ``m + NEAR_SLACK`` closest new items and their closeness once found (``_near``,
    ``_closeness``). A new item closer to one of the user's items than the least close one kept for every
    one of them (``_floor``) is in a kept list beside its closeness to the user (the largest over the user's
    items): so when ``m`` allowed kept ones are that close, they are the user's ``m`` closest, read from the
    lists of the whole batch at once. Comparing each user's items with the few dozen listed texts instead
    cost 1.5 ms a served batch of 8 on the 10k demo (12% of its scoring), comparing with every new item
    (the demo's 3,000) 1.5-3 ms. A user for whom the lists cannot tell (many of the listed new items taken)
    is compared with all."""

    def __init__(self, text: np.ndarray, new: np.ndarray, m: int) -> None:
        self.text, self.new, self.m = text, new, m
        self.new_text = text[new]  # (len(new), d)
        self.width = min(m + NEAR_SLACK, len(new))
        self._near = np.zeros((len(text), self.width), dtype=np.int32)  # positions in ``new``; memory used as filled
        self._closeness = np.zeros((len(text), self.width), dtype=np.float32)  # ... and their cosine
        self._floor = np.zeros(len(text), dtype=np.float32)  # the width-th closeness: none left out is closer
        self._filled = np.zeros(len(text), dtype=bool)

    def prepare(self) -> None:
        """Find every item's closest new items now (a service before its first answer) when that is quick
        (``PREPARED_PAIRS``); otherwise each item's are found when a history first holds it."""
        if len(self.text) * len(self.new) <= PREPARED_PAIRS:
            self._fill(np.arange(1, len(self.text)))

    def __call__(self, histories: list[np.ndarray], scores: torch.Tensor) -> np.ndarray:
        proposed = np.zeros((len(histories), self.m), dtype=np.int64)
        recent = [np.unique(np.asarray(h[-TEXT_RECENT:], dtype=np.int64)) for h in histories]
        if not len(self.new) or not sum(len(r) for r in recent):
            return proposed
        allowed = np.isfinite(scores[:, torch.from_numpy(self.new)].numpy())  # (B, len(new))
        k = min(self.m, len(self.new))
        settled = np.zeros(len(histories), dtype=bool)
        if self.width < len(self.new):
            self._fill(np.unique(np.concatenate(recent)))
            settled = self._from_kept(recent, allowed, proposed[:, :k])
        for row in np.flatnonzero(~settled):
            if len(recent[row]):
                proposed[row, :k] = self._compared_with_all(recent[row], allowed[row], k)
        return proposed

    def _from_kept(self, recent: list[np.ndarray], allowed: np.ndarray, proposed: np.ndarray) -> np.ndarray:
        """Fill ``proposed`` (B, k) with each user's closest allowed new items read from their items' kept
        lists, best first (equals: the lower position in ``new`` first); (B,) True where that was certain
        (k of them closer than every one of the user's ``_floor``)."""
        owner = np.repeat(np.arange(len(recent)), [len(r) for r in recent])
        items = np.concatenate(recent)
        floor = np.full(len(recent), -np.inf, dtype=np.float32)
        np.maximum.at(floor, owner, self._floor[items])
        pair_owner = np.repeat(owner, self.width)
        near, closeness = self._near[items].ravel(), self._closeness[items].ravel()
        sure = allowed[pair_owner, near] & (closeness > floor[pair_owner])
        pair_owner, near, closeness = pair_owner[sure], near[sure], closeness[sure]
        order = np.lexsort((-closeness, near, pair_owner))  # per (user, new item) the closest first
        pair_owner, near, closeness = pair_owner[order], near[order], closeness[order]
        first = np.ones(len(near), dtype=bool)
        first[1:] = (pair_owner[1:] != pair_owner[:-1]) | (near[1:] != near[:-1])
        pair_owner, near, closeness = pair_owner[first], near[first], closeness[first]
        order = np.lexsort((near, -closeness, pair_owner))
        pair_owner, near = pair_owner[order], near[order]
        place = np.arange(len(near)) - np.searchsorted(pair_owner, pair_owner)  # each one's place for its user
        kept = place < proposed.shape[1]
        proposed[pair_owner[kept], place[kept]] = self.new[near[kept]]
        return np.bincount(pair_owner[kept], minlength=len(recent)) == proposed.shape[1]

    def _compared_with_all(self, items: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
        """(k,) the allowed new items closest to any of ``items`` (the largest cosine), best first (equals: the
        lower index first), 0 = none."""
        closeness = np.where(allowed, (self.text[items] @ self.new_text.T).max(axis=0), -np.inf)
        best = np.argsort(-closeness, kind="stable")[:k]
        return np.where(np.isfinite(closeness[best]), self.new[best], 0)

    def _fill(self, items: np.ndarray) -> None:
        """Find the closest new items of those ``items`` not yet looked at, ``FILL_ROWS`` per product."""
        missing = items[~self._filled[items]]
        for start in range(0, len(missing), FILL_ROWS):
            chunk = missing[start:start + FILL_ROWS]
            closeness = self.text[chunk] @ self.new_text.T  # (chunk, len(new))
            near = np.argpartition(-closeness, self.width - 1, axis=1)[:, :self.width]
            self._near[chunk] = near
            self._closeness[chunk] = np.take_along_axis(closeness, near, axis=1)
            self._floor[chunk] = self._closeness[chunk].min(axis=1)
            self._filled[chunk] = True


def neighbour_candidates(cooccurrence: ItemKNNScorer, known: np.ndarray, m: int, histories: list[np.ndarray],
                         scores: torch.Tensor) -> np.ndarray:
    """(B, m) item-kNN's ``m`` best items per user among those ``scores`` allows (finite) and the log
    knew (``known``: an item scored as new has no partners when served), best first, 0 = none: the
    partners of the recent items that the ranker's co-occurrence features count, read from their
    rows alone (a few hundred entries a user, whatever the catalogue's size)."""
    owner, item, contribution = cooccurrence.history_entries(histories)
    width = scores.shape[1]
    keys, inverse = np.unique(owner * width + item, return_inverse=True)
    total = np.bincount(inverse, weights=contribution, minlength=len(keys))
    owner, item = keys // width, keys % width
    allowed = (total > 0) & known[item] & np.isfinite(scores[torch.from_numpy(owner), torch.from_numpy(item)].numpy())
    owner, item, total = owner[allowed], item[allowed], total[allowed]
    order = np.lexsort((-total, owner))
    owner, item = owner[order], item[order]
    place = np.arange(len(owner)) - np.searchsorted(owner, owner)  # each item's place in its user's order
    proposed = np.zeros((len(histories), m), dtype=np.int64)
    proposed[owner[place < m], place[place < m]] = item[place < m]
    return proposed


def keep_level(judged_users: int) -> float:
    """The keep check's level: the usual 5% once enough users are judged for a chance gain to be rare among
    them, 1% on a few, where one feature's accident (every new item lifted) can pass a looser test."""
    return KEEP_P_VALUE if judged_users >= FEW_JUDGED_USERS else FEW_JUDGED_P_VALUE


def _fit(features, labels, valid, names: tuple[str, ...], seed: int, epochs: int, progress,
         cancel) -> tuple[RankerNet, dict, np.ndarray]:
    """Cross-fitted, bagged listwise training: every user is judged by rankers that neither trained
    nor picked their step on them, and what is served is fitted as what was judged.

    The users fall in ``FOLDS`` folds. For every ordered pair of folds (judged, picked) a ranker
    trains on the other ``FOLDS - 2`` and picks its best step (the untrained generator order
    included) on the picked fold: picking and judging on the same users would flatter it. A user
    is judged by the average of the ``FOLDS - 1`` rankers whose pair leaves their fold out, and the
    paired test weighs all users' gains over the generator's order. When it passes, the average of
    all ``FOLDS * (FOLDS - 1)`` rankers is served (``RankerNet.averaged``): members fitted as the
    judged ones were, so the judgement (of a bag a fifth as large) does not flatter it. One net
    fitted on a few hundred lists moved with its seed: the keep check's p on ml-latest-small ranged
    0.0005-0.011 and the served test NDCG@10 by 0.005; averaged, the served order varies four times
    less and the judged bags gain more than single nets (p halved on ml-100k).

    Also returns each user's cross-fitted NDCG@10 of what is served: the bag's judged gain when it
    is kept, the generator's otherwise (``Judgement``).
    """
    torch.manual_seed(seed)
    generator = RankerNet(names).eval()
    generator_gains = _list_gains(generator, features, labels, valid)
    report = {"judged_users": int(len(labels)), "changed_users": 0, "train_users": 0, "bagged": 0}
    if len(labels) < 2 * FOLDS:
        return generator, {**report, "holdout_ndcg10_generator": _mean(generator_gains),
                           "holdout_ndcg10_ranker": _mean(generator_gains), "holdout_p_value": 1.0,
                           "kept": False}, generator_gains
    fold = torch.as_tensor(np.random.default_rng(seed).permutation(len(labels)) % FOLDS)
    pairs = [(judged, picked) for judged in range(FOLDS) for picked in range(FOLDS) if picked != judged]
    meter = RateMeter(len(pairs) * epochs)
    nets = {}
    for number, (judged, picked) in enumerate(pairs):
        pick = fold == picked
        nets[judged, picked] = _train_and_pick(features, labels, valid, ~pick & (fold != judged), pick, names,
                                               epochs, number * epochs, meter, progress, cancel)
    gains = np.zeros(len(labels))
    for judged in range(FOLDS):
        judge = fold == judged
        bag = RankerNet.averaged([net for (k, _), net in nets.items() if k == judged])
        gains[judge.numpy()] = _list_gains(bag, features[judge], labels[judge], valid[judge])
    p_value = wilcoxon_p_value(gains - generator_gains)
    kept = bool(_mean(gains) > _mean(generator_gains) and p_value < keep_level(len(labels)))
    report.update(changed_users=int((gains != generator_gains).sum()))
    if kept:
        report.update(train_users=int(len(labels)), bagged=len(nets))
    return RankerNet.averaged(list(nets.values())) if kept else generator, {
        **report, "holdout_ndcg10_generator": _mean(generator_gains), "holdout_ndcg10_ranker": _mean(gains),
        "holdout_p_value": p_value, "kept": kept}, gains if kept else generator_gains


def _train_and_pick(features, labels, valid, train, pick, names, epochs: int, done: int, meter: RateMeter, progress,
                    cancel) -> RankerNet:
    """A ranker trained on the ``train`` users, as it was at the step (every ``CHECK_EVERY``, the
    start included) that ranks the ``pick`` users best; ``done``: steps of earlier fits, for progress."""
    net = RankerNet(names)
    train_features, train_valid = _sampled_lists(features[train], labels[train], valid[train])
    train_labels = torch.zeros(len(train_features), dtype=torch.long)  # the target sits in column 0
    best_state = {k: v.clone() for k, v in net.state_dict().items()}
    best_pick = _mean(_list_gains(net, features[pick], labels[pick], valid[pick]))
    adam = torch.optim.Adam(net.parameters(), lr=0.03)
    for epoch in range(1, epochs + 1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        logits = net.train()(train_features).masked_fill(~train_valid, float("-inf"))
        loss = nn.functional.cross_entropy(logits, train_labels)
        adam.zero_grad()
        loss.backward()
        adam.step()
        if epoch % CHECK_EVERY == 0:
            ndcg = _mean(_list_gains(net, features[pick], labels[pick], valid[pick]))
            if ndcg > best_pick:
                best_pick, best_state = ndcg, {k: v.clone() for k, v in net.state_dict().items()}
            emit(progress, meter.report("ranker", done + epoch, f"ranker step {done + epoch}",
                                        loss=float(loss.detach()), ndcg10=ndcg))
    net.load_state_dict(best_state)
    return net.eval()


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else 0.0


def _sampled_lists(features, labels, valid, size: int = TRAIN_LIST) -> tuple[torch.Tensor, torch.Tensor]:
    """Each training list cut to its target (column 0) plus ``size - 1`` random other candidates.

    Features were computed on the full lists, so ranks and z-scores mean what they mean when
    serving; the softmax over a sample of negatives keeps training cheap.
    """
    noise = torch.rand(valid.shape)
    noise[~valid] = 2.0  # padding last
    noise.scatter_(1, labels[:, None], -1.0)  # target first
    picked = torch.argsort(noise, dim=1)[:, :size]
    gathered = features.gather(1, picked[:, :, None].expand(-1, -1, features.shape[2]))
    return gathered, valid.gather(1, picked)


@torch.no_grad()
def _list_gains(net: RankerNet, features, labels, valid) -> np.ndarray:
    """Per-user NDCG@10 of the held-out item within the re-ranked candidate lists; tied with others, its
    expected gain over the places they share (in its favour, a net that scores every candidate alike
    would look as good as the generator's order)."""
    if len(labels) == 0:
        return np.zeros(0)
    logits = net.eval()(features).masked_fill(~valid, float("-inf"))
    target = logits.gather(1, labels[:, None])
    above = (logits > target).sum(dim=1)
    tied = (logits == target).sum(dim=1)  # the target itself included
    place = torch.arange(logits.shape[1] + 1, dtype=torch.float64)
    gain_to = torch.cat([torch.zeros(1, dtype=torch.float64),
                         torch.where(place < 10, 1.0 / torch.log2(place + 2.0), 0.0).cumsum(0)])
    return ((gain_to[above + tied] - gain_to[above]) / tied).numpy()


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
